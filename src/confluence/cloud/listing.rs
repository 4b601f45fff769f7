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
//! are held up to [`HELD_BODY_BUDGET`]; past it the oldest are dropped and
//! those pages are fetched after the listing, as are pages below a parent
//! that is not a listed page (folders and the like, resolved once the
//! listing is complete). The verdicts of the complete listing are computed
//! from the same records, so a page handed over early is one the complete
//! listing keeps.

use super::v1::without_query_param;
use super::{CloudClient, ParentLink, V2Content, V2List, has_body, to_page};
use crate::confluence::convert;
use crate::confluence::http::{HttpFailure, Pending, link_next};
use crate::confluence::v1::{self, MAX_PAGES};
use crate::confluence::verdict::{Known, Verdict, verdict};
use crate::confluence::{
    ConfluenceError, LabelFilter, LeftOutReason, ListOptions, Listing, PageSink, SpaceRef,
    needs_annotations, sink_closed,
};
use crate::model::{Ancestor, ContentType, PageRef};
use serde::Deserialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use tokio::sync::mpsc;

const ANNOTATE_EXPAND: &str =
    "restrictions.read.restrictions.user,restrictions.read.restrictions.group,metadata.labels";
const LABELS_EXPAND: &str = "metadata.labels";

/// Page text (storage format) held at once while pages wait to be vetted;
/// past it the oldest bodies are dropped and those pages fetched later.
/// Converted pages take about three times this.
const HELD_BODY_BUDGET: usize = 16 * 1024 * 1024;

/// Listing answers queued ahead of the records being folded in.
const EVENTS_AHEAD: usize = 2;

/// Batches of vetted pages queued ahead of conversion.
const CONVERT_AHEAD: usize = 2;

/// Deeper parent chains are treated as unvettable (Confluence trees are far
/// shallower; this only bounds work on corrupt data).
const MAX_TREE_DEPTH: usize = super::MAX_TREE_DEPTH;

/// One v1 CQL record, reduced while it is decoded to what vetting needs:
/// no list of who may read it, only whether anyone is named.
#[derive(Debug, Deserialize)]
struct V1Note {
    #[serde(deserialize_with = "v1::de_id")]
    id: String,
    restrictions: Option<NoteRestrictions>,
    metadata: Option<v1::Metadata>,
}

#[derive(Debug, Deserialize)]
struct NoteRestrictions {
    read: Option<NoteOperation>,
}

#[derive(Debug, Deserialize)]
struct NoteOperation {
    restrictions: Option<NoteHolders>,
}

#[derive(Debug, Deserialize)]
struct NoteHolders {
    user: Option<NoteNamed>,
    group: Option<NoteNamed>,
}

#[derive(Debug, Deserialize)]
struct NoteNamed {
    #[serde(default)]
    results: Vec<serde::de::IgnoredAny>,
    size: Option<u64>,
}

impl NoteNamed {
    fn any(&self) -> bool {
        !self.results.is_empty() || self.size.unwrap_or(0) > 0
    }
}

/// What the CQL pass said about an item.
#[derive(Debug, Default)]
struct Note {
    /// `None` when the answer did not say.
    restricted: Option<bool>,
    labels: Option<Vec<String>>,
}

impl V1Note {
    fn into_note(self) -> (String, Note) {
        let restricted = self
            .restrictions
            .and_then(|r| r.read)
            .and_then(|o| o.restrictions)
            .map(|h| h.user.is_some_and(|n| n.any()) || h.group.is_some_and(|n| n.any()));
        let labels = self
            .metadata
            .and_then(|m| m.labels)
            .map(|l| l.results.into_iter().map(|l| l.name).collect());
        (self.id, Note { restricted, labels })
    }
}

/// The v2 `parentType` of a parent, kept small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParentKind {
    Page,
    Folder,
    Whiteboard,
    Database,
    Embed,
    Other,
}

impl ParentKind {
    fn of(kind: Option<&str>) -> Self {
        match kind.unwrap_or("page") {
            "page" => ParentKind::Page,
            "folder" => ParentKind::Folder,
            "whiteboard" => ParentKind::Whiteboard,
            "database" => ParentKind::Database,
            "embed" => ParentKind::Embed,
            _ => ParentKind::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ParentKind::Page => "page",
            ParentKind::Folder => "folder",
            ParentKind::Whiteboard => "whiteboard",
            ParentKind::Database => "database",
            ParentKind::Embed => "embed",
            ParentKind::Other => "other",
        }
    }
}

/// A listed item, without its body.
#[derive(Debug)]
struct Node {
    id: String,
    content_type: ContentType,
    version: u64,
    parent: Option<(String, ParentKind)>,
    /// Only kept when pages are built (ancestors carry titles).
    title: Box<str>,
    /// What the CQL pass said about it, once that arrived.
    note: Option<Note>,
    /// Its own record and every ancestor's are in and open.
    vetted: bool,
}

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

/// A vetted page on its way to conversion.
struct Vetted {
    content_type: ContentType,
    body: V2Content,
    labels: Vec<String>,
    ancestors: Vec<Ancestor>,
}

/// Everything the listing learned, folded in as it arrives.
struct Tree<'a> {
    options: &'a ListOptions,
    labels: LabelFilter,
    /// With a sink: vet as records arrive and keep titles and bodies.
    pages: bool,
    /// Whether CQL records arrive at all.
    notes_expected: bool,
    nodes: Vec<Node>,
    index: HashMap<String, u32>,
    /// Records of items not listed yet.
    early: HashMap<String, Note>,
    /// Listed items whose own record is in, by the parent they wait for.
    waiting: HashMap<String, Vec<u32>>,
    /// Bodies of listed pages not vetted yet, oldest first.
    held: HashMap<u32, V2Content>,
    held_order: VecDeque<u32>,
    held_bytes: usize,
    held_at_most: usize,
    /// Every content type's listing is complete.
    listing_done: bool,
    /// Listed items whose CQL record has not arrived (when records are
    /// expected).
    unnoted: usize,
}

impl<'a> Tree<'a> {
    fn new(options: &'a ListOptions, pages: bool, notes_expected: bool) -> Self {
        Tree {
            options,
            labels: LabelFilter::new(options),
            pages,
            notes_expected,
            nodes: Vec::new(),
            index: HashMap::new(),
            early: HashMap::new(),
            waiting: HashMap::new(),
            held: HashMap::new(),
            held_order: VecDeque::new(),
            held_bytes: 0,
            held_at_most: 0,
            listing_done: false,
            unnoted: 0,
        }
    }

    /// Folds in one listing answer; returns the pages it made storable.
    fn listed(&mut self, content_type: ContentType, items: Vec<V2Content>) -> Vec<Vetted> {
        let mut out = Vec::new();
        for mut item in items {
            // The first listing of an item counts; a repeat (paging overlap) is dropped.
            if self.index.contains_key(&item.id) {
                continue;
            }
            let Ok(i) = u32::try_from(self.nodes.len()) else {
                continue;
            };
            let parent = item
                .parent_id
                .take()
                .map(|p| (p, ParentKind::of(item.parent_type.as_deref())));
            self.index.insert(item.id.clone(), i);
            let note = self.early.remove(&item.id);
            if note.is_none() && self.notes_expected {
                self.unnoted += 1;
            }
            self.nodes.push(Node {
                id: item.id.clone(),
                content_type,
                version: item.version.as_ref().map_or(0, |v| v.number),
                parent,
                title: if self.pages {
                    item.title.as_str().into()
                } else {
                    Box::default()
                },
                note,
                vetted: false,
            });
            if self.pages && has_body(&item) {
                self.held_bytes += super::body_len(&item);
                self.held.insert(i, item);
                self.held_order.push_back(i);
            }
            self.settle(i, &mut out);
        }
        self.trim_held();
        out
    }

    /// Folds in one CQL answer; returns the pages it made storable.
    fn noted(&mut self, notes: Vec<V1Note>) -> Vec<Vetted> {
        let mut out = Vec::new();
        for note in notes {
            let (id, note) = note.into_note();
            match self.index.get(&id) {
                Some(&i) => {
                    let known = &mut self.nodes[i as usize].note;
                    if known.is_none() {
                        self.unnoted = self.unnoted.saturating_sub(1);
                    }
                    merge(known, note);
                    self.settle(i, &mut out);
                }
                None => {
                    let mut early = self.early.remove(&id);
                    merge(&mut early, note);
                    if let Some(early) = early {
                        self.early.insert(id, early);
                    }
                }
            }
        }
        self.trim_held();
        out
    }

    fn own_record_open(&self, node: &Node) -> bool {
        let own = match &node.note {
            // Its restriction or its labels are still to come.
            None if self.notes_expected => return false,
            None => Known::Open,
            Some(note) => Known::of(note.restricted),
        };
        verdict(own, Known::Open, self.options.include_restricted) == Verdict::Open
    }

    /// Vets `start` if it can be, and then every listed item waiting for it.
    fn settle(&mut self, start: u32, out: &mut Vec<Vetted>) {
        if !self.pages {
            return;
        }
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            let node = &self.nodes[i as usize];
            if node.vetted || !self.own_record_open(node) {
                continue;
            }
            if let Some((parent, _)) = &node.parent {
                let parent_vetted = self
                    .index
                    .get(parent)
                    .is_some_and(|&p| self.nodes[p as usize].vetted);
                if !parent_vetted {
                    self.waiting.entry(parent.clone()).or_default().push(i);
                    continue;
                }
            }
            self.nodes[i as usize].vetted = true;
            if let Some(page) = self.storable(i) {
                out.push(page);
            }
            if let Some(children) = self.waiting.remove(&self.nodes[i as usize].id) {
                stack.extend(children);
            }
        }
    }

    /// The page of a vetted item, if its body is held and its labels pass.
    fn storable(&mut self, i: u32) -> Option<Vetted> {
        let body = self.held.remove(&i)?;
        self.held_bytes -= super::body_len(&body);
        let keep_labels = !self.labels.is_empty();
        let node = &mut self.nodes[i as usize];
        let labels = node.note.as_mut().and_then(|n| {
            // Without label filters the complete listing needs no labels:
            // they travel with the page only.
            if keep_labels {
                n.labels.clone()
            } else {
                n.labels.take()
            }
        });
        if self.labels.verdict(labels.as_deref()).is_some() {
            return None;
        }
        let node = &self.nodes[i as usize];
        let mut ancestors = Vec::new();
        let mut parent = node.parent.as_ref();
        while let Some((id, _)) = parent {
            if ancestors.len() >= MAX_TREE_DEPTH {
                return None;
            }
            let p = &self.nodes[*self.index.get(id)? as usize];
            ancestors.push(Ancestor {
                id: p.id.clone(),
                title: p.title.to_string(),
            });
            parent = p.parent.as_ref();
        }
        ancestors.reverse();
        Some(Vetted {
            content_type: node.content_type,
            body,
            labels: labels.unwrap_or_default(),
            ancestors,
        })
    }

    /// Drops the oldest held bodies past the budget (fetched later).
    fn trim_held(&mut self) {
        self.held_at_most = self.held_at_most.max(self.held.len());
        while self.held_bytes > HELD_BODY_BUDGET {
            let Some(i) = self.held_order.pop_front() else {
                break;
            };
            if let Some(body) = self.held.remove(&i) {
                self.held_bytes -= super::body_len(&body);
            }
        }
        if self.held.is_empty() {
            self.held_order.clear();
        }
    }

    /// Parents that are neither listed nor looked up yet.
    fn unlisted_parents(&self) -> Vec<ParentLink> {
        let mut out: Vec<ParentLink> = self
            .nodes
            .iter()
            .filter_map(|n| n.parent.as_ref())
            .filter(|(p, _)| !self.index.contains_key(p))
            .map(|(p, k)| (p.clone(), Some(k.as_str().to_string())))
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// How an item's own restriction reads as a tree state.
    fn direct(&self, i: usize) -> Known {
        if !needs_annotations(self.options) {
            return Known::Open;
        }
        Known::of(self.nodes[i].note.as_ref().and_then(|n| n.restricted))
    }

    /// The combined state of every ancestor of item `i`: listed parents
    /// through their records, others through `outside` (lookups after the
    /// listing); anything neither listed nor looked up is unknown.
    fn ancestors_state(&self, i: usize, memo: &[Option<Known>], outside: &Outside) -> Known {
        let mut state = Known::Open;
        let mut path: Vec<&str> = vec![self.nodes[i].id.as_str()];
        let mut parent = self.nodes[i].parent.as_ref().map(|(p, _)| p.as_str());
        while let Some(p) = parent {
            if state == Known::Restricted {
                return state;
            }
            if path.len() > MAX_TREE_DEPTH || path.contains(&p) {
                return state.and(Known::Unreadable);
            }
            path.push(p);
            if let Some(&pi) = self.index.get(p) {
                let pi = pi as usize;
                state = state.and(self.direct(pi));
                if let Some(above) = memo[pi] {
                    return state.and(above);
                }
                parent = self.nodes[pi].parent.as_ref().map(|(p, _)| p.as_str());
            } else if let Some((above, restricted)) = outside.get(p) {
                state = state.and(Known::of(*restricted));
                parent = above.as_deref();
            } else {
                return state.and(Known::Unreadable);
            }
        }
        state
    }

    /// The complete listing's verdicts.
    fn into_listing(self, outside: &Outside) -> Listing {
        let mut memo: Vec<Option<Known>> = vec![None; self.nodes.len()];
        let mut verdicts: Vec<Option<LeftOutReason>> = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let verdict = if self.options.include_restricted {
                None
            } else {
                let own = self.direct(i);
                // Its own state decides first; the ancestors only matter
                // (and are only walked) when it is open.
                let above = if own == Known::Open {
                    let above = self.ancestors_state(i, &memo, outside);
                    memo[i] = Some(above);
                    above
                } else {
                    Known::Open
                };
                verdict(own, above, false).left_out()
            };
            let labels = self.nodes[i]
                .note
                .as_ref()
                .and_then(|n| n.labels.as_deref());
            verdicts.push(verdict.or_else(|| self.labels.verdict(labels)));
        }
        // The records go before the listing is built: at the end of a big
        // listing both at once would be its peak.
        let Tree {
            nodes,
            held_at_most,
            ..
        } = self;
        let mut listing = Listing {
            held_at_most,
            ..Listing::default()
        };
        for (node, verdict) in nodes.into_iter().zip(verdicts) {
            match verdict {
                None => listing.items.push(PageRef {
                    id: node.id.clone(),
                    version: node.version,
                    content_type: node.content_type,
                }),
                Some(reason) => listing.left_out.count(reason),
            }
            listing.seen.insert(node.id);
        }
        listing
    }
}

/// Folds a CQL record into what is known: a repeated record can only close
/// an item, never open it.
fn merge(known: &mut Option<Note>, note: Note) {
    let Some(merged) = known else {
        *known = Some(note);
        return;
    };
    merged.restricted = match (merged.restricted, note.restricted) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), _) | (_, Some(false)) => Some(false),
        _ => None,
    };
    if merged.labels.is_none() {
        merged.labels = note.labels;
    }
}

/// Parents outside the listing, looked up: their own parent and restriction.
type Outside = HashMap<String, (Option<String>, Option<bool>)>;

/// Which end of one order a chain walks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Front,
    Back,
}

impl End {
    fn index(self) -> usize {
        match self {
            End::Front => 0,
            End::Back => 1,
        }
    }

    fn other(self) -> End {
        match self {
            End::Front => End::Back,
            End::Back => End::Front,
        }
    }
}

/// How far a two-ended walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Only the front end walks until its first answer shows more.
    FrontOnly,
    BothEnds,
    /// Nothing more can be learned: in-flight requests are dropped.
    Done,
}

/// One listing walked from both ends of one order at once: the front asks
/// for it ascending, the back descending, and the walk is complete when
/// the two meet.
///
/// Each end's answers are contiguous runs of that order, so until they
/// meet the front holds a prefix and the back a suffix, and the first
/// answer (in the order answers are recorded) that reaches past the gap
/// between them contains the other end's latest frontier item. Comparing
/// with the other end's latest answer is therefore enough, whatever the ids
/// look like, and memory stays at two answers. Ends that meet exactly at
/// an answer boundary share no item: the next answer of either shows it.
/// Items added or removed meanwhile can only delay the meeting (down to
/// walking to the natural end), never skip part of what existed throughout.
struct Walk {
    stage: tokio::sync::watch::Sender<Stage>,
    latest: std::sync::Mutex<[HashSet<String>; 2]>,
}

impl Walk {
    fn new() -> Self {
        Walk {
            stage: tokio::sync::watch::Sender::new(Stage::FrontOnly),
            latest: std::sync::Mutex::new([HashSet::new(), HashSet::new()]),
        }
    }

    fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    fn finish(&self) {
        self.stage.send_replace(Stage::Done);
    }

    /// Records one end's answer; true when the ends have met (or the walk
    /// is already done).
    fn arrived<'i>(&self, end: End, ids: impl Iterator<Item = &'i str>) -> bool {
        let ids: HashSet<String> = ids.map(str::to_owned).collect();
        // A poisoned lock only means another end panicked; its data is intact.
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let met = ids
            .iter()
            .any(|id| latest[end.other().index()].contains(id));
        latest[end.index()] = ids;
        drop(latest);
        if met {
            self.finish();
        }
        met || self.stage() == Stage::Done
    }

    /// The front's first answer decides whether the back end starts: a
    /// listing of one answer costs one request.
    fn first_answer(&self, more: bool) {
        self.stage.send_if_modified(|stage| {
            if *stage != Stage::FrontOnly {
                return false;
            }
            *stage = if more { Stage::BothEnds } else { Stage::Done };
            true
        });
    }

    /// Waits until the back end may start; false when it never will.
    async fn back_may_start(&self) -> bool {
        let mut stage = self.stage.subscribe();
        match stage.wait_for(|s| *s != Stage::FrontOnly).await {
            Ok(s) => *s == Stage::BothEnds,
            Err(_) => false,
        }
    }

    /// Resolves once the walk is done.
    async fn done(&self) {
        let mut stage = self.stage.subscribe();
        // The sender lives as long as the walk.
        let _ = stage.wait_for(|s| *s == Stage::Done).await;
    }
}

/// What the two ends of the CQL pass share with each other and with the
/// fold, so that no record is asked for twice once the v2 listing is
/// complete: then the fold knows how many listed items still lack one.
struct Records {
    /// CQL answers folded so far, and (once the v2 listing is complete) the
    /// listed items without a record.
    progress: tokio::sync::watch::Sender<(u64, Option<usize>)>,
    /// CQL answers sent to the fold so far.
    sent: AtomicU64,
    /// The page size the site granted (from the front's first answer).
    granted: AtomicUsize,
    /// Per end: a request is in flight.
    asking: [AtomicBool; 2],
    /// Per end: it has not stopped.
    walking: [AtomicBool; 2],
}

impl Records {
    fn new() -> Self {
        Records {
            progress: tokio::sync::watch::Sender::new((0, None)),
            sent: AtomicU64::new(0),
            granted: AtomicUsize::new(usize::MAX),
            asking: [AtomicBool::new(false), AtomicBool::new(false)],
            walking: [AtomicBool::new(true), AtomicBool::new(true)],
        }
    }

    /// The fold's report after folding one event.
    fn folded(&self, notes: bool, missing: Option<usize>) {
        self.progress.send_modify(|(folded, left)| {
            if notes {
                *folded += 1;
            }
            *left = missing;
        });
    }

    /// Whether the v2 listing is still running (until then every CQL
    /// answer may be needed).
    fn listing_running(&self) -> bool {
        self.progress.borrow().1.is_none()
    }

    /// Whether `end` should ask for another answer: once the v2 listing is
    /// complete, only while records are missing that the other end's
    /// answer in flight does not cover, and what fits one answer is left
    /// to the front. Waits for the fold to take in every answer sent.
    async fn ask_more(&self, end: End) -> bool {
        let mut progress = self.progress.subscribe();
        let Ok(now) = progress
            .wait_for(|(folded, left)| left.is_none() || *folded >= self.sent.load(Relaxed))
            .await
        else {
            return true;
        };
        let Some(left) = now.1 else { return true };
        drop(now);
        let granted = self.granted.load(Relaxed);
        let other = end.other().index();
        let covered = if self.asking[other].load(Relaxed) {
            granted
        } else {
            0
        };
        let front_walks = self.walking[End::Front.index()].load(Relaxed);
        !(left <= covered || (end == End::Back && front_walks && left <= granted))
    }
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

    /// One content type's v2 listing, walked by id from both ends (see
    /// [`Walk`]); each answer is sent on as it arrives.
    async fn list_both_ends(
        &self,
        first: url::Url,
        key: &str,
        content_type: ContentType,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), ConfluenceError> {
        let walk = Walk::new();
        let ordered = |sort: &str| {
            let mut url = first.clone();
            url.query_pairs_mut().append_pair("sort", sort);
            url
        };
        tokio::try_join!(
            self.list_end(End::Front, ordered("id"), key, content_type, events, &walk),
            self.list_end(End::Back, ordered("-id"), key, content_type, events, &walk),
        )?;
        Ok(())
    }

    /// One end of a v2 cursor listing. A page of bodies over the client's
    /// response cap is asked for again without them, and the rest of that
    /// end goes on bare (those pages are fetched later).
    async fn list_end(
        &self,
        end: End,
        first: url::Url,
        key: &str,
        content_type: ContentType,
        events: &mpsc::Sender<Event>,
        walk: &Walk,
    ) -> Result<(), ConfluenceError> {
        if end == End::Back && !walk.back_may_start().await {
            return Ok(());
        }
        let mut url = first;
        let mut bare = false;
        let mut asked = 0;
        let mut pending = self.http.start_json::<V2List<V2Content>>(&url);
        while asked < MAX_PAGES {
            let answer = tokio::select! {
                biased;
                () = walk.done() => return Ok(()),
                answer = pending.answer() => answer,
            };
            asked += 1;
            let resp = match answer {
                Ok(resp) => resp,
                Err(HttpFailure::Other(ConfluenceError::TooLarge { .. }))
                    if url.query_pairs().any(|(k, _)| k == "body-format") =>
                {
                    url = without_query_param(&url, "body-format");
                    bare = true;
                    pending = self.http.start_json(&url);
                    continue;
                }
                Err(f) => {
                    return Err(v1::not_found_as(
                        f,
                        ConfluenceError::SpaceNotFound(key.to_string()),
                    ));
                }
            };
            let next = link_next(&resp.headers).or(resp.body.links.next);
            let got = resp.body.results.len();
            let more = next.is_some() && got > 0;
            if end == End::Front {
                walk.first_answer(more);
            }
            let met = walk.arrived(end, resp.body.results.iter().map(|i| i.id.as_str()));
            // The next request goes out before this answer is handed on:
            // the chain is the sync's critical path, and the consumer may be
            // busy with earlier answers.
            let last = match next {
                Some(next) if more && !met => {
                    url = v1::parse_url(&v1::absolute(&self.site, &next))?;
                    if bare {
                        url = without_query_param(&url, "body-format");
                    }
                    pending = self.http.start_json(&url);
                    false
                }
                // This end walked to the other's extreme: all is listed.
                _ => true,
            };
            let event = Event::Listed {
                content_type,
                items: resp.body.results,
                base: resp.body.links.base,
            };
            if events.send(event).await.is_err() {
                return Err(sink_closed());
            }
            if last {
                walk.finish();
                return Ok(());
            }
        }
        Err(ConfluenceError::Protocol(format!(
            "listing did not end after {MAX_PAGES} requests"
        )))
    }

    /// The v1 CQL search pass, walked by creation date from both ends.
    /// Dates can tie, so the two orders need not mirror each other; a tie
    /// split differently where the ends meet leaves its items without a
    /// record, and they take the path of items the search index lags on
    /// (fail closed). The walk also ends as soon as the v2 listing is
    /// complete and every listed item has its record (see [`Records`]).
    async fn note_both_ends(
        &self,
        cql: &str,
        expand: &str,
        events: &mpsc::Sender<Event>,
        walk: &Walk,
        records: &Records,
    ) -> Result<(), ConfluenceError> {
        let ordered = |direction: &str| {
            let mut url = self.v1("/content/search")?;
            url.query_pairs_mut()
                .append_pair("cql", &format!("{cql} order by created {direction}"))
                .append_pair("expand", expand)
                .append_pair("limit", &self.limit().to_string());
            Ok::<_, ConfluenceError>(url)
        };
        let ends = async |end: End, url: url::Url| {
            let walked = self.note_end(end, url, events, walk, records).await;
            records.walking[end.index()].store(false, Relaxed);
            walked
        };
        tokio::try_join!(
            ends(End::Front, ordered("asc")?),
            ends(End::Back, ordered("desc")?),
        )?;
        Ok(())
    }

    /// One end of the CQL pass.
    async fn note_end(
        &self,
        end: End,
        first: url::Url,
        events: &mpsc::Sender<Event>,
        walk: &Walk,
        records: &Records,
    ) -> Result<(), ConfluenceError> {
        if end == End::Back && !walk.back_may_start().await {
            return Ok(());
        }
        let mut url = first;
        // A request sent before the previous answer was handed on.
        let mut early: Option<Pending<v1::List<V1Note>>> = None;
        for asked in 0..MAX_PAGES {
            if early.is_none() && (asked > 0 || end == End::Back) {
                let more = tokio::select! {
                    biased;
                    () = walk.done() => return Ok(()),
                    more = records.ask_more(end) => more,
                };
                if !more {
                    return Ok(());
                }
            }
            records.asking[end.index()].store(true, Relaxed);
            let mut pending = early
                .take()
                .unwrap_or_else(|| self.http.start_json::<v1::List<V1Note>>(&url));
            let answer = tokio::select! {
                biased;
                () = walk.done() => return Ok(()),
                answer = pending.answer() => answer,
            };
            records.asking[end.index()].store(false, Relaxed);
            let resp = answer.map_err(|f| {
                v1::not_found_as(
                    f,
                    ConfluenceError::Protocol("no /wiki/rest/api/content/search".into()),
                )
            })?;
            let got = resp.body.results.len();
            let next = resp.body.links.next;
            // An empty page with a next link would loop forever.
            let more = next.is_some() && got > 0;
            if end == End::Front && asked == 0 {
                records.granted.store(got, Relaxed);
                walk.first_answer(more);
            }
            let met = walk.arrived(end, resp.body.results.iter().map(|n| n.id.as_str()));
            let last = match next {
                Some(next) if more && !met => {
                    url = v1::parse_url(&v1::absolute(&self.wiki, &next))?;
                    false
                }
                _ => true,
            };
            // While the v2 listing runs, `ask_more` says yes without
            // waiting: the next request goes out before this answer is
            // handed on, so a busy consumer does not hold up the chain.
            // Once the listing is complete, what the fold still misses
            // decides, and that waits for this answer to be folded.
            if !last && records.listing_running() {
                records.asking[end.index()].store(true, Relaxed);
                early = Some(self.http.start_json(&url));
            }
            records.sent.fetch_add(1, Relaxed);
            if events.send(Event::Notes(resp.body.results)).await.is_err() {
                return Err(sink_closed());
            }
            if last {
                walk.finish();
                return Ok(());
            }
        }
        Err(ConfluenceError::Protocol(format!(
            "listing did not end after {MAX_PAGES} requests"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, parent: Option<&str>) -> V2Content {
        let mut item = serde_json::json!({
            "id": id,
            "title": format!("T{id}"),
            "version": {"number": 1},
            "body": {"storage": {"value": format!("<p>{id}</p>")}},
        });
        if let Some(p) = parent {
            item["parentId"] = p.into();
            item["parentType"] = "page".into();
        }
        serde_json::from_value(item).expect("v2 item")
    }

    fn note(id: &str, restricted: bool) -> V1Note {
        let users: Vec<serde_json::Value> = if restricted {
            vec![serde_json::json!({"accountId": "a"})]
        } else {
            Vec::new()
        };
        serde_json::from_value(serde_json::json!({
            "id": id,
            "restrictions": {"read": {"restrictions": {
                "user": {"results": users, "size": users.len()},
                "group": {"results": [], "size": 0},
            }}},
            "metadata": {"labels": {"results": [{"name": "faq"}]}},
        }))
        .expect("v1 note")
    }

    fn ids(vetted: &[Vetted]) -> Vec<&str> {
        vetted.iter().map(|v| v.body.id.as_str()).collect()
    }

    #[test]
    fn a_child_waits_for_a_parent_listed_later_and_gets_every_ancestor() {
        let options = ListOptions::default();
        let mut tree = Tree::new(&options, true, true);
        assert!(
            tree.listed(ContentType::Page, vec![listed("3", Some("2"))])
                .is_empty()
        );
        assert!(
            tree.noted(vec![note("3", false), note("1", false)])
                .is_empty()
        );
        assert_eq!(tree.held_at_most, 1);
        assert!(
            tree.listed(ContentType::Page, vec![listed("2", Some("1"))])
                .is_empty()
        );
        let vetted = tree.listed(ContentType::Page, vec![listed("1", None)]);
        assert_eq!(ids(&vetted), ["1"]);
        let vetted = tree.noted(vec![note("2", false)]);
        assert_eq!(ids(&vetted), ["2", "3"]);
        let path: Vec<(&str, &str)> = vetted[1]
            .ancestors
            .iter()
            .map(|a| (a.id.as_str(), a.title.as_str()))
            .collect();
        assert_eq!(path, [("1", "T1"), ("2", "T2")]);
        assert_eq!(vetted[1].labels, ["faq"]);
        assert!(tree.held.is_empty());
        let listing = tree.into_listing(&Outside::new());
        assert_eq!(listing.items.len(), 3);
    }

    #[test]
    fn nothing_below_a_restricted_or_unknown_parent_is_handed_over_or_kept() {
        let options = ListOptions::default();
        let mut tree = Tree::new(&options, true, true);
        let mut out = tree.listed(
            ContentType::Page,
            vec![
                listed("2", Some("1")),
                listed("3", Some("2")),
                listed("5", Some("folder")),
                listed("6", Some("7")),
                listed("7", Some("6")),
            ],
        );
        out.extend(tree.noted(["2", "3", "5", "6", "7"].map(|id| note(id, false)).into()));
        out.extend(tree.listed(ContentType::Page, vec![listed("1", None)]));
        out.extend(tree.noted(vec![note("1", true)]));
        assert!(out.is_empty(), "handed over: {:?}", ids(&out));
        let outside: Outside = [("folder".to_string(), (None, None))].into();
        let listing = tree.into_listing(&outside);
        assert!(listing.items.is_empty());
        assert_eq!(
            listing.left_out,
            crate::confluence::LeftOut {
                restricted: 1,
                restricted_ancestor: 2,
                unverifiable: 3,
                labels: 0,
            }
        );
        assert_eq!(listing.seen.len(), 6);
    }

    #[test]
    fn an_item_listed_by_both_ends_is_handed_over_and_counted_once() {
        let options = ListOptions::default();
        let mut tree = Tree::new(&options, true, true);
        let both = || vec![listed("1", None), listed("2", Some("1"))];
        assert!(tree.listed(ContentType::Page, both()).is_empty());
        assert!(tree.listed(ContentType::Page, both()).is_empty());
        assert_eq!(tree.unnoted, 2);
        let vetted = tree.noted(vec![note("1", false), note("2", false)]);
        assert_eq!(ids(&vetted), ["1", "2"]);
        assert_eq!(tree.unnoted, 0);
        // A record read twice, and the item listed a third time, change nothing.
        assert!(tree.noted(vec![note("2", false)]).is_empty());
        assert!(tree.listed(ContentType::Page, both()).is_empty());
        assert_eq!(tree.unnoted, 0);
        let listing = tree.into_listing(&Outside::new());
        assert_eq!(listing.items.len(), 2);
        assert_eq!(listing.seen.len(), 2);
    }

    #[test]
    fn two_ends_meet_on_a_shared_item_of_the_latest_answers() {
        let walk = Walk::new();
        assert!(!walk.arrived(End::Front, ["1", "2"].into_iter()));
        walk.first_answer(true);
        assert_eq!(walk.stage(), Stage::BothEnds);
        assert!(!walk.arrived(End::Back, ["9", "8"].into_iter()));
        assert!(!walk.arrived(End::Front, ["3", "4"].into_iter()));
        assert!(!walk.arrived(End::Back, ["7", "6"].into_iter()));
        // Meeting exactly at a boundary shares nothing; the next answer shows it.
        assert!(!walk.arrived(End::Front, ["5"].into_iter()));
        assert!(walk.arrived(End::Back, ["5", "4"].into_iter()));
        assert_eq!(walk.stage(), Stage::Done);
        assert!(
            walk.arrived(End::Front, ["6"].into_iter()),
            "an answer in flight finds the walk done"
        );
    }

    #[test]
    fn a_listing_of_one_answer_never_starts_the_back_end() {
        let walk = Walk::new();
        walk.first_answer(false);
        assert_eq!(walk.stage(), Stage::Done);
        let started = futures::executor::block_on(walk.back_may_start());
        assert!(!started);
    }

    #[test]
    fn bodies_waiting_past_the_budget_are_dropped_oldest_first() {
        let options = ListOptions::default();
        let mut tree = Tree::new(&options, true, true);
        let big = "x".repeat(HELD_BODY_BUDGET / 2 + 1);
        let mut items: Vec<V2Content> =
            (1..=3).map(|i| listed(&i.to_string(), Some("0"))).collect();
        for item in &mut items {
            if let Some(body) = item.body.as_mut().and_then(|b| b.storage.as_mut()) {
                body.value = big.clone();
            }
        }
        assert!(tree.listed(ContentType::Page, items).is_empty());
        assert!(tree.held_bytes <= HELD_BODY_BUDGET);
        assert_eq!(tree.held.len(), 1, "only the newest body is still held");
        assert_eq!(
            tree.held_at_most, 3,
            "the answer that brought it over counts"
        );
    }
}
