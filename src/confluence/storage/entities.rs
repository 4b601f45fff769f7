//! Named text: HTML entities and Confluence emoticons.

use super::markup::attr;
use quick_xml::events::BytesStart;
use std::borrow::Cow;

/// Resolves XML and HTML entities in `s`, leaving unknown ones as written.
pub(super) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        // Entity names are short; a `;` further away means a bare `&`.
        let end = tail.as_bytes().iter().take(34).position(|&b| b == b';');
        match end.and_then(|end| entity(&tail[1..end]).map(|c| (end, c))) {
            Some((end, resolved)) => {
                out.push_str(&resolved);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The text an entity name (without `&` and `;`) stands for.
pub(super) fn entity(name: &str) -> Option<Cow<'static, str>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        let c = char::from_u32(code)?;
        // Non-breaking spaces are ordinary spaces for Markdown and search.
        let c = if c == '\u{a0}' { ' ' } else { c };
        return Some(Cow::Owned(c.to_string()));
    }
    let s = match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" | "ensp" | "emsp" | "thinsp" => " ",
        "mdash" => "—",
        "ndash" => "–",
        "hellip" => "…",
        "lsquo" => "‘",
        "rsquo" => "’",
        "sbquo" => "‚",
        "ldquo" => "“",
        "rdquo" => "”",
        "bdquo" => "„",
        "laquo" => "«",
        "raquo" => "»",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "deg" => "°",
        "plusmn" => "±",
        "times" => "×",
        "divide" => "÷",
        "middot" => "·",
        "bull" => "•",
        "para" => "¶",
        "sect" => "§",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "harr" => "↔",
        "rArr" => "⇒",
        "lArr" => "⇐",
        "hArr" => "⇔",
        "le" => "≤",
        "ge" => "≥",
        "ne" => "≠",
        "asymp" => "≈",
        "infin" => "∞",
        "frac12" => "½",
        "frac14" => "¼",
        "frac34" => "¾",
        "sup2" => "²",
        "sup3" => "³",
        "micro" => "µ",
        "iexcl" => "¡",
        "iquest" => "¿",
        "auml" => "ä",
        "ouml" => "ö",
        "uuml" => "ü",
        "Auml" => "Ä",
        "Ouml" => "Ö",
        "Uuml" => "Ü",
        "szlig" => "ß",
        "eacute" => "é",
        "egrave" => "è",
        "ecirc" => "ê",
        "aacute" => "á",
        "agrave" => "à",
        "acirc" => "â",
        "iacute" => "í",
        "oacute" => "ó",
        "uacute" => "ú",
        "ccedil" => "ç",
        "ntilde" => "ñ",
        "oslash" => "ø",
        "aring" => "å",
        "aelig" => "æ",
        "Eacute" => "É",
        "shy" | "zwj" | "zwnj" | "lrm" | "rlm" => "",
        "check" => "✓",
        _ => return None,
    };
    Some(Cow::Borrowed(s))
}

/// Emoji for Confluence's built-in emoticon names.
fn emoticon(name: &str) -> Option<&'static str> {
    Some(match name {
        "smile" => "🙂",
        "sad" => "🙁",
        "cheeky" => "😛",
        "laugh" => "😀",
        "wink" => "😉",
        "thumbs-up" => "👍",
        "thumbs-down" => "👎",
        "information" => "ℹ️",
        "tick" => "✅",
        "cross" => "❌",
        "warning" => "⚠️",
        "plus" => "➕",
        "minus" => "➖",
        "question" => "❓",
        "light-on" => "💡",
        "light-off" => "🔌",
        "yellow-star" | "star" => "⭐",
        "red-star" => "🌟",
        "green-star" => "✳️",
        "blue-star" => "💫",
        "heart" => "❤️",
        "broken-heart" => "💔",
        _ => return None,
    })
}

pub(super) fn emoticon_text(e: &BytesStart<'_>) -> String {
    let name = attr(e, "ac:name").unwrap_or_default();
    if let Some(emoji) = emoticon(&name) {
        return emoji.to_string();
    }
    // Cloud adds the actual emoji (or its short name) as a fallback.
    if let Some(fallback) = attr(e, "ac:emoji-fallback").filter(|f| !f.is_empty()) {
        return fallback;
    }
    if let Some(short) = attr(e, "ac:emoji-shortname").filter(|f| !f.is_empty()) {
        return short;
    }
    if name.is_empty() {
        String::new()
    } else {
        format!(":{name}:")
    }
}
