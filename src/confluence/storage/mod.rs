//! Confluence storage format (XHTML with `ac:`/`ri:` elements) to Markdown
//! and plain text.
//!
//! Storage format is not always well-formed XML: it carries HTML entities
//! (`&nbsp;`), unclosed void tags and occasionally stray markup. The
//! converter therefore never fails: it tolerates mismatched tags, resolves
//! HTML entities itself and, if the tokenizer gives up, keeps the rest of the
//! input as tag-stripped text. Work per input byte is bounded (capture
//! buffers and end-tag matching have fixed depth limits), so conversion is
//! linear in the input size even for adversarial nesting.

mod entities;
mod links;
mod markdown;
mod markup;
mod text;

pub use links::{LinkResolver, SiteLinks};
pub use markdown::to_markdown;
pub use text::to_plain_text;

/// Both renderings of one body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Converted {
    pub markdown: String,
    pub text: String,
}

/// Converts a storage-format body to Markdown and plain text.
pub fn convert(storage: &str, links: &dyn LinkResolver) -> Converted {
    Converted {
        markdown: to_markdown(storage, links),
        text: to_plain_text(storage),
    }
}

#[cfg(test)]
mod tests;
