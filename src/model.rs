//! Domain types shared by the source client, the sync engine and the stores.
//!
//! They are deliberately independent of the CRD types so the stores and the
//! Confluence client can be used (and tested) without Kubernetes.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which Confluence content type a document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Page,
    Blogpost,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Page => "page",
            ContentType::Blogpost => "blogpost",
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may see a space's content once it leaves Confluence.
///
/// `Everyone` is public; `Segments` lists the viewer segments (built-in
/// `signed-in-users`, `agents-and-admins`, or custom names) of which a caller
/// must hold at least one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "visibility", content = "segments")]
pub enum Audience {
    #[default]
    Everyone,
    Segments(Vec<String>),
}

impl Audience {
    /// One string per audience, the same for any order of the same segments:
    /// stores keep it beside each document, so finding the documents whose
    /// audience differs from the space's is a single term query. Stored in
    /// indexes: changing the format means reindexing.
    pub fn canonical_key(&self) -> String {
        match self {
            Audience::Everyone => "everyone".to_string(),
            Audience::Segments(segments) => {
                let sorted: std::collections::BTreeSet<&str> =
                    segments.iter().map(String::as_str).collect();
                let mut key = String::from("segments");
                for s in sorted {
                    // U+001F (unit separator) cannot appear in a segment name
                    // anyone types, so keys of different sets never collide.
                    key.push('\u{1f}');
                    key.push_str(s);
                }
                key
            }
        }
    }

    /// Whether a caller holding `caller_segments` may see content for this audience.
    pub fn admits<S: AsRef<str>>(&self, caller_segments: &[S]) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Segments(allowed) => caller_segments
                .iter()
                .any(|c| allowed.iter().any(|a| a == c.as_ref())),
        }
    }
}

/// Identifies one synced space inside the stores: the ConfluenceSpace object
/// (namespace + name) that owns the content. Two objects syncing the same
/// Confluence space are two partitions, so deleting one never removes the
/// other's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct SpaceScope {
    pub namespace: String,
    pub name: String,
}

impl SpaceScope {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Stable document id for a page of this scope, usable in URLs.
    pub fn document_id(&self, page_id: &str) -> String {
        format!("{}.{}.{}", self.namespace, self.name, page_id)
    }
}

impl SpaceScope {
    /// `namespace/name`: stores keep it with each document. Kubernetes
    /// namespaces and object names cannot contain '/', so it is unambiguous.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpaceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An ancestor of a page, nearest last (root first), as Confluence orders them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    pub id: String,
    pub title: String,
}

/// A page or blog post as fetched from Confluence, body already converted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub id: String,
    pub content_type: ContentType,
    pub title: String,
    /// Body converted from storage format to Markdown.
    pub body_markdown: String,
    /// Body as plain text (for snippets and full-text indexing).
    pub body_text: String,
    /// Absolute link to the page in Confluence's web UI.
    pub url: String,
    pub version: u64,
    pub labels: Vec<String>,
    pub ancestors: Vec<Ancestor>,
    pub updated_at: Option<Timestamp>,
}

/// A page id with its version, as listed without bodies for incremental sync.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageRef {
    pub id: String,
    pub version: u64,
    pub content_type: ContentType,
}

/// What a store keeps for one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub scope: SpaceScope,
    /// Confluence site base URL.
    pub site: String,
    pub space_key: String,
    pub space_name: String,
    pub page: Page,
    pub audience: Audience,
}

impl Document {
    pub fn id(&self) -> String {
        self.scope.document_id(&self.page.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_admits_anonymous_callers() {
        assert!(Audience::Everyone.admits::<&str>(&[]));
    }

    #[test]
    fn segments_need_one_shared_segment() {
        let a = Audience::Segments(vec!["agents-and-admins".into(), "partners".into()]);
        assert!(!a.admits::<&str>(&[]));
        assert!(!a.admits(&["signed-in-users"]));
        assert!(a.admits(&["signed-in-users", "partners"]));
    }
}
