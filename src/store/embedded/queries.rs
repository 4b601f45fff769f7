//! Reading the index: searches, single documents and a space's versions.

use super::visible_top::VisibleTopDocs;
use super::{Inner, index_err};
use crate::model::{Document, SpaceScope};
use crate::store::audience::{self, EVERYONE};
use crate::store::snippet::{SNIPPET_CHARS, snippet};
use crate::store::{Hit, SearchResults, StoreError};
use std::collections::{BTreeMap, HashMap};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TokenStream;
use tantivy::{DocAddress, Searcher, TantivyDocument};

/// Title matches weigh this much more than body matches: a page named after
/// the query is almost always what the reader wants.
const TITLE_BOOST: f32 = 3.0;
/// Caps the terms taken from one query so a pasted wall of text cannot make
/// a single request arbitrarily expensive.
const MAX_QUERY_TERMS: usize = 32;
impl Inner {
    /// Matches documents whose audience admits a caller holding `segments`.
    /// Scores nothing, so it filters without changing the ranking.
    fn visibility_filter(&self, segments: &[String]) -> Box<dyn Query> {
        let f = &self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Should, self.term_query(f.visibility, EVERYONE))];
        for s in audience::held(segments) {
            should.push((Occur::Should, self.term_query(f.segments, s)));
        }
        Box::new(ConstScoreQuery::new(
            Box::new(BooleanQuery::new(should)),
            0.0,
        ))
    }

    /// Builds the full-text part of a query from raw user input. The input is
    /// run through the fields' analyzer and only plain terms are used, so no
    /// character in it can be mistaken for query syntax or make parsing fail.
    pub(super) fn text_query(&self, input: &str) -> Result<Option<Box<dyn Query>>, StoreError> {
        let f = &self.fields;
        let mut analyzer = self.index.tokenizer_for_field(f.body).map_err(index_err)?;
        let mut stream = analyzer.token_stream(input);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            let text = &stream.token().text;
            if !terms.iter().any(|t| t == text) {
                terms.push(text.clone());
            }
            if terms.len() >= MAX_QUERY_TERMS {
                break;
            }
        }
        if terms.is_empty() {
            return Ok(None);
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for t in &terms {
            let in_title = TermQuery::new(self.term(f.title, t), IndexRecordOption::WithFreqs);
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(in_title), TITLE_BOOST)),
            ));
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    self.term(f.body, t),
                    IndexRecordOption::WithFreqs,
                )),
            ));
        }
        Ok(Some(Box::new(BooleanQuery::new(clauses))))
    }

    pub(super) fn search(
        &self,
        input: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError> {
        let f = &self.fields;
        let Some(text) = self.text_query(input)? else {
            return Ok(SearchResults::default());
        };
        if limit == 0 {
            return Ok(SearchResults::default());
        }
        let searcher = self.reader.searcher();
        let visible = self
            .visibility_filter(segments)
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .map_err(index_err)?;
        let (top, total) = searcher
            .search(text.as_ref(), &VisibleTopDocs::new(limit, visible))
            .map_err(index_err)?;
        let mut snippets =
            SnippetGenerator::create(&searcher, text.as_ref(), f.body).map_err(index_err)?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(index_err)?;
            let get = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let passage = snippets.snippet_from_doc(&doc);
            let snippet = if passage.is_empty() {
                // Matched on the title only: show the start of the page.
                snippet(&get(f.body))
            } else {
                snippet(passage.fragment())
            };
            hits.push(Hit {
                id: get(f.id),
                title: get(f.title),
                snippet,
                url: get(f.url),
                space_key: get(f.space_key),
                score,
            });
        }
        Ok(SearchResults { hits, total })
    }

    pub(super) fn get(
        &self,
        id: &str,
        segments: &[String],
    ) -> Result<Option<Document>, StoreError> {
        let searcher = self.reader.searcher();
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term_query(self.fields.id, id)),
            (Occur::Must, self.visibility_filter(segments)),
        ]);
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(index_err)?;
        match top.first() {
            Some((_, addr)) => {
                let doc: TantivyDocument = searcher.doc(*addr).map_err(index_err)?;
                let doc = self.decode(&doc)?;
                // Belt and braces: the index filter and the model agree.
                Ok(doc.audience.admits(segments).then_some(doc))
            }
            None => Ok(None),
        }
    }

    pub(super) fn scope_docs(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
    ) -> Result<Vec<DocAddress>, StoreError> {
        let mut addrs: Vec<DocAddress> = searcher
            .search(query, &DocSetCollector)
            .map_err(index_err)?
            .into_iter()
            .collect();
        addrs.sort();
        Ok(addrs)
    }

    pub(super) fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        self.settle()?;
        let searcher = self.reader.searcher();
        let query = self.term_query(self.fields.scope, &scope.key());
        let addrs = self.scope_docs(&searcher, query.as_ref())?;
        let mut by_segment: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for a in addrs {
            by_segment.entry(a.segment_ord).or_default().push(a.doc_id);
        }
        let mut out = HashMap::new();
        for (segment_ord, docs) in by_segment {
            let reader = searcher.segment_reader(segment_ord);
            let fast = reader.fast_fields();
            let versions = fast.u64("version").map_err(index_err)?;
            let ids = fast
                .str("page_id")
                .map_err(index_err)?
                .ok_or_else(|| StoreError::Index("page_id column missing".into()))?;
            // Term ordinal -> version, sorted by ordinal: resolving sorted
            // ordinals in one dictionary pass is far cheaper than one lookup
            // per document.
            let mut by_ord: BTreeMap<u64, u64> = BTreeMap::new();
            for doc in docs {
                if let Some(ord) = ids.term_ords(doc).next() {
                    by_ord.insert(ord, versions.first(doc).unwrap_or(0));
                }
            }
            let ords: Vec<u64> = by_ord.keys().copied().collect();
            let mut versions_in_order = by_ord.values().copied();
            let mut bad_utf8 = false;
            let complete = ids
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |bytes| {
                    let version = versions_in_order.next().unwrap_or(0);
                    match std::str::from_utf8(bytes) {
                        Ok(id) => {
                            out.insert(id.to_string(), version);
                        }
                        Err(_) => bad_utf8 = true,
                    }
                })
                .map_err(|e| StoreError::Io(e.to_string()))?;
            if bad_utf8 || !complete {
                return Err(StoreError::Index(
                    "page id column is inconsistent with its dictionary".into(),
                ));
            }
        }
        Ok(out)
    }
}
