//! The one rule that decides whether an item may be stored, given what is
//! known of its own read restriction and of its ancestors'.
//!
//! Read restrictions inherit down the page tree through every parent type,
//! so an item is visible to the space's viewers only when it and every
//! ancestor are open. Listings learn these states piece by piece (an
//! ancestor may be listed after its child, or only looked up once the
//! listing is complete); the rule is the same at every point, and fails
//! closed: whatever cannot be vetted is left out.

use super::LeftOutReason;

/// What is known of one item's own read restriction, or of a whole chain
/// of ancestors combined with [`Known::and`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// No read restriction.
    Open,
    /// A read restriction names someone.
    Restricted,
    /// Its record said nothing, or a lookup failed: never learned.
    Unreadable,
    /// Its record has not arrived yet (only while a listing runs).
    Pending,
}

impl Known {
    /// A record's answer: `None` when it did not say.
    pub(crate) fn of(restricted: Option<bool>) -> Self {
        match restricted {
            Some(false) => Known::Open,
            Some(true) => Known::Restricted,
            None => Known::Unreadable,
        }
    }

    /// Two states of one chain combined: a restriction anywhere closes it,
    /// whatever else is unknown; then anything still to come; then anything
    /// never learned.
    pub(crate) fn and(self, other: Known) -> Known {
        use Known::*;
        match (self, other) {
            (Restricted, _) | (_, Restricted) => Restricted,
            (Pending, _) | (_, Pending) => Pending,
            (Unreadable, _) | (_, Unreadable) => Unreadable,
            (Open, Open) => Open,
        }
    }

    /// Every state of a chain combined (an empty chain is open).
    pub(crate) fn all(states: impl IntoIterator<Item = Known>) -> Known {
        let mut chain = Known::Open;
        for state in states {
            chain = chain.and(state);
            if chain == Known::Restricted {
                break;
            }
        }
        chain
    }
}

/// Whether an item may be stored, as far as restrictions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It and every ancestor are open (or restricted content is included).
    Open,
    /// It has a read restriction itself.
    Restricted,
    /// An ancestor has one.
    RestrictedAncestor,
    /// Its own restriction or an ancestor's could not be learned.
    Unverifiable,
    /// Something it depends on has not arrived yet: wait.
    NotYetKnown,
}

impl Verdict {
    /// Why a complete listing leaves the item out, if it does. A verdict
    /// still waiting when the listing is complete counts as unverifiable.
    pub(crate) fn left_out(self) -> Option<LeftOutReason> {
        match self {
            Verdict::Open => None,
            Verdict::Restricted => Some(LeftOutReason::Restricted),
            Verdict::RestrictedAncestor => Some(LeftOutReason::RestrictedAncestor),
            Verdict::Unverifiable | Verdict::NotYetKnown => Some(LeftOutReason::Unverifiable),
        }
    }
}

/// The verdict on an item from its own state and its ancestors' combined
/// ([`Known::all`]). With `include_restricted` every item is open.
pub(crate) fn verdict(own: Known, ancestors: Known, include_restricted: bool) -> Verdict {
    if include_restricted {
        return Verdict::Open;
    }
    match own {
        Known::Restricted => return Verdict::Restricted,
        Known::Unreadable => return Verdict::Unverifiable,
        Known::Pending => return Verdict::NotYetKnown,
        Known::Open => {}
    }
    match ancestors {
        Known::Open => Verdict::Open,
        Known::Restricted => Verdict::RestrictedAncestor,
        Known::Unreadable => Verdict::Unverifiable,
        Known::Pending => Verdict::NotYetKnown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Known::*;

    #[test]
    fn an_item_is_open_only_when_it_and_every_ancestor_are() {
        assert_eq!(verdict(Open, Known::all([]), false), Verdict::Open);
        assert_eq!(
            verdict(Open, Known::all([Open, Open]), false),
            Verdict::Open
        );
        assert_eq!(
            verdict(Open, Known::all([Open, Restricted]), false),
            Verdict::RestrictedAncestor
        );
        assert_eq!(
            verdict(Open, Known::all([Unreadable, Open]), false),
            Verdict::Unverifiable
        );
    }

    #[test]
    fn its_own_state_decides_first() {
        assert_eq!(
            verdict(Restricted, Known::all([Restricted]), false),
            Verdict::Restricted
        );
        assert_eq!(verdict(Unreadable, Open, false), Verdict::Unverifiable);
        assert_eq!(verdict(Pending, Restricted, false), Verdict::NotYetKnown);
    }

    #[test]
    fn a_known_restriction_wins_over_anything_still_to_come_and_waiting_over_unknown() {
        assert_eq!(
            verdict(Open, Known::all([Pending, Restricted, Unreadable]), false),
            Verdict::RestrictedAncestor
        );
        assert_eq!(
            verdict(Open, Known::all([Unreadable, Pending]), false),
            Verdict::NotYetKnown,
            "a parent still to come may yet be restricted"
        );
    }

    #[test]
    fn including_restricted_content_opens_everything() {
        for own in [Open, Restricted, Unreadable, Pending] {
            for above in [Open, Restricted, Unreadable, Pending] {
                assert_eq!(verdict(own, above, true), Verdict::Open);
            }
        }
    }

    #[test]
    fn combining_is_order_free() {
        let all = [Open, Restricted, Unreadable, Pending];
        for a in all {
            for b in all {
                assert_eq!(a.and(b), b.and(a));
                for c in all {
                    assert_eq!(a.and(b).and(c), a.and(b.and(c)));
                }
            }
        }
    }

    #[test]
    fn a_waiting_verdict_left_at_the_end_is_unverifiable() {
        assert_eq!(
            Verdict::NotYetKnown.left_out(),
            Some(LeftOutReason::Unverifiable)
        );
        assert_eq!(Verdict::Open.left_out(), None);
        assert_eq!(
            Verdict::RestrictedAncestor.left_out(),
            Some(LeftOutReason::RestrictedAncestor)
        );
    }
}
