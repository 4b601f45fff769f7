//! The Cloud listing as it arrives: the v2 cursor listing and the v1 CQL
//! pass run side by side, each walked from both ends at once (see [`Walk`]),
//! each answer is folded into compact records at once (an item listed by
//! both ends counts once),
//! and with a sink every page is handed over as soon as it is vetted, while
//! the next answers are in flight.
//!
//! A page is vetted when its own CQL record has arrived (restrictions and
//! labels) and its parent is a listed page that is vetted itself, so a page
//! whose parent comes later in the listing waits for it. Bodies that wait
//! are held up to [`HELD_BODY_BUDGET`](crate::confluence::held::HELD_BODY_BUDGET); past it the oldest are dropped and
//! those pages are fetched after the listing, as are pages below a parent
//! that is not a listed page (folders and the like, resolved once the
//! listing is complete). The verdicts of the complete listing are computed
//! from the same records, so a page handed over early is one the complete
//! listing keeps.

mod requests;
mod vetting;
mod walk;

use super::{CloudClient, V2Content, to_page};
use crate::confluence::convert;
use crate::confluence::{
    ConfluenceError, ListOptions, Listing, PageSink, SpaceRef, needs_annotations, sink_closed,
};
use crate::model::ContentType;
use tokio::sync::mpsc;
use vetting::{Outside, Tree, V1Note, Vetted};
use walk::{Records, Walk};

const ANNOTATE_EXPAND: &str =
    "restrictions.read.restrictions.user,restrictions.read.restrictions.group,metadata.labels";
const LABELS_EXPAND: &str = "metadata.labels";

/// Listing answers queued ahead of the records being folded in.
const EVENTS_AHEAD: usize = 2;

/// Batches of vetted pages queued ahead of conversion.
const CONVERT_AHEAD: usize = 2;

/// What one listing request brought.
enum Event {
    Listed {
        content_type: ContentType,
        items: Vec<V2Content>,
        base: Option<String>,
    },
    Notes(Vec<V1Note>),
    /// Every content type's v2 listing is complete.
    ListingDone,
}

impl CloudClient {
    /// The listing of `space`; with a sink, every page is handed over as
    /// soon as it is vetted (see the module's documentation).
    pub(super) async fn stream_listing(
        &self,
        space: &SpaceRef<'_>,
        options: &ListOptions,
        sink: Option<PageSink>,
    ) -> Result<Listing, ConfluenceError> {
        let pages = sink.is_some();
        let annotate = needs_annotations(options);
        let notes_expected = (annotate || pages) && !options.content_types.is_empty();
        let (events, mut arrivals) = mpsc::channel::<Event>(EVENTS_AHEAD);
        // Each batch goes with the web root its links are relative to.
        let (to_convert, mut converting) = mpsc::channel::<(String, Vec<Vetted>)>(CONVERT_AHEAD);
        let notes_walk = Walk::new();
        let records = Records::new();

        // The authoritative v2 listing (each content type walked from both
        // ends, the types side by side) and the v1 restriction/label pass
        // (also from both ends) are independent request chains.
        let listing = {
            let events = events.clone();
            async move {
                // The v2 listing asks by the space's id; the search pass
                // below starts without it.
                let id = space.info().await?.id;
                let walks = options.content_types.iter().map(|ct| {
                    let events = &events;
                    let id = &id;
                    async move {
                        let mut url =
                            self.v2(&format!("/spaces/{id}/{}", Self::collection(*ct)))?;
                        url.query_pairs_mut()
                            .append_pair("status", "current")
                            .append_pair("limit", &self.limit().to_string());
                        if pages {
                            url.query_pairs_mut().append_pair("body-format", "storage");
                        }
                        self.list_both_ends(url, space.key(), *ct, events).await
                    }
                });
                futures::future::try_join_all(walks).await?;
                if events.send(Event::ListingDone).await.is_err() {
                    return Err(sink_closed());
                }
                Ok::<_, ConfluenceError>(())
            }
        };
        let notes = {
            let notes_walk = &notes_walk;
            let records = &records;
            async move {
                if !notes_expected {
                    return Ok(());
                }
                let types: Vec<&str> = options.content_types.iter().map(|c| c.as_str()).collect();
                let cql = format!(
                    "space=\"{}\" and type in ({})",
                    space.key().replace('"', "\\\""),
                    types.join(",")
                );
                let expand = if annotate {
                    ANNOTATE_EXPAND
                } else {
                    LABELS_EXPAND
                };
                self.note_both_ends(&cql, expand, &events, notes_walk, records)
                    .await
            }
        };
        let fold = {
            let notes_walk = &notes_walk;
            let records = &records;
            async move {
                let mut tree = Tree::new(options, pages, notes_expected);
                // Links are relative to the site's address as the first
                // answer names it; every vetted page follows that answer.
                let mut root: Option<String> = None;
                while let Some(event) = arrivals.recv().await {
                    let notes = matches!(event, Event::Notes(_));
                    let vetted = match event {
                        Event::Listed {
                            content_type,
                            items,
                            base,
                        } => {
                            if root.is_none() {
                                root = Some(self.web_root(base.as_deref()));
                            }
                            tree.listed(content_type, items)
                        }
                        Event::Notes(notes) => tree.noted(notes),
                        Event::ListingDone => {
                            tree.listing_done = true;
                            Vec::new()
                        }
                    };
                    let missing = tree.listing_done.then_some(tree.unnoted);
                    records.folded(notes, missing);
                    // Once every listed item has its record, the CQL ends
                    // can learn nothing more.
                    if missing == Some(0) {
                        notes_walk.finish();
                    }
                    if vetted.is_empty() {
                        continue;
                    }
                    let root = root.clone().unwrap_or_else(|| self.web_root(None));
                    if to_convert.send((root, vetted)).await.is_err() {
                        return Err(sink_closed());
                    }
                }
                Ok::<_, ConfluenceError>(tree)
            }
        };
        let convert = async move {
            let Some(sink) = sink else {
                return Ok(());
            };
            while let Some((root, batch)) = converting.recv().await {
                let key = space.key().to_string();
                let to_page = move |v: Vetted| {
                    to_page(v.body, v.labels, v.ancestors, v.content_type, &root, &key)
                };
                convert::hand_over(batch, to_page, &sink).await?;
            }
            Ok(())
        };
        let ((), (), tree, ()) = tokio::try_join!(listing, notes, fold, convert)?;

        // Parents that are not listed pages (folders, whiteboards, ...) are
        // looked up: where they sit, and whether they restrict viewing.
        let outside = if annotate && !options.include_restricted {
            self.resolve_parents(tree.unlisted_parents(), |id| tree.index.contains_key(id))
                .await?
        } else {
            Outside::new()
        };
        Ok(tree.into_listing(&outside))
    }
}
