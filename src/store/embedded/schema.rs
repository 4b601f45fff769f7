//! The index schema, and documents to and from it.

use super::{Inner, stems};
use crate::model::{Ancestor, ContentType, Document, Page, SpaceScope};
use crate::store::{StoreError, audience};
use tantivy::query::{Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{TantivyDocument, Term};

/// Field handles of the schema; built once so the schema and the code that
/// reads and writes documents cannot drift apart.
#[derive(Clone, Copy)]
pub(super) struct Fields {
    pub(super) id: Field,
    pub(super) scope: Field,
    pub(super) namespace: Field,
    pub(super) name: Field,
    pub(super) site: Field,
    pub(super) space_key: Field,
    pub(super) space_name: Field,
    pub(super) page_id: Field,
    pub(super) title: Field,
    pub(super) body: Field,
    pub(super) body_markdown: Field,
    pub(super) url: Field,
    pub(super) labels: Field,
    pub(super) ancestors: Field,
    pub(super) version: Field,
    pub(super) updated_at: Field,
    pub(super) content_type: Field,
    pub(super) visibility: Field,
    pub(super) segments: Field,
    pub(super) audience_key: Field,
}

impl Fields {
    pub(super) fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        // English stemming so "deploying" finds "deployment". Frequencies
        // (for scoring) but no positions: queries are plain terms (see
        // `text_query`) and snippets re-tokenize the stored text, so
        // positions only cost indexing time and disk. Adding phrase search
        // means adding them back (a schema change: the index is rebuilt).
        let text = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(stems::NAME)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
            .set_stored();
        let fields = Fields {
            // Only the fields queried by term are indexed: each indexed field
            // builds a term dictionary at every commit, a fixed cost per
            // commit that the end of every sync waits for. Changing which
            // fields are indexed changes the schema, and an index of another
            // schema is rebuilt at start.
            id: b.add_text_field("id", STRING | STORED),
            scope: b.add_text_field("scope", STRING),
            namespace: b.add_text_field("namespace", STORED),
            name: b.add_text_field("name", STORED),
            site: b.add_text_field("site", STORED),
            space_key: b.add_text_field("space_key", STORED),
            space_name: b.add_text_field("space_name", STORED),
            // Fast so `versions` reads ids and versions from columns instead
            // of decompressing every stored document.
            page_id: b.add_text_field("page_id", STORED | FAST),
            title: b.add_text_field("title", text.clone()),
            body: b.add_text_field("body", text),
            body_markdown: b.add_text_field("body_markdown", STORED),
            url: b.add_text_field("url", STORED),
            labels: b.add_text_field("labels", STORED),
            ancestors: b.add_text_field("ancestors", STORED),
            version: b.add_u64_field("version", STORED | FAST),
            updated_at: b.add_text_field("updated_at", STORED),
            content_type: b.add_text_field("content_type", STORED),
            visibility: b.add_text_field("visibility", STRING | STORED),
            segments: b.add_text_field("segments", STRING | STORED),
            // Canonical form of the audience, so `set_audience` can find the
            // documents that still carry another audience with one query.
            audience_key: b.add_text_field("audience_key", STRING),
        };
        (b.build(), fields)
    }
}

impl Inner {
    pub(super) fn term(&self, field: Field, value: &str) -> Term {
        Term::from_field_text(field, value)
    }

    pub(super) fn term_query(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            self.term(field, value),
            IndexRecordOption::Basic,
        ))
    }

    pub(super) fn encode(&self, doc: &Document) -> Result<TantivyDocument, StoreError> {
        let f = &self.fields;
        let mut t = TantivyDocument::default();
        t.add_text(f.id, doc.id());
        t.add_text(f.scope, doc.scope.key());
        t.add_text(f.namespace, &doc.scope.namespace);
        t.add_text(f.name, &doc.scope.name);
        t.add_text(f.site, &doc.site);
        t.add_text(f.space_key, &doc.space_key);
        t.add_text(f.space_name, &doc.space_name);
        t.add_text(f.page_id, &doc.page.id);
        t.add_text(f.title, &doc.page.title);
        t.add_text(f.body, &doc.page.body_text);
        t.add_text(f.body_markdown, &doc.page.body_markdown);
        t.add_text(f.url, &doc.page.url);
        for label in &doc.page.labels {
            t.add_text(f.labels, label);
        }
        let ancestors = serde_json::to_string(&doc.page.ancestors)
            .map_err(|e| StoreError::Index(format!("cannot encode ancestors: {e}")))?;
        t.add_text(f.ancestors, ancestors);
        t.add_u64(f.version, doc.page.version);
        if let Some(ts) = doc.page.updated_at {
            // RFC 3339 text round-trips at full precision.
            t.add_text(f.updated_at, ts.to_string());
        }
        t.add_text(f.content_type, doc.page.content_type.as_str());
        let (visibility, segments) = audience::encode(&doc.audience);
        t.add_text(f.visibility, visibility);
        for s in segments {
            t.add_text(f.segments, s);
        }
        t.add_text(f.audience_key, doc.audience.canonical_key());
        Ok(t)
    }

    pub(super) fn decode(&self, t: &TantivyDocument) -> Result<Document, StoreError> {
        let f = &self.fields;
        let text = |field: Field, what: &str| -> Result<String, StoreError> {
            t.get_first(field)
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| StoreError::Index(format!("stored document lacks {what}")))
        };
        let all = |field: Field| -> Vec<String> {
            t.get_all(field)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let ancestors: Vec<Ancestor> = serde_json::from_str(&text(f.ancestors, "ancestors")?)
            .map_err(|e| StoreError::Index(format!("stored ancestors are corrupt: {e}")))?;
        let updated_at = match t.get_first(f.updated_at).and_then(|v| v.as_str()) {
            Some(s) => Some(
                s.parse()
                    .map_err(|e| StoreError::Index(format!("stored updated_at is corrupt: {e}")))?,
            ),
            None => None,
        };
        let content_type = match text(f.content_type, "content_type")?.as_str() {
            "blogpost" => ContentType::Blogpost,
            _ => ContentType::Page,
        };
        let audience = audience::decode(&text(f.visibility, "visibility")?, all(f.segments));
        let version = t
            .get_first(f.version)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| StoreError::Index("stored document lacks version".into()))?;
        Ok(Document {
            scope: SpaceScope::new(text(f.namespace, "namespace")?, text(f.name, "name")?),
            site: text(f.site, "site")?,
            space_key: text(f.space_key, "space_key")?,
            space_name: text(f.space_name, "space_name")?,
            page: Page {
                id: text(f.page_id, "page_id")?,
                content_type,
                title: text(f.title, "title")?,
                body_markdown: text(f.body_markdown, "body_markdown")?,
                body_text: text(f.body, "body")?,
                url: text(f.url, "url")?,
                version,
                labels: all(f.labels),
                ancestors,
                updated_at,
            },
            audience,
        })
    }
}
