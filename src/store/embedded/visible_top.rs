//! The search collector: the best-scoring documents a caller may see, and
//! how many such documents match.
//!
//! Why not `(TopDocs, Count)` over `text AND visibility`: a tuple of
//! collectors scores every match, and an intersection with the visibility
//! filter is not a plain union of terms, so tantivy cannot skip blocks of
//! documents that cannot reach the top (block-WAND). On a large index a
//! common word matches most documents, and scoring all of them was most of
//! a search's time. Here the text query alone drives the ranking (a union of
//! term queries, which block-WAND prunes), and visibility is a per-segment
//! bitset that documents the caller may not see are checked against before
//! they can enter the top: the threshold only ever comes from visible
//! documents, so pruning never drops a visible document that belongs in the
//! top. The count walks the matches without scoring them, and stops at
//! [`COUNT_LIMIT`]: counting every match of a common word cost about as much
//! as finding the top, for a figure nobody reads exactly.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Weight;
use tantivy::{
    BitSet, DocAddress, DocId, DocSet, Score, SegmentOrdinal, SegmentReader, TERMINATED,
};

/// Visible matches counted at most; a search matching more reports no total.
pub(super) const COUNT_LIMIT: u64 = 10_000;

/// Collects the `limit` best visible documents and the number of visible
/// matches, up to [`COUNT_LIMIT`]. `visible` is the visibility filter's
/// weight (scoring disabled).
pub(super) struct VisibleTopDocs {
    limit: usize,
    visible: Box<dyn Weight>,
    /// Matches counted so far, across segments: the limit is per search.
    counted: AtomicU64,
}

/// What one segment (or the whole index, once merged) yields: the top
/// documents, best first, and the visible matches counted.
pub(super) type Fruit = (Vec<(Score, DocAddress)>, u64);

/// The merged result: the top documents, best first, and the number of
/// visible matches, `None` when there are more than [`COUNT_LIMIT`].
pub(super) type TopAndTotal = (Vec<(Score, DocAddress)>, Option<u64>);

/// A candidate in the per-segment heap. Ordered so that the heap's minimum is
/// the one to drop: the lowest score, and among equal scores the later
/// document (earlier documents win ties, as with tantivy's `TopDocs`).
#[derive(Clone, Copy)]
struct Candidate {
    score: Score,
    doc: DocId,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.doc.cmp(&self.doc))
    }
}

/// Unused: [`VisibleTopDocs`] collects whole segments itself.
pub(super) struct Unused;

impl SegmentCollector for Unused {
    type Fruit = Fruit;

    fn collect(&mut self, _doc: DocId, _score: Score) {}

    fn harvest(self) -> Self::Fruit {
        (Vec::new(), 0)
    }
}

impl VisibleTopDocs {
    pub(super) fn new(limit: usize, visible: Box<dyn Weight>) -> Self {
        Self {
            limit,
            visible,
            counted: AtomicU64::new(0),
        }
    }

    /// Counts the visible matches of `weight` in this segment, stopping once
    /// the search as a whole has counted more than [`COUNT_LIMIT`].
    fn count(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        visible: &BitSet,
    ) -> tantivy::Result<u64> {
        let mut budget =
            (COUNT_LIMIT + 1).saturating_sub(self.counted.load(AtomicOrdering::Relaxed));
        let mut matches = weight.scorer(reader, 1.0)?;
        let mut count = 0;
        let mut doc = matches.doc();
        while doc != TERMINATED && budget > 0 {
            if visible.contains(doc) {
                count += 1;
                budget -= 1;
            }
            doc = matches.advance();
        }
        self.counted.fetch_add(count, AtomicOrdering::Relaxed);
        Ok(count)
    }

    /// The documents of `reader` the caller may see (deleted ones excluded).
    fn visible_docs(&self, reader: &SegmentReader) -> tantivy::Result<BitSet> {
        let mut visible = BitSet::with_max_value(reader.max_doc());
        let alive = reader.alive_bitset();
        self.visible.for_each_no_score(reader, &mut |docs| {
            for &doc in docs {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    visible.insert(doc);
                }
            }
        })?;
        Ok(visible)
    }
}

impl Collector for VisibleTopDocs {
    type Fruit = TopAndTotal;
    type Child = Unused;

    fn for_segment(
        &self,
        _segment_local_id: SegmentOrdinal,
        _segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(Unused)
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<Fruit> {
        let visible = self.visible_docs(reader)?;
        if visible.len() == 0 || self.limit == 0 {
            return Ok((Vec::new(), 0));
        }
        let count = self.count(weight, reader, &visible)?;
        if count == 0 {
            return Ok((Vec::new(), 0));
        }
        let mut heap: BinaryHeap<Reverse<Candidate>> = BinaryHeap::with_capacity(self.limit + 1);
        let mut threshold = Score::MIN;
        weight.for_each_pruning(Score::MIN, reader, &mut |doc, score| {
            if !visible.contains(doc) {
                return threshold;
            }
            let candidate = Candidate { score, doc };
            if heap.len() < self.limit {
                heap.push(Reverse(candidate));
            } else if heap.peek().is_some_and(|Reverse(min)| candidate > *min) {
                heap.pop();
                heap.push(Reverse(candidate));
            }
            if heap.len() >= self.limit {
                threshold = heap.peek().map_or(Score::MIN, |Reverse(min)| min.score);
            }
            threshold
        })?;
        let top = heap
            .into_iter()
            .map(|Reverse(c)| (c.score, DocAddress::new(segment_ord, c.doc)))
            .collect();
        Ok((top, count))
    }

    fn merge_fruits(&self, fruits: Vec<Fruit>) -> tantivy::Result<TopAndTotal> {
        let mut count = 0;
        let mut all = Vec::new();
        for (top, n) in fruits {
            count += n;
            all.extend(top);
        }
        // Best first; equal scores in index order, so results are stable.
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        all.truncate(self.limit);
        Ok((all, (count <= COUNT_LIMIT).then_some(count)))
    }
}
