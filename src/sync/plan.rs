//! How one sync reads a space: a pure choice from counts, kept apart from the
//! engine so that it can be tested without a network.
//!
//! Listing with bodies costs about what listing ids costs (both are paged by
//! the listing's page size), so it wins whenever most items must be fetched:
//! it saves the id pass and every bulk fetch. When few items changed, bodies
//! of the unchanged ones would be transferred for nothing; listing ids and
//! fetching the changed ones is then cheaper in bytes and, for a handful of
//! changes, costs just one or two requests more. Once ids are listed, fetching
//! the changed items in bulk never costs more requests than listing again with
//! bodies, so the choice must be made before listing, from what the stores
//! already hold.

/// How to read the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One listing pass that carries bodies, labels and ancestors.
    ListWithBodies,
    /// List ids and versions, then fetch only new or changed items.
    ListIdsFetchChanged,
}

/// What is known before listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Items of the space held by the emptiest store.
    pub stored_min: usize,
    /// Items held by the fullest store: the best guess of the space's size
    /// before listing it.
    pub stored_max: usize,
}

/// A store holding less than this share of the space counts as mostly empty.
const MOSTLY_EMPTY_NUMERATOR: usize = 1;
const MOSTLY_EMPTY_DENOMINATOR: usize = 2;

/// Lists with bodies when some store is empty, or holds less than half of
/// what another store holds (a store added later, or restored from an old
/// backup); otherwise lists ids and fetches what changed.
pub fn choose(counts: Counts) -> Plan {
    if counts.stored_min == 0 {
        return Plan::ListWithBodies;
    }
    if counts.stored_min * MOSTLY_EMPTY_DENOMINATOR < counts.stored_max * MOSTLY_EMPTY_NUMERATOR {
        Plan::ListWithBodies
    } else {
        Plan::ListIdsFetchChanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(stored_min: usize, stored_max: usize) -> Counts {
        Counts {
            stored_min,
            stored_max,
        }
    }

    #[test]
    fn an_empty_store_gets_everything_in_one_listing_pass() {
        assert_eq!(choose(counts(0, 0)), Plan::ListWithBodies);
        assert_eq!(choose(counts(0, 10_000)), Plan::ListWithBodies);
    }

    #[test]
    fn a_store_holding_less_than_half_of_another_is_refilled_by_listing_bodies() {
        assert_eq!(choose(counts(4_999, 10_000)), Plan::ListWithBodies);
        assert_eq!(choose(counts(1, 3)), Plan::ListWithBodies);
    }

    #[test]
    fn full_stores_list_ids_and_fetch_only_changes() {
        assert_eq!(choose(counts(5_000, 10_000)), Plan::ListIdsFetchChanged);
        assert_eq!(choose(counts(10_000, 10_000)), Plan::ListIdsFetchChanged);
        assert_eq!(choose(counts(1, 1)), Plan::ListIdsFetchChanged);
    }
}
