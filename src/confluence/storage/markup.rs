//! The tolerant tokenizer and the element helpers both renderings share.

use super::entities::unescape;
use quick_xml::Reader;
use quick_xml::events::BytesStart;

/// How far down the open-element stack an end tag looks for its start tag.
pub(super) const MAX_END_TAG_SEARCH: usize = 48;
pub(super) const VOID_ELEMENTS: &[&str] = &[
    "br", "hr", "img", "col", "input", "meta", "link", "wbr", "area", "base", "source",
];

pub(super) fn reader(input: &str) -> Reader<&[u8]> {
    let mut reader = Reader::from_reader(input.as_bytes());
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    config.check_comments = false;
    reader
}

pub(super) fn lower_name(e: &BytesStart<'_>) -> String {
    e.name().as_ref().to_ascii_lowercase()
}

/// Attribute value by (case-insensitive) qualified name, entities resolved.
pub(super) fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    let mut attrs = e.html_attributes();
    attrs.with_checks(false);
    for a in attrs.flatten() {
        if a.key.as_ref().eq_ignore_ascii_case(name) {
            let raw: &str = &a.value;
            return Some(unescape(raw).into_owned());
        }
    }
    None
}

/// Strips tags from the rest of a document the tokenizer could not parse.
pub(super) fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out).into_owned()
}
