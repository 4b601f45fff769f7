//! Storage format to Markdown.

use super::entities::{emoticon_text, entity, unescape};
use super::links::LinkResolver;
use super::markup::{MAX_END_TAG_SEARCH, VOID_ELEMENTS, attr, lower_name, reader, strip_tags};
use quick_xml::events::{BytesStart, Event};

/// Capture buffers nest at most this deep; deeper elements render inline.
/// Each nesting level copies its text once into its parent, so this bound
/// is what keeps conversion linear.
const MAX_CAPTURE_DEPTH: usize = 24;
/// Deeper list levels are not indented further.
const MAX_LIST_INDENT: usize = 12;

fn panel_label(macro_name: &str) -> Option<&'static str> {
    Some(match macro_name {
        "info" => "Info",
        "note" => "Note",
        "warning" => "Warning",
        "tip" => "Tip",
        "panel" => "",
        "expand" => "",
        _ => return None,
    })
}

/// What a capture buffer collects and how it is rendered when it closes.
enum Kind {
    Document,
    /// `<a href>`.
    Anchor {
        href: Option<String>,
    },
    /// `ac:link`: target filled in by its `ri:*` child.
    AcLink {
        target: Target,
        anchor: Option<String>,
    },
    /// `ac:image`.
    Image {
        target: Target,
        alt: Option<String>,
    },
    /// `<strong>`, `<em>`, ...: wraps trimmed content in a marker.
    Wrap(&'static str),
    /// Table cell.
    Cell,
    /// Info/note/warning/tip/panel macro: a labelled blockquote.
    Panel {
        label: &'static str,
        title: Option<String>,
    },
    /// `<blockquote>`.
    Quote,
    /// Code macro: language from a parameter, body from the plain-text body.
    CodeMacro {
        language: Option<String>,
        body: Option<String>,
    },
    /// `ac:parameter`: never rendered, handed to the enclosing macro.
    Parameter {
        name: String,
    },
    /// `ac:plain-text-body` or `<pre>`: verbatim text.
    Verbatim,
    /// `ac:plain-text-link-body`: verbatim link text.
    LinkText,
}

#[derive(Default)]
enum Target {
    #[default]
    None,
    Page {
        space: Option<String>,
        title: String,
    },
    Attachment(String),
    Url(String),
    User(String),
    Space(String),
}

struct Buf {
    kind: Kind,
    text: String,
    /// Whitespace seen but not yet written (collapsed to one space).
    pending_space: bool,
}

/// What closing an element does.
enum Action {
    None,
    PopBuf,
    Block,
    List,
    ListItem,
    Table,
    Row,
    InlineCode,
}

struct Frame {
    name: String,
    action: Action,
}

struct ListState {
    ordered: bool,
    next: u64,
    /// Column where this level's item content starts.
    content_indent: usize,
}

struct Table {
    rows: Vec<Vec<String>>,
}

struct Markdown<'a> {
    links: &'a dyn LinkResolver,
    bufs: Vec<Buf>,
    frames: Vec<Frame>,
    lists: Vec<ListState>,
    tables: Vec<Table>,
    /// Inside verbatim text (code bodies): no escaping, no whitespace collapse.
    verbatim: usize,
    /// Inside inline `<code>`: no escaping.
    code: usize,
    /// A list item marker was just written and nothing followed yet.
    fresh_item: bool,
}

/// Converts storage format to Markdown.
pub fn to_markdown(storage: &str, links: &dyn LinkResolver) -> String {
    let mut md = Markdown {
        links,
        bufs: vec![Buf {
            kind: Kind::Document,
            text: String::with_capacity(storage.len()),
            pending_space: false,
        }],
        frames: Vec::new(),
        lists: Vec::new(),
        tables: Vec::new(),
        verbatim: 0,
        code: 0,
        fresh_item: false,
    };
    let mut reader = reader(storage);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => md.start(&e, false),
            Ok(Event::Empty(e)) => md.start(&e, true),
            Ok(Event::End(e)) => {
                let name = e.name().as_ref().to_ascii_lowercase();
                md.end(&name);
            }
            Ok(Event::Text(t)) => {
                let raw = t.into_inner();
                md.text(&raw);
            }
            Ok(Event::CData(c)) => {
                let raw = c.into_inner();
                md.cdata(&raw);
            }
            Ok(Event::GeneralRef(r)) => {
                let name = r.into_inner();
                match entity(&name) {
                    Some(s) => md.text_resolved(&s),
                    None => md.text_resolved(&format!("&{name};")),
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => {
                let pos = usize::try_from(reader.error_position()).unwrap_or(storage.len());
                let rest = storage.get(pos..).unwrap_or_default();
                md.text_resolved(&strip_tags(rest));
                break;
            }
        }
    }
    while !md.frames.is_empty() {
        md.close_top();
    }
    let doc = md.bufs.swap_remove(0).text;
    tidy(&doc)
}

impl Markdown<'_> {
    fn top(&mut self) -> &mut Buf {
        // The document buffer is never popped, so there is always a top.
        let last = self.bufs.len() - 1;
        &mut self.bufs[last]
    }

    fn can_capture(&self) -> bool {
        self.bufs.len() < MAX_CAPTURE_DEPTH
    }

    fn push_buf(&mut self, kind: Kind) -> Action {
        if !self.can_capture() {
            return Action::None;
        }
        self.bufs.push(Buf {
            kind,
            text: String::new(),
            pending_space: false,
        });
        Action::PopBuf
    }

    /// Whether text is currently dropped (parameters of macros).
    fn in_parameter(&self) -> bool {
        matches!(
            self.bufs.last().map(|b| &b.kind),
            Some(Kind::Parameter { .. })
        )
    }

    fn list_indent(&self) -> usize {
        self.lists
            .get(self.lists.len().min(MAX_LIST_INDENT).wrapping_sub(1))
            .map_or(0, |l| l.content_indent)
    }

    /// Writes a line break that stays inside the current list item.
    fn newline(&mut self) {
        let indent = if self.bufs.len() == 1 || self.top_is_block_container() {
            self.list_indent()
        } else {
            0
        };
        let buf = self.top();
        trim_trailing_spaces(&mut buf.text);
        if !buf.text.is_empty() && !buf.text.ends_with('\n') {
            buf.text.push('\n');
        }
        buf.pending_space = false;
        if indent > 0 && !buf.text.is_empty() {
            buf.text.extend(std::iter::repeat_n(' ', indent));
        }
    }

    fn top_is_block_container(&self) -> bool {
        matches!(
            self.bufs.last().map(|b| &b.kind),
            Some(Kind::Document | Kind::Panel { .. } | Kind::Quote)
        )
    }

    /// Starts a new block: a blank line before it, unless inside a list
    /// item (where a blank line would end the list).
    fn block_break(&mut self) {
        if self.fresh_item {
            return;
        }
        if !self.lists.is_empty() {
            self.newline();
            return;
        }
        let buf = self.top();
        trim_trailing_spaces(&mut buf.text);
        buf.pending_space = false;
        if buf.text.is_empty() || matches!(buf.kind, Kind::Cell) {
            if !buf.text.is_empty() && !buf.text.ends_with('\n') {
                buf.text.push('\n');
            }
            return;
        }
        while !buf.text.ends_with("\n\n") {
            buf.text.push('\n');
        }
    }

    /// Writes a finished block (code, table, quote), indented under the
    /// current list item.
    fn emit_block(&mut self, block: &str) {
        let in_list = !self.lists.is_empty();
        let fresh = std::mem::take(&mut self.fresh_item);
        let indent = if in_list { self.list_indent() } else { 0 };
        let buf = self.top();
        let in_cell = matches!(buf.kind, Kind::Cell);
        trim_trailing_spaces(&mut buf.text);
        if !fresh && !buf.text.is_empty() {
            let want = if in_list || in_cell { "\n" } else { "\n\n" };
            while !buf.text.ends_with(want) {
                buf.text.push('\n');
            }
        }
        for (i, line) in block.lines().enumerate() {
            if i > 0 {
                buf.text.push('\n');
            }
            let at_marker = i == 0 && fresh;
            if !at_marker && !line.is_empty() {
                buf.text.extend(std::iter::repeat_n(' ', indent));
            }
            buf.text.push_str(line);
        }
        buf.text.push('\n');
        if !in_list && !in_cell {
            buf.text.push('\n');
        }
        buf.pending_space = false;
    }

    fn text(&mut self, raw: &str) {
        // Text events hold no entities (they arrive as GeneralRef), but a
        // dangling `&` may be in there; `unescape` leaves it alone.
        let resolved = unescape(raw);
        self.text_resolved(&resolved);
    }

    fn cdata(&mut self, raw: &str) {
        if self.verbatim > 0 || matches!(self.bufs.last().map(|b| &b.kind), Some(Kind::LinkText)) {
            let buf = self.top();
            buf.text.push_str(raw);
        } else {
            self.text_resolved(raw);
        }
    }

    fn text_resolved(&mut self, s: &str) {
        if self.in_parameter() {
            let buf = self.top();
            buf.text.push_str(s);
            return;
        }
        if self.verbatim > 0 {
            let buf = self.top();
            buf.text.push_str(s);
            return;
        }
        let escape = self.code == 0;
        let mut wrote = false;
        let buf = self.top();
        for c in s.chars() {
            if c.is_whitespace() {
                buf.pending_space = true;
                continue;
            }
            if buf.pending_space {
                if !buf.text.is_empty() && !buf.text.ends_with([' ', '\n']) {
                    buf.text.push(' ');
                }
                buf.pending_space = false;
            }
            if escape && matches!(c, '\\' | '*' | '_' | '`' | '[' | ']') {
                buf.text.push('\\');
            }
            buf.text.push(c);
            wrote = true;
        }
        if wrote {
            self.fresh_item = false;
        }
    }

    /// Writes generated Markdown syntax (not escaped).
    fn raw(&mut self, s: &str) {
        let buf = self.top();
        if buf.pending_space && !buf.text.is_empty() && !buf.text.ends_with([' ', '\n']) {
            buf.text.push(' ');
        }
        buf.pending_space = false;
        buf.text.push_str(s);
        self.fresh_item = false;
    }

    fn start(&mut self, e: &BytesStart<'_>, empty: bool) {
        let name = lower_name(e);
        let empty = empty || VOID_ELEMENTS.contains(&name.as_str());
        let action = self.open(&name, e);
        if empty {
            self.close(&name, action);
        } else {
            self.frames.push(Frame { name, action });
        }
    }

    fn open(&mut self, name: &str, e: &BytesStart<'_>) -> Action {
        match name {
            "p" | "div" | "section" => {
                self.block_break();
                Action::Block
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.block_break();
                let level = name[1..].parse::<usize>().unwrap_or(1);
                let marker = "#".repeat(level);
                self.raw(&marker);
                self.raw(" ");
                Action::Block
            }
            "br" => {
                if matches!(self.bufs.last().map(|b| &b.kind), Some(Kind::Cell)) {
                    self.raw("<br>");
                } else {
                    self.newline();
                }
                Action::None
            }
            "hr" => {
                self.emit_block("---");
                Action::None
            }
            "strong" | "b" => self.push_buf(Kind::Wrap("**")),
            "em" | "i" | "cite" => self.push_buf(Kind::Wrap("_")),
            "s" | "del" | "strike" => self.push_buf(Kind::Wrap("~~")),
            "code" | "tt" => {
                if self.verbatim > 0 {
                    return Action::None;
                }
                self.raw("`");
                self.code += 1;
                Action::InlineCode
            }
            "pre" => {
                let action = self.push_buf(Kind::Verbatim);
                if matches!(action, Action::PopBuf) {
                    self.verbatim += 1;
                }
                action
            }
            "ul" | "ol" | "ac:task-list" => {
                if self.lists.is_empty() {
                    self.block_break();
                }
                let parent = self.list_indent();
                self.lists.push(ListState {
                    ordered: name == "ol",
                    next: 1,
                    content_indent: parent,
                });
                Action::List
            }
            "li" | "ac:task" => {
                let depth = self.lists.len();
                if depth == 0 {
                    self.block_break();
                    self.raw("- ");
                    self.fresh_item = true;
                    return Action::Block;
                }
                let parent_indent = if (2..=MAX_LIST_INDENT).contains(&depth) {
                    self.lists[depth - 2].content_indent
                } else if depth > MAX_LIST_INDENT {
                    self.lists[MAX_LIST_INDENT - 1].content_indent
                } else {
                    0
                };
                let (marker, ordered) = {
                    let l = &mut self.lists[depth - 1];
                    let m = if l.ordered {
                        format!("{}. ", l.next)
                    } else {
                        "- ".to_string()
                    };
                    l.next += 1;
                    (m, l.ordered)
                };
                let _ = ordered;
                if depth <= MAX_LIST_INDENT {
                    self.lists[depth - 1].content_indent = parent_indent + marker.len();
                }
                let buf = self.top();
                trim_trailing_spaces(&mut buf.text);
                if !buf.text.is_empty() && !buf.text.ends_with('\n') {
                    buf.text.push('\n');
                }
                buf.text.extend(std::iter::repeat_n(' ', parent_indent));
                buf.text.push_str(&marker);
                buf.pending_space = false;
                self.fresh_item = true;
                Action::ListItem
            }
            "ac:task-status" | "ac:task-id" | "ac:placeholder" | "script" | "style" => self
                .push_buf(Kind::Parameter {
                    name: String::new(),
                }),
            "table" => {
                if !self.can_capture() {
                    return Action::Block;
                }
                self.tables.push(Table { rows: Vec::new() });
                Action::Table
            }
            "tr" => {
                if let Some(t) = self.tables.last_mut() {
                    t.rows.push(Vec::new());
                    Action::Row
                } else {
                    self.newline();
                    Action::None
                }
            }
            "td" | "th" => {
                if self.tables.is_empty() {
                    self.raw(" ");
                    return Action::None;
                }
                self.push_buf(Kind::Cell)
            }
            "blockquote" => self.push_buf(Kind::Quote),
            "a" => self.push_buf(Kind::Anchor {
                href: attr(e, "href"),
            }),
            "ac:link" => self.push_buf(Kind::AcLink {
                target: Target::None,
                anchor: attr(e, "ac:anchor"),
            }),
            "ac:image" => self.push_buf(Kind::Image {
                target: Target::None,
                alt: attr(e, "ac:alt").or_else(|| attr(e, "ac:title")),
            }),
            "ri:page" | "ri:blog-post" | "ri:attachment" | "ri:url" | "ri:user" | "ri:space" => {
                self.set_target(name, e);
                Action::None
            }
            "ac:plain-text-link-body" => self.push_buf(Kind::LinkText),
            "ac:emoticon" => {
                let emoji = emoticon_text(e);
                self.raw(&emoji);
                Action::None
            }
            "ac:structured-macro" | "ac:macro" => {
                let macro_name = attr(e, "ac:name").unwrap_or_default().to_ascii_lowercase();
                match macro_name.as_str() {
                    "code" | "noformat" => self.push_buf(Kind::CodeMacro {
                        language: None,
                        body: None,
                    }),
                    m => match panel_label(m) {
                        Some(label) => self.push_buf(Kind::Panel { label, title: None }),
                        None => {
                            // Unknown macros degrade to their body text.
                            self.block_break();
                            Action::Block
                        }
                    },
                }
            }
            "ac:parameter" => self.push_buf(Kind::Parameter {
                name: attr(e, "ac:name").unwrap_or_default(),
            }),
            "ac:plain-text-body" => {
                let action = self.push_buf(Kind::Verbatim);
                if matches!(action, Action::PopBuf) {
                    self.verbatim += 1;
                }
                action
            }
            "img" => {
                let src = attr(e, "src").unwrap_or_default();
                let alt = attr(e, "alt").unwrap_or_else(|| "image".into());
                if !src.is_empty() {
                    self.raw(&format!("[image: {}]({})", escape_link_text(&alt), src));
                }
                Action::None
            }
            _ => Action::None,
        }
    }

    fn set_target(&mut self, name: &str, e: &BytesStart<'_>) {
        let target = match name {
            "ri:page" | "ri:blog-post" => Target::Page {
                space: attr(e, "ri:space-key"),
                title: attr(e, "ri:content-title").unwrap_or_default(),
            },
            "ri:attachment" => Target::Attachment(attr(e, "ri:filename").unwrap_or_default()),
            "ri:url" => Target::Url(attr(e, "ri:value").unwrap_or_default()),
            "ri:user" => Target::User(
                attr(e, "ri:username")
                    .or_else(|| attr(e, "ri:userkey"))
                    .or_else(|| attr(e, "ri:account-id"))
                    .unwrap_or_default(),
            ),
            _ => Target::Space(attr(e, "ri:space-key").unwrap_or_default()),
        };
        // An attachment inside an ac:image/ac:link names that link's target;
        // a ri:page nested inside ri:attachment only says whose attachment.
        for buf in self.bufs.iter_mut().rev().take(2) {
            match &mut buf.kind {
                Kind::AcLink { target: t, .. } | Kind::Image { target: t, .. } => {
                    if matches!(t, Target::None) {
                        *t = target;
                    }
                    return;
                }
                _ => {}
            }
        }
    }

    fn end(&mut self, name: &str) {
        let found = self
            .frames
            .iter()
            .rev()
            .take(MAX_END_TAG_SEARCH)
            .position(|f| f.name == name);
        let Some(depth) = found else {
            // A stray end tag: ignore it.
            return;
        };
        // Elements left open inside it are closed implicitly, like HTML does.
        for _ in 0..=depth {
            self.close_top();
        }
    }

    fn close_top(&mut self) {
        if let Some(frame) = self.frames.pop() {
            self.close(&frame.name, frame.action);
        }
    }

    fn close(&mut self, name: &str, action: Action) {
        match action {
            Action::None => {}
            Action::InlineCode => {
                self.code = self.code.saturating_sub(1);
                let buf = self.top();
                buf.pending_space = false;
                buf.text.push('`');
            }
            Action::Block => self.block_break(),
            Action::List => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.block_break();
                }
            }
            Action::ListItem => {
                self.fresh_item = false;
            }
            Action::Row => {}
            Action::Table => {
                if let Some(table) = self.tables.pop() {
                    let rendered = render_table(&table);
                    if !rendered.is_empty() {
                        self.emit_block(&rendered);
                    }
                }
            }
            Action::PopBuf => self.pop_buf(name),
        }
    }

    fn pop_buf(&mut self, _name: &str) {
        if self.bufs.len() <= 1 {
            return;
        }
        let Some(buf) = self.bufs.pop() else { return };
        match buf.kind {
            Kind::Document => {}
            Kind::Wrap(marker) => {
                let inner = buf.text.trim();
                if inner.is_empty() {
                    if !buf.text.is_empty() || buf.pending_space {
                        self.top().pending_space = true;
                    }
                    return;
                }
                let lead = buf.text.starts_with(char::is_whitespace);
                if lead {
                    self.top().pending_space = true;
                }
                self.raw(&format!("{marker}{inner}{marker}"));
                if buf.text.ends_with(char::is_whitespace) || buf.pending_space {
                    self.top().pending_space = true;
                }
            }
            Kind::Anchor { href } => {
                let text = buf.text.trim();
                match href.filter(|h| !h.is_empty()) {
                    Some(h) => {
                        let label = if text.is_empty() {
                            escape_link_text(&h)
                        } else {
                            text.to_string()
                        };
                        self.raw(&format!("[{label}]({})", escape_url(&h)));
                    }
                    None => self.raw(text),
                }
            }
            Kind::AcLink { target, anchor } => {
                let text = buf.text.trim().to_string();
                let (default_label, url) = self.resolve(&target);
                let url = match (url, anchor) {
                    (Some(u), Some(a)) => Some(format!("{u}#{a}")),
                    (None, Some(a)) => Some(format!("#{a}")),
                    (u, None) => u,
                };
                let label = if text.is_empty() {
                    escape_link_text(&default_label)
                } else {
                    text
                };
                match url {
                    Some(u) if !label.is_empty() => {
                        self.raw(&format!("[{label}]({})", escape_url(&u)))
                    }
                    Some(u) => self.raw(&format!("<{u}>")),
                    None => self.raw(&label),
                }
            }
            Kind::Image { target, alt } => {
                let (name, url) = self.resolve(&target);
                let label = alt.filter(|a| !a.is_empty()).unwrap_or(name);
                if let Some(u) = url {
                    self.raw(&format!(
                        "[image: {}]({})",
                        escape_link_text(&label),
                        escape_url(&u)
                    ));
                }
            }
            Kind::LinkText => {
                // Escaped once here, then embedded as the enclosing link's label.
                let text = escape_link_text(buf.text.trim());
                let top = self.top();
                top.text.push_str(&text);
            }
            Kind::Cell => {
                let cell = buf.text.trim().replace('|', "\\|").replace('\n', "<br>");
                if let Some(row) = self.tables.last_mut().and_then(|t| t.rows.last_mut()) {
                    row.push(cell);
                } else if let Some(t) = self.tables.last_mut() {
                    t.rows.push(vec![cell]);
                }
            }
            Kind::Panel { label, title } => {
                let mut block = String::new();
                let heading = match (label.is_empty(), title.as_deref().map(str::trim)) {
                    (false, Some(t)) if !t.is_empty() => format!("**{label}: {t}**"),
                    (false, _) => format!("**{label}**"),
                    (true, Some(t)) if !t.is_empty() => format!("**{t}**"),
                    _ => String::new(),
                };
                if !heading.is_empty() {
                    block.push_str("> ");
                    block.push_str(&heading);
                    block.push_str("\n>\n");
                }
                quote_into(&mut block, buf.text.trim());
                self.emit_block(&block);
            }
            Kind::Quote => {
                let mut block = String::new();
                quote_into(&mut block, buf.text.trim());
                self.emit_block(&block);
            }
            Kind::CodeMacro { language, body } => {
                let body = body.unwrap_or_default();
                let lang = language.unwrap_or_default();
                self.emit_block(&fence(&body, lang.trim()));
            }
            Kind::Parameter { name } => {
                // Hand the value to the macro it belongs to.
                let value = buf.text;
                if let Some(parent) = self.bufs.last_mut() {
                    match (&mut parent.kind, name.as_str()) {
                        (Kind::CodeMacro { language, .. }, "language") => {
                            *language = Some(value.trim().to_string());
                        }
                        (Kind::Panel { title, .. }, "title") => {
                            *title = Some(value.trim().to_string());
                        }
                        _ => {}
                    }
                }
            }
            Kind::Verbatim => {
                self.verbatim = self.verbatim.saturating_sub(1);
                let body = buf.text;
                if let Some(Kind::CodeMacro { body: slot, .. }) =
                    self.bufs.last_mut().map(|b| &mut b.kind)
                {
                    *slot = Some(body);
                } else {
                    self.emit_block(&fence(&body, ""));
                }
            }
        }
    }

    /// Default label and URL of a link target.
    fn resolve(&self, target: &Target) -> (String, Option<String>) {
        match target {
            Target::None => (String::new(), None),
            Target::Page { space, title } => (
                title.clone(),
                Some(self.links.page_url(space.as_deref(), title)),
            ),
            Target::Attachment(file) => (file.clone(), Some(self.links.attachment_url(file))),
            Target::Url(u) => (u.clone(), Some(u.clone())),
            Target::User(u) => (format!("@{u}"), None),
            Target::Space(s) => (s.clone(), None),
        }
    }
}

fn trim_trailing_spaces(s: &mut String) {
    let len = s.trim_end_matches([' ', '\t']).len();
    s.truncate(len);
}

fn escape_link_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn escape_url(s: &str) -> String {
    s.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

fn quote_into(block: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            block.push_str(">\n");
        } else {
            block.push_str("> ");
            block.push_str(line);
            block.push('\n');
        }
    }
}

/// A fenced code block whose fence is longer than any backtick run inside.
fn fence(body: &str, language: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    let body = body.trim_matches('\n');
    let lang: String = language
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '`')
        .collect();
    format!("{fence}{lang}\n{body}\n{fence}")
}

fn render_table(table: &Table) -> String {
    let rows: Vec<&Vec<String>> = table.rows.iter().filter(|r| !r.is_empty()).collect();
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if cols == 0 {
        return String::new();
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push('|');
        for c in 0..cols {
            out.push(' ');
            out.push_str(row.get(c).map_or("", String::as_str));
            out.push_str(" |");
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for _ in 0..cols {
                out.push_str(" --- |");
            }
            out.push('\n');
        }
    }
    out
}

/// Trims trailing spaces per line, collapses runs of blank lines, trims ends.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    let mut in_fence = false;
    for line in s.lines() {
        let line = line.trim_end();
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if line.is_empty() && !in_fence {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
}
