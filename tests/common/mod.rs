//! Builders of the operator's model for tests: pages, documents, audiences,
//! spaces of the site `https://wiki.example.com`; and an index another
//! release could have left.
#![allow(dead_code)]

use confluence_operator::confluence::{SpaceInfo, SpaceKind};
use confluence_operator::model::{Ancestor, Audience, ContentType, Document, Page, SpaceScope};

/// Page `id` at `version`: its markdown is `title` as a heading over `body`,
/// its text `body`; it carries the labels `kb` and `v<version>` and sits
/// below the space's home page.
pub fn page(id: &str, version: u64, title: &str, body: &str) -> Page {
    Page {
        id: id.to_string(),
        content_type: ContentType::Page,
        title: title.to_string(),
        body_markdown: format!("# {title}\n\n{body}"),
        body_text: body.to_string(),
        url: format!("https://wiki.example.com/pages/{id}"),
        version,
        labels: vec!["kb".into(), format!("v{version}")],
        ancestors: vec![Ancestor {
            id: "1".into(),
            title: "Home".into(),
        }],
        updated_at: Some("2025-03-04T05:06:07.123456789Z".parse().expect("timestamp")),
    }
}

pub fn doc(scope: &SpaceScope, space_key: &str, audience: Audience, page: Page) -> Document {
    Document {
        scope: scope.clone(),
        site: "https://wiki.example.com".into(),
        space_key: space_key.into(),
        space_name: format!("{space_key} space"),
        page,
        audience,
    }
}

pub fn segments(names: &[&str]) -> Audience {
    Audience::Segments(names.iter().map(|s| s.to_string()).collect())
}

pub fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Space `key` as a sync request names it.
pub fn space(key: &str) -> SpaceInfo {
    SpaceInfo {
        id: format!("id-{key}"),
        key: key.into(),
        name: format!("{key} space"),
        kind: SpaceKind::Global,
        url: format!("https://wiki.example.com/spaces/{key}"),
    }
}

/// Writes in `dir` (replacing any index there) an index another release of
/// the operator could have left: the embedded store's place, another schema.
pub fn write_index_of_another_release(dir: &std::path::Path) -> Result<(), String> {
    use tantivy::schema::{STORED, STRING, Schema};
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("remove the index: {e}"))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("index dir: {e}"))?;
    let mut schema = Schema::builder();
    let id = schema.add_text_field("id", STRING | STORED);
    let index = tantivy::Index::create_in_dir(dir, schema.build()).map_err(|e| e.to_string())?;
    let mut writer: tantivy::IndexWriter = index.writer(15_000_000).map_err(|e| e.to_string())?;
    writer
        .add_document(tantivy::doc!(id => "old"))
        .map_err(|e| e.to_string())?;
    writer.commit().map_err(|e| e.to_string())?;
    Ok(())
}
