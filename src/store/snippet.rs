//! The snippet every store shows for a hit, cut the same way whichever
//! store answers.

/// Characters of context in a snippet.
pub(crate) const SNIPPET_CHARS: usize = 200;

/// A hit's snippet from the passage the store picked: around the match, or
/// the start of the body when the match shows no passage of it (a title
/// match). Trimmed, and at most [`SNIPPET_CHARS`] characters; a cut passage
/// ends in `…`.
pub(crate) fn snippet(passage: &str) -> String {
    let passage = passage.trim();
    match passage.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", passage[..end].trim_end()),
        None => passage.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passages_are_only_trimmed() {
        assert_eq!(snippet("  reset the router \n"), "reset the router");
        let exact = "é".repeat(SNIPPET_CHARS);
        assert_eq!(snippet(&exact), exact);
    }

    #[test]
    fn long_passages_are_cut_at_a_character_and_marked() {
        let long = format!("{} {}", "é".repeat(SNIPPET_CHARS - 1), "x".repeat(50));
        let cut = snippet(&long);
        assert_eq!(cut, format!("{}…", "é".repeat(SNIPPET_CHARS - 1)));
        assert!(cut.chars().count() <= SNIPPET_CHARS + 1);
    }
}
