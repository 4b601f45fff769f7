//! The simulator's content: deterministic spaces, page trees and realistic
//! storage-format bodies generated from a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Confluence's content types the simulator serves (the wire names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Page,
    Blogpost,
    /// A folder in the page tree (Cloud): no body, may carry restrictions.
    Folder,
    /// A whiteboard; like databases and embeds it can be a page's parent.
    Whiteboard,
    Database,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Page => "page",
            ContentType::Blogpost => "blogpost",
            ContentType::Folder => "folder",
            ContentType::Whiteboard => "whiteboard",
            ContentType::Database => "database",
        }
    }

    /// Pages and blog posts carry bodies and are listed by the page APIs;
    /// the other types only appear as parents in the page tree.
    pub fn is_document(self) -> bool {
        matches!(self, ContentType::Page | ContentType::Blogpost)
    }
}

/// Lifecycle status of an item, as Confluence names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Current,
    Archived,
    Trashed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Archived => "archived",
            Status::Trashed => "trashed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimSpace {
    pub id: u64,
    pub key: String,
    pub name: String,
    /// `global` or `personal`.
    pub kind: String,
    pub homepage_id: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimPage {
    pub id: u64,
    pub space_key: String,
    pub content_type: ContentType,
    pub title: String,
    pub parent_id: Option<u64>,
    pub version: u64,
    /// Storage-format body.
    pub body: String,
    pub labels: Vec<String>,
    /// Has a page-level read restriction (inherited by descendants).
    pub restricted: bool,
    /// Archived and trashed items leave default listings but can still be
    /// looked up directly.
    #[serde(default)]
    pub status: Status,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Data {
    pub spaces: Vec<SimSpace>,
    pub pages: BTreeMap<u64, SimPage>,
    pub next_id: u64,
}

const SPACE_NAMES: &[(&str, &str)] = &[
    ("ENG", "Engineering"),
    ("OPS", "Operations"),
    ("DOC", "Product Documentation"),
    ("HR", "People Team"),
    ("SALES", "Sales Playbooks"),
    ("SEC", "Security"),
    ("DATA", "Data Platform"),
    ("MOB", "Mobile"),
];

const TOPICS: &[&str] = &[
    "Onboarding",
    "Architecture",
    "Runbook",
    "Incident Review",
    "Release Notes",
    "API Guide",
    "Deployment",
    "Monitoring",
    "Roadmap",
    "Meeting Notes",
    "FAQ",
    "Troubleshooting",
    "Design Review",
    "Security Policy",
    "Data Model",
    "Glossary",
    "How-to",
    "Retrospective",
];

const WORDS: &[&str] = &[
    "service",
    "cluster",
    "latency",
    "customer",
    "deploy",
    "rollback",
    "index",
    "search",
    "queue",
    "token",
    "backup",
    "schema",
    "alert",
    "dashboard",
    "owner",
    "budget",
    "review",
    "pipeline",
    "cache",
    "replica",
    "migration",
    "feature",
    "contract",
    "policy",
    "report",
];

pub(crate) const LABELS: &[&str] = &["howto", "runbook", "faq", "internal", "draft", "archived"];

const LANGUAGES: &[&str] = &["bash", "rust", "yaml", "python", "sql", "json"];

const EMOTICONS: &[&str] = &[
    "smile",
    "tick",
    "warning",
    "thumbs-up",
    "light-on",
    "information",
];

fn sentence(rng: &mut StdRng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    if let Some(first) = s.get(0..1) {
        let upper = first.to_uppercase();
        s.replace_range(0..1, &upper);
    }
    s.push('.');
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A realistic storage-format body mixing the constructs the converter handles.
pub(crate) fn body(rng: &mut StdRng, title: &str, link_titles: &[String]) -> String {
    let mut b = String::with_capacity(2048);
    b.push_str(&format!("<h1>{}</h1>", escape(title)));
    b.push_str(&format!(
        "<p>{} <strong>{}</strong> {}&nbsp;&mdash; <em>{}</em></p>",
        sentence(rng, 8),
        WORDS[rng.random_range(0..WORDS.len())],
        sentence(rng, 6),
        sentence(rng, 3)
    ));
    let sections = rng.random_range(1..4);
    for s in 0..sections {
        b.push_str(&format!("<h2>Section {}</h2>", s + 1));
        match rng.random_range(0..5) {
            0 => {
                b.push_str("<ul>");
                for _ in 0..rng.random_range(2..5) {
                    b.push_str(&format!("<li>{}", sentence(rng, 5)));
                    if rng.random_bool(0.3) {
                        b.push_str(&format!(
                            "<ul><li>{}</li><li>{}</li></ul>",
                            sentence(rng, 3),
                            sentence(rng, 3)
                        ));
                    }
                    b.push_str("</li>");
                }
                b.push_str("</ul>");
            }
            1 => {
                b.push_str("<table><tbody><tr><th>Name</th><th>Value</th></tr>");
                for i in 0..rng.random_range(2..5) {
                    b.push_str(&format!(
                        "<tr><td>{}</td><td><p>{}</p></td></tr>",
                        WORDS[(i * 7 + s) % WORDS.len()],
                        sentence(rng, 3)
                    ));
                }
                b.push_str("</tbody></table>");
            }
            2 => {
                let lang = LANGUAGES[rng.random_range(0..LANGUAGES.len())];
                b.push_str(&format!(
                    "<ac:structured-macro ac:name=\"code\" ac:schema-version=\"1\"><ac:parameter ac:name=\"language\">{lang}</ac:parameter><ac:plain-text-body><![CDATA[# {}\nrun --{} <input> && echo done]]></ac:plain-text-body></ac:structured-macro>",
                    sentence(rng, 4),
                    WORDS[rng.random_range(0..WORDS.len())]
                ));
            }
            3 => {
                let kind = ["info", "note", "warning", "tip"][rng.random_range(0..4)];
                b.push_str(&format!(
                    "<ac:structured-macro ac:name=\"{kind}\" ac:schema-version=\"1\"><ac:rich-text-body><p>{}</p></ac:rich-text-body></ac:structured-macro>",
                    sentence(rng, 7)
                ));
            }
            _ => {
                b.push_str(&format!(
                    "<p>{} <ac:emoticon ac:name=\"{}\" /></p><p><ac:image ac:alt=\"diagram\"><ri:attachment ri:filename=\"diagram-{}.png\" /></ac:image></p>",
                    sentence(rng, 6),
                    EMOTICONS[rng.random_range(0..EMOTICONS.len())],
                    s
                ));
            }
        }
    }
    if !link_titles.is_empty() {
        let target = &link_titles[rng.random_range(0..link_titles.len())];
        b.push_str(&format!(
            "<p>See also <ac:link><ri:page ri:content-title=\"{}\" /></ac:link> and <a href=\"https://example.com/{}\">the handbook</a>.</p>",
            escape(target),
            WORDS[rng.random_range(0..WORDS.len())]
        ));
    }
    b
}

/// Generates `spaces` global spaces of `pages` pages and `blogposts` blog
/// posts each, plus the personal space `~alice`.
pub(crate) fn generate(seed: u64, spaces: usize, pages: usize, blogposts: usize) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = Data {
        next_id: 100_000,
        ..Data::default()
    };
    let epoch: jiff::Timestamp = jiff::Timestamp::from_second(1_704_067_200).unwrap_or_default();
    for s in 0..spaces {
        let (key, name) = match SPACE_NAMES.get(s) {
            Some((k, n)) => (k.to_string(), n.to_string()),
            None => (format!("SP{s}"), format!("Space {s}")),
        };
        let space_id = 10_000 + s as u64;
        let mut titles: Vec<String> = Vec::with_capacity(pages);
        let mut ids: Vec<u64> = Vec::with_capacity(pages);
        for p in 0..pages {
            let id = data.next_id;
            data.next_id += 1;
            let title = if p == 0 {
                format!("{name} Home")
            } else {
                format!("{} {p}", TOPICS[rng.random_range(0..TOPICS.len())])
            };
            // Random recursive tree: expected depth grows like log(n).
            let parent_id = if p == 0 {
                None
            } else {
                Some(ids[rng.random_range(0..p)])
            };
            let body = body(&mut rng, &title, &titles);
            let labels = random_labels(&mut rng);
            let version = rng.random_range(1..6);
            let created_at = epoch + jiff::SignedDuration::from_mins(id as i64 % 100_000);
            data.pages.insert(
                id,
                SimPage {
                    id,
                    space_key: key.clone(),
                    content_type: ContentType::Page,
                    title: title.clone(),
                    parent_id,
                    version,
                    body,
                    labels,
                    restricted: false,
                    status: Status::Current,
                    created_at,
                    updated_at: created_at + jiff::SignedDuration::from_hours(version as i64),
                },
            );
            titles.push(title);
            ids.push(id);
        }
        for b in 0..blogposts {
            let id = data.next_id;
            data.next_id += 1;
            let title = format!("Weekly update {}", b + 1);
            let created_at = epoch + jiff::SignedDuration::from_hours(24 * 7 * b as i64);
            data.pages.insert(
                id,
                SimPage {
                    id,
                    space_key: key.clone(),
                    content_type: ContentType::Blogpost,
                    body: body(&mut rng, &title, &titles),
                    title,
                    parent_id: None,
                    version: 1,
                    labels: vec!["news".into()],
                    restricted: false,
                    status: Status::Current,
                    created_at,
                    updated_at: created_at,
                },
            );
        }
        data.spaces.push(SimSpace {
            id: space_id,
            key,
            name,
            kind: "global".into(),
            homepage_id: ids.first().copied(),
        });
    }
    // A personal space: listed by the API, refused by the client.
    let id = data.next_id;
    data.next_id += 1;
    data.pages.insert(
        id,
        SimPage {
            id,
            space_key: "~alice".into(),
            content_type: ContentType::Page,
            title: "Alice's notes".into(),
            parent_id: None,
            version: 1,
            body: "<p>Private scratchpad.</p>".into(),
            labels: Vec::new(),
            restricted: false,
            status: Status::Current,
            created_at: epoch,
            updated_at: epoch,
        },
    );
    data.spaces.push(SimSpace {
        id: 19_999,
        key: "~alice".into(),
        name: "Alice Example".into(),
        kind: "personal".into(),
        homepage_id: Some(id),
    });
    data
}

fn random_labels(rng: &mut StdRng) -> Vec<String> {
    let mut labels: Vec<String> = LABELS
        .iter()
        .filter(|_| rng.random_bool(0.15))
        .map(|l| l.to_string())
        .collect();
    labels.sort();
    labels
}

impl Data {
    pub fn space(&self, key: &str) -> Option<&SimSpace> {
        self.spaces.iter().find(|s| s.key == key)
    }

    pub fn space_by_id(&self, id: u64) -> Option<&SimSpace> {
        self.spaces.iter().find(|s| s.id == id)
    }

    /// Ancestors root first.
    pub fn ancestors(&self, page: &SimPage) -> Vec<&SimPage> {
        let mut chain = Vec::new();
        let mut cur = page.parent_id;
        while let Some(id) = cur {
            let Some(p) = self.pages.get(&id) else { break };
            if chain.len() > self.pages.len() {
                break;
            }
            chain.push(p);
            cur = p.parent_id;
        }
        chain.reverse();
        chain
    }
}
