//! Storage format to plain text, for snippets and full-text search.

use super::entities::{emoticon_text, entity, unescape};
use super::markup::{MAX_END_TAG_SEARCH, VOID_ELEMENTS, attr, lower_name, reader, strip_tags};
use quick_xml::events::Event;
use std::borrow::Cow;

const TEXT_BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "tr",
    "br",
    "hr",
    "table",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "ac:task",
    "ac:structured-macro",
    "ac:macro",
    "ac:plain-text-body",
    "ac:rich-text-body",
];

struct TextFrame {
    name: String,
    /// Output length when the element opened.
    start: usize,
    /// Text to write at close when the element produced none (link titles).
    fallback: Option<String>,
    skip: bool,
    verbatim: bool,
}

/// Converts storage format to plain text for snippets and full-text search.
pub fn to_plain_text(storage: &str) -> String {
    let mut out = String::with_capacity(storage.len() / 2);
    let mut frames: Vec<TextFrame> = Vec::new();
    // Counters instead of scanning the frame stack keep this linear.
    let mut skip = 0usize;
    let mut verbatim = 0usize;
    let mut pending_space = false;
    let mut reader = reader(storage);

    fn push_text(out: &mut String, pending: &mut bool, s: &str, collapse: bool) {
        if !collapse {
            out.push_str(s);
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                *pending = true;
                continue;
            }
            if *pending && !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
            *pending = false;
            out.push(c);
        }
    }
    fn newline(out: &mut String, pending: &mut bool) {
        let len = out.trim_end_matches(' ').len();
        out.truncate(len);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        *pending = false;
    }

    loop {
        let event = reader.read_event();
        match event {
            Ok(Event::Start(ref e)) | Ok(Event::Empty(ref e)) => {
                let is_empty = matches!(event, Ok(Event::Empty(_)));
                let name = lower_name(e);
                let empty = is_empty || VOID_ELEMENTS.contains(&name.as_str());
                if TEXT_BLOCKS.contains(&name.as_str()) {
                    newline(&mut out, &mut pending_space);
                }
                if name == "td" || name == "th" {
                    pending_space = true;
                }
                if name == "ac:emoticon" && skip == 0 {
                    let emoji = emoticon_text(e);
                    push_text(&mut out, &mut pending_space, &emoji, true);
                }
                let fallback = match name.as_str() {
                    "ri:page" | "ri:blog-post" => attr(e, "ri:content-title"),
                    "ri:attachment" => attr(e, "ri:filename"),
                    "ri:user" => attr(e, "ri:username").or_else(|| attr(e, "ri:userkey")),
                    _ => None,
                };
                if let Some(f) = fallback {
                    // A link target's name is the link's text when it has none.
                    if let Some(link) = frames
                        .iter_mut()
                        .rev()
                        .take(2)
                        .find(|f| f.name == "ac:link" || f.name == "ac:image")
                        && link.fallback.is_none()
                    {
                        link.fallback = Some(f);
                    }
                }
                let skip_here = matches!(
                    name.as_str(),
                    "ac:parameter"
                        | "ac:task-id"
                        | "ac:task-status"
                        | "ac:placeholder"
                        | "script"
                        | "style"
                );
                let verbatim_here = matches!(name.as_str(), "ac:plain-text-body" | "pre");
                if !empty {
                    skip += usize::from(skip_here);
                    verbatim += usize::from(verbatim_here);
                    frames.push(TextFrame {
                        name,
                        start: out.len(),
                        fallback: None,
                        skip: skip_here,
                        verbatim: verbatim_here,
                    });
                }
            }
            Ok(Event::End(e)) => {
                let name = e.name().as_ref().to_ascii_lowercase();
                let Some(depth) = frames
                    .iter()
                    .rev()
                    .take(MAX_END_TAG_SEARCH)
                    .position(|f| f.name == name)
                else {
                    continue;
                };
                for _ in 0..=depth {
                    let Some(f) = frames.pop() else { break };
                    skip -= usize::from(f.skip);
                    verbatim -= usize::from(f.verbatim);
                    // `newline` may have trimmed below `start`: treat as empty.
                    if let Some(fb) = f.fallback
                        && out.get(f.start..).is_none_or(|s| s.trim().is_empty())
                    {
                        push_text(&mut out, &mut pending_space, &fb, true);
                    }
                    if TEXT_BLOCKS.contains(&f.name.as_str()) {
                        newline(&mut out, &mut pending_space);
                    }
                }
            }
            Ok(Event::Text(t)) => {
                if skip == 0 {
                    let raw = t.into_inner();
                    push_text(&mut out, &mut pending_space, &unescape(&raw), verbatim == 0);
                }
            }
            Ok(Event::CData(c)) => {
                if skip == 0 {
                    let raw = c.into_inner();
                    push_text(&mut out, &mut pending_space, &raw, verbatim == 0);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if skip == 0 {
                    let name = r.into_inner();
                    let s = entity(&name).unwrap_or_else(|| Cow::Owned(format!("&{name};")));
                    push_text(&mut out, &mut pending_space, &s, verbatim == 0);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => {
                let pos = usize::try_from(reader.error_position()).unwrap_or(storage.len());
                let rest = storage.get(pos..).unwrap_or_default();
                push_text(&mut out, &mut pending_space, &strip_tags(rest), true);
                break;
            }
        }
    }
    // Collapse blank-line runs and trailing spaces.
    let mut tidy_out = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        tidy_out.push_str(line);
        tidy_out.push('\n');
    }
    tidy_out.trim().to_string()
}
