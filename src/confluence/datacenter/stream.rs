//! Data Center's full listing as it arrives: the offset pages are read side
//! by side, and each listed page is handed over as soon as it may be stored,
//! while later answers are still in flight.
//!
//! Every record carries the item's own read restriction and its whole
//! ancestor list, so a page may be stored once its own record is open and
//! every ancestor's record has arrived open ([`verdict`]). A page whose
//! ancestor comes later in the listing waits for it; waiting bodies are held
//! up to [`HELD_BODY_BUDGET`](crate::confluence::held::HELD_BODY_BUDGET), past which the oldest are dropped and those
//! pages fetched after the listing. Ancestors that are not listed pages are
//! looked up once the listing is complete; the complete listing's verdicts
//! come from the same records (first sighting of each id), so a page handed
//! over early is one the complete listing keeps, and the pages still held
//! that it keeps are handed over then.

use super::{
    BODY, BODY_LIST_EXPAND_FULL, BODY_LIST_EXPAND_MIN, DataCenterClient, has_body, listed,
};
use crate::confluence::convert;
use crate::confluence::held::Held;
use crate::confluence::v1::{self, Content, OffsetPaging};
use crate::confluence::verdict::{self, Known, Verdict};
use crate::confluence::{
    ConfluenceError, LabelFilter, ListOptions, Listed, Listing, PageSink, apply_filters,
    needs_annotations, sink_closed,
};
use crate::model::ContentType;
use std::collections::{HashMap, HashSet};
use tokio::sync::mpsc;

/// Listing answers queued ahead of the records being vetted.
const RECORDS_AHEAD: usize = 2;

/// Batches of vetted pages queued ahead of conversion.
const CONVERT_AHEAD: usize = 2;

/// Pages converted and handed over at once from what was still held when
/// the listing completed.
const HAND_OVER_CHUNK: usize = 50;

/// One listed item: what the filters need, and its record when it came
/// with its body and labels (then its page is exactly what `fetch` returns).
pub(super) struct Record {
    listed: Listed,
    content: Option<Content>,
}

/// The records seen so far, and the bodies waiting to be vetted.
struct Gate<'a> {
    options: &'a ListOptions,
    labels: LabelFilter,
    /// First sighting of each item, in listing order.
    listed: Vec<Listed>,
    index: HashMap<String, usize>,
    /// Held items by the ancestor they wait for.
    waiting: HashMap<String, Vec<usize>>,
    /// Records (with bodies) of listed pages not vetted yet, oldest first.
    held: Held<usize, Content>,
}

impl<'a> Gate<'a> {
    fn new(options: &'a ListOptions) -> Self {
        Gate {
            options,
            labels: LabelFilter::new(options),
            listed: Vec::new(),
            index: HashMap::new(),
            waiting: HashMap::new(),
            held: Held::new(),
        }
    }

    /// Folds in one listing answer; returns the records it made storable.
    fn arrived(&mut self, records: Vec<Record>) -> Vec<Content> {
        let mut out = Vec::new();
        for record in records {
            // Offset paging repeats an item when the space changes during
            // the listing: its first sighting counts.
            if self.index.contains_key(&record.listed.page.id) {
                continue;
            }
            let i = self.listed.len();
            let id = record.listed.page.id.clone();
            self.index.insert(id.clone(), i);
            self.listed.push(record.listed);
            if let Some(content) = record.content {
                self.held.hold(i, content);
                self.settle(i, &mut out);
            }
            // Its children held so far look again: each checks every
            // ancestor's own record, so nothing deeper needs waking.
            if let Some(children) = self.waiting.remove(&id) {
                for child in children {
                    self.settle(child, &mut out);
                }
            }
        }
        self.held.trim();
        out
    }

    /// What is known of a listed (or not yet listed) item's own restriction.
    fn own(&self, id: &str) -> Known {
        match self.index.get(id) {
            Some(&i) => self.direct(i),
            None => Known::Pending,
        }
    }

    fn direct(&self, i: usize) -> Known {
        Known::of(self.listed[i].restricted)
    }

    /// Hands held item `i` over if it may be stored, keeps it waiting for
    /// an ancestor still to come, or drops its body.
    fn settle(&mut self, i: usize, out: &mut Vec<Content>) {
        if !self.held.contains(i) {
            return;
        }
        let item = &self.listed[i];
        let above = Known::all(item.ancestors.iter().map(|a| self.own(a)));
        match verdict::verdict(self.direct(i), above, self.options.include_restricted) {
            Verdict::NotYetKnown => {
                if let Some(awaited) = item
                    .ancestors
                    .iter()
                    .find(|a| self.own(a) == Known::Pending)
                {
                    self.waiting.entry(awaited.clone()).or_default().push(i);
                }
            }
            Verdict::Open if self.labels.verdict(item.labels.as_deref()).is_none() => {
                if let Some(content) = self.held.release(i) {
                    out.push(content);
                }
            }
            _ => {
                self.held.release(i);
            }
        }
    }

    /// The complete listing's verdicts, and the held records it keeps.
    fn finish(self, outside: &HashMap<String, Option<bool>>) -> (Listing, Vec<Content>) {
        let mut listing = apply_filters(self.listed, outside, self.options);
        listing.held_at_most = self.held.at_most();
        let kept: HashSet<&str> = listing.items.iter().map(|r| r.id.as_str()).collect();
        let still: Vec<Content> = self
            .held
            .into_listing_order()
            .into_iter()
            .filter(|c| kept.contains(c.id.as_str()))
            .collect();
        (listing, still)
    }
}

impl DataCenterClient {
    /// The full listing with bodies; every page is handed to `sink` as soon
    /// as it may be stored (see the module's documentation).
    pub(super) async fn stream_listing(
        &self,
        key: &str,
        options: &ListOptions,
        sink: PageSink,
    ) -> Result<Listing, ConfluenceError> {
        let annotate = needs_annotations(options);
        let (records, mut arrivals) = mpsc::channel::<Vec<Record>>(RECORDS_AHEAD);
        let (to_convert, mut converting) = mpsc::channel::<Vec<Content>>(CONVERT_AHEAD);

        // Each content type is its own listing; they run side by side.
        let listings = async move {
            let records = records;
            let types = options
                .content_types
                .iter()
                .map(|ct| self.list_type(key, *ct, annotate, &records));
            futures::future::try_join_all(types).await?;
            Ok::<_, ConfluenceError>(())
        };
        let vet = async move {
            let mut gate = Gate::new(options);
            while let Some(arrived) = arrivals.recv().await {
                let ready = gate.arrived(arrived);
                if !ready.is_empty() && to_convert.send(ready).await.is_err() {
                    return Err(sink_closed());
                }
            }
            Ok::<_, ConfluenceError>(gate)
        };
        let convert = async {
            while let Some(batch) = converting.recv().await {
                self.hand_over(batch, key, &sink).await?;
            }
            Ok::<_, ConfluenceError>(())
        };
        let ((), gate, ()) = tokio::try_join!(listings, vet, convert)?;

        let outside = self.outside_ancestors(&gate.listed, options).await?;
        let (listing, still) = gate.finish(&outside);
        let mut still = still.into_iter().peekable();
        while still.peek().is_some() {
            let chunk: Vec<Content> = still.by_ref().take(HAND_OVER_CHUNK).collect();
            self.hand_over(chunk, key, &sink).await?;
        }
        Ok(listing)
    }

    /// One content type's listing with bodies, each answer's records sent
    /// on as it is taken.
    async fn list_type(
        &self,
        key: &str,
        ct: ContentType,
        annotate: bool,
        records: &mpsc::Sender<Vec<Record>>,
    ) -> Result<(), ConfluenceError> {
        let expand = if annotate {
            BODY_LIST_EXPAND_FULL
        } else {
            BODY_LIST_EXPAND_MIN
        };
        let url = self.space_listing(key, ct, expand)?;
        let not_found = || ConfluenceError::SpaceNotFound(key.to_string());
        // An answer over the client's size cap is asked for again without
        // bodies: those pages are fetched after the listing.
        let lighter = |u: &url::Url| v1::without_expansion(u, BODY);
        let keep = |c: Content| {
            let listed = listed(&c, ct, annotate);
            let content = (has_body(&c) && c.labels().is_some()).then_some(c);
            Record { listed, content }
        };
        let paging = OffsetPaging {
            window: self.window,
            lighter: &lighter,
            keep: &keep,
            at_most: None,
            hand_over: Some(records),
        };
        let found = v1::collect_offsets(&self.http, &self.root, url, &paging, &not_found).await?;
        self.learn_body_page(found.granted);
        Ok(())
    }

    /// Converts vetted records into pages, off the threads that drive
    /// requests, and hands them to `sink`.
    async fn hand_over(
        &self,
        batch: Vec<Content>,
        key: &str,
        sink: &PageSink,
    ) -> Result<(), ConfluenceError> {
        let root = self.root.clone();
        let key = key.to_string();
        convert::hand_over(batch, move |c| v1::to_page(c, &root, &key), sink).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confluence::held::HELD_BODY_BUDGET;

    fn record(id: &str, ancestors: &[&str], restricted: bool, body: Option<&str>) -> Record {
        let mut json = serde_json::json!({
            "id": id,
            "type": "page",
            "title": format!("T{id}"),
            "version": {"number": 1},
            "ancestors": ancestors.iter().map(|a| serde_json::json!({"id": a, "title": format!("T{a}")})).collect::<Vec<_>>(),
            "restrictions": {"read": {"restrictions": {
                "user": {"results": [], "size": if restricted { 1 } else { 0 }},
                "group": {"results": [], "size": 0},
            }}},
            "metadata": {"labels": {"results": [{"name": "faq"}]}},
        });
        if let Some(body) = body {
            json["body"] = serde_json::json!({"storage": {"value": body}});
        }
        let c: Content = serde_json::from_value(json).expect("v1 content");
        let listed = listed(&c, ContentType::Page, true);
        let content = (has_body(&c) && c.labels().is_some()).then_some(c);
        Record { listed, content }
    }

    fn page(id: &str, ancestors: &[&str]) -> Record {
        record(id, ancestors, false, Some("<p>text</p>"))
    }

    fn ids(out: &[Content]) -> Vec<&str> {
        out.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn a_page_waits_for_every_ancestor_listed_later() {
        let options = ListOptions::default();
        let mut gate = Gate::new(&options);
        assert!(gate.arrived(vec![page("3", &["1", "2"])]).is_empty());
        assert!(gate.arrived(vec![page("2", &["1"])]).is_empty());
        assert_eq!(gate.held.at_most(), 2);
        let out = gate.arrived(vec![page("1", &[])]);
        assert_eq!(ids(&out), ["1", "3", "2"]);
        assert!(gate.held.is_empty());
        let (listing, still) = gate.finish(&HashMap::new());
        assert_eq!(listing.items.len(), 3);
        assert!(still.is_empty());
    }

    #[test]
    fn nothing_below_a_restricted_ancestor_is_handed_over_wherever_it_is_listed() {
        let options = ListOptions::default();
        let mut gate = Gate::new(&options);
        let mut out = gate.arrived(vec![page("3", &["1", "2"]), page("2", &["1"])]);
        out.extend(gate.arrived(vec![record("1", &[], true, Some("<p>secret</p>"))]));
        out.extend(gate.arrived(vec![page("4", &["1"])]));
        assert!(out.is_empty(), "handed over: {:?}", ids(&out));
        assert!(gate.held.is_empty(), "their bodies are not kept either");
        let (listing, still) = gate.finish(&HashMap::new());
        assert!(listing.items.is_empty() && still.is_empty());
        assert_eq!(listing.left_out.restricted, 1);
        assert_eq!(listing.left_out.restricted_ancestor, 3);
    }

    #[test]
    fn pages_below_a_parent_outside_the_listing_are_handed_over_once_it_is_looked_up() {
        let options = ListOptions::default();
        let mut gate = Gate::new(&options);
        let out = gate.arrived(vec![page("2", &["folder"]), page("3", &["closed"])]);
        assert!(out.is_empty());
        let outside: HashMap<String, Option<bool>> = [
            ("folder".to_string(), Some(false)),
            ("closed".to_string(), Some(true)),
        ]
        .into();
        let (listing, still) = gate.finish(&outside);
        assert_eq!(ids(&still), ["2"]);
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.left_out.restricted_ancestor, 1);
    }

    #[test]
    fn a_repeated_record_does_not_reopen_a_restricted_item() {
        let options = ListOptions::default();
        let mut gate = Gate::new(&options);
        let out = gate.arrived(vec![
            record("1", &[], true, Some("<p>a</p>")),
            page("1", &[]),
            page("2", &["1"]),
        ]);
        assert!(out.is_empty(), "handed over: {:?}", ids(&out));
    }

    #[test]
    fn label_filters_and_included_restrictions_behave_as_in_the_complete_listing() {
        let excluding = ListOptions {
            exclude_labels: vec!["FAQ".into()],
            ..ListOptions::default()
        };
        let mut gate = Gate::new(&excluding);
        assert!(gate.arrived(vec![page("1", &[])]).is_empty());
        let (listing, _) = gate.finish(&HashMap::new());
        assert_eq!(listing.left_out.labels, 1);

        let including = ListOptions {
            include_restricted: true,
            ..ListOptions::default()
        };
        let mut gate = Gate::new(&including);
        let out = gate.arrived(vec![
            page("2", &["1"]),
            record("1", &[], true, Some("<p>a</p>")),
        ]);
        assert_eq!(ids(&out), ["2", "1"]);
    }

    #[test]
    fn bodies_waiting_past_the_budget_are_dropped_oldest_first() {
        let options = ListOptions::default();
        let mut gate = Gate::new(&options);
        let big = "x".repeat(HELD_BODY_BUDGET / 2 + 1);
        let records = (1..=3)
            .map(|i| record(&i.to_string(), &["0"], false, Some(&big)))
            .collect();
        assert!(gate.arrived(records).is_empty());
        assert!(gate.held.bytes() <= HELD_BODY_BUDGET);
        assert_eq!(gate.held.len(), 1, "only the newest body is still held");
        assert!(gate.held.contains(2));
        assert_eq!(gate.held.at_most(), 3);
        let out = gate.arrived(vec![page("0", &[])]);
        assert_eq!(ids(&out), ["0", "3"], "the dropped ones are fetched later");
    }
}
