//! How stores keep a document's audience: a `visibility` value beside the
//! segment names, so that one filter (public, or any segment the caller
//! holds) decides what a caller may see.

use crate::model::Audience;
use std::collections::BTreeSet;

/// `visibility` of public documents. Segment names live in a field of their
/// own, so no segment name can collide with it.
pub(crate) const EVERYONE: &str = "everyone";
/// `visibility` of documents only their segments may see.
pub(crate) const SEGMENTS: &str = "segments";

/// The stored `visibility` and segment names of `audience`.
pub(crate) fn encode(audience: &Audience) -> (&'static str, &[String]) {
    match audience {
        Audience::Everyone => (EVERYONE, &[]),
        Audience::Segments(segments) => (SEGMENTS, segments),
    }
}

/// The audience a stored `visibility` and segment names stand for.
pub(crate) fn decode(visibility: &str, segments: Vec<String>) -> Audience {
    if visibility == EVERYONE {
        Audience::Everyone
    } else {
        Audience::Segments(segments)
    }
}

/// The segments a visibility filter admits besides public documents: the
/// caller's, each once, in order.
pub(crate) fn held(segments: &[String]) -> BTreeSet<&str> {
    segments.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_round_trip_through_their_stored_form() {
        for audience in [
            Audience::Everyone,
            Audience::Segments(vec!["partners".into(), "agents-and-admins".into()]),
            Audience::Segments(Vec::new()),
        ] {
            let (visibility, segments) = encode(&audience);
            assert_eq!(decode(visibility, segments.to_vec()), audience);
        }
        assert_eq!(encode(&Audience::Everyone), (EVERYONE, &[][..]));
    }

    #[test]
    fn a_filter_names_each_held_segment_once() {
        let caller: Vec<String> = vec!["b".into(), "a".into(), "b".into()];
        assert_eq!(held(&caller).into_iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
