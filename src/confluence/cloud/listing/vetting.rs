//! Vetting as records arrive: which listed pages may be stored, and the
//! complete listing's verdicts from the same records.

use crate::confluence::cloud::{MAX_TREE_DEPTH, ParentLink, V2Content, has_body};
use crate::confluence::held::Held;
use crate::confluence::v1;
use crate::confluence::verdict::{Known, Verdict, verdict};
use crate::confluence::{LabelFilter, LeftOutReason, ListOptions, Listing, needs_annotations};
use crate::model::{Ancestor, ContentType, PageRef};
use serde::Deserialize;
use std::collections::HashMap;

/// One v1 CQL record, reduced while it is decoded to what vetting needs:
/// no list of who may read it, only whether anyone is named.
#[derive(Debug, Deserialize)]
pub(super) struct V1Note {
    #[serde(deserialize_with = "v1::de_id")]
    pub(super) id: String,
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

/// A vetted page on its way to conversion.
pub(super) struct Vetted {
    pub(super) content_type: ContentType,
    pub(super) body: V2Content,
    pub(super) labels: Vec<String>,
    pub(super) ancestors: Vec<Ancestor>,
}

/// Everything the listing learned, folded in as it arrives.
pub(super) struct Tree<'a> {
    options: &'a ListOptions,
    labels: LabelFilter,
    /// With a sink: vet as records arrive and keep titles and bodies.
    pages: bool,
    /// Whether CQL records arrive at all.
    notes_expected: bool,
    nodes: Vec<Node>,
    pub(super) index: HashMap<String, u32>,
    /// Records of items not listed yet.
    early: HashMap<String, Note>,
    /// Listed items whose own record is in, by the parent they wait for.
    waiting: HashMap<String, Vec<u32>>,
    /// Bodies of listed pages not vetted yet, oldest first.
    held: Held<u32, V2Content>,
    /// Every content type's listing is complete.
    pub(super) listing_done: bool,
    /// Listed items whose CQL record has not arrived (when records are
    /// expected).
    pub(super) unnoted: usize,
}

impl<'a> Tree<'a> {
    pub(super) fn new(options: &'a ListOptions, pages: bool, notes_expected: bool) -> Self {
        Tree {
            options,
            labels: LabelFilter::new(options),
            pages,
            notes_expected,
            nodes: Vec::new(),
            index: HashMap::new(),
            early: HashMap::new(),
            waiting: HashMap::new(),
            held: Held::new(),
            listing_done: false,
            unnoted: 0,
        }
    }

    /// Folds in one listing answer; returns the pages it made storable.
    pub(super) fn listed(
        &mut self,
        content_type: ContentType,
        items: Vec<V2Content>,
    ) -> Vec<Vetted> {
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
                self.held.hold(i, item);
            }
            self.settle(i, &mut out);
        }
        self.held.trim();
        out
    }

    /// Folds in one CQL answer; returns the pages it made storable.
    pub(super) fn noted(&mut self, notes: Vec<V1Note>) -> Vec<Vetted> {
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
        self.held.trim();
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
        let body = self.held.release(i)?;
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

    /// Parents that are neither listed nor looked up yet.
    pub(super) fn unlisted_parents(&self) -> Vec<ParentLink> {
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
    pub(super) fn into_listing(self, outside: &Outside) -> Listing {
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
        let held_at_most = self.held.at_most();
        let Tree { nodes, .. } = self;
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
pub(super) type Outside = HashMap<String, (Option<String>, Option<bool>)>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confluence::held::HELD_BODY_BUDGET;

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
        assert_eq!(tree.held.at_most(), 1);
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
        assert!(tree.held.bytes() <= HELD_BODY_BUDGET);
        assert_eq!(tree.held.len(), 1, "only the newest body is still held");
        assert_eq!(
            tree.held.at_most(),
            3,
            "the answer that brought it over counts"
        );
    }
}
