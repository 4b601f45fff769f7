//! Bodies of listed pages that wait to be vetted, held up to a byte budget
//! (both streaming listings).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Page text (storage format) held at once while pages wait to be vetted;
/// past it the oldest bodies are dropped and those pages fetched later.
/// Converted pages take about three times this.
pub(crate) const HELD_BODY_BUDGET: usize = 16 * 1024 * 1024;

/// A listed item that may carry a body counted against the budget.
pub(crate) trait Body {
    /// Length of its storage-format text (0 without one).
    fn body_len(&self) -> usize;
}

/// Held bodies by listing position, oldest first.
pub(crate) struct Held<K, B> {
    bodies: HashMap<K, B>,
    order: VecDeque<K>,
    bytes: usize,
    at_most: usize,
}

impl<K: Copy + Eq + Hash, B: Body> Held<K, B> {
    pub(crate) fn new() -> Self {
        Held {
            bodies: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            at_most: 0,
        }
    }

    /// Holds the body of the item at `key` (the newest).
    pub(crate) fn hold(&mut self, key: K, body: B) {
        self.bytes += body.body_len();
        self.bodies.insert(key, body);
        self.order.push_back(key);
    }

    pub(crate) fn contains(&self, key: K) -> bool {
        self.bodies.contains_key(&key)
    }

    /// Takes the body of the item at `key` out, if it is still held.
    pub(crate) fn release(&mut self, key: K) -> Option<B> {
        let body = self.bodies.remove(&key)?;
        self.bytes -= body.body_len();
        Some(body)
    }

    /// Drops the oldest held bodies past the budget (fetched later).
    pub(crate) fn trim(&mut self) {
        self.at_most = self.at_most.max(self.bodies.len());
        while self.bytes > HELD_BODY_BUDGET {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            self.release(key);
        }
        if self.bodies.is_empty() {
            self.order.clear();
        }
    }

    /// The most bodies held at once (counted at each trim).
    pub(crate) fn at_most(&self) -> usize {
        self.at_most
    }

    /// What is still held, in listing order.
    pub(crate) fn into_listing_order(self) -> Vec<B>
    where
        K: Ord,
    {
        let mut held: Vec<(K, B)> = self.bodies.into_iter().collect();
        held.sort_unstable_by_key(|(key, _)| *key);
        held.into_iter().map(|(_, body)| body).collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bodies.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Body for String {
        fn body_len(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn past_the_budget_the_oldest_bodies_go_first() {
        let mut held: Held<usize, String> = Held::new();
        let big = "x".repeat(HELD_BODY_BUDGET / 2 + 1);
        for i in 1..=3 {
            held.hold(i, big.clone());
        }
        held.trim();
        assert!(held.bytes() <= HELD_BODY_BUDGET);
        assert_eq!(held.len(), 1);
        assert!(held.contains(3));
        assert_eq!(held.at_most(), 3);
        assert_eq!(held.release(3).map(|b| b.len()), Some(big.len()));
        assert_eq!(held.bytes(), 0);
        held.trim();
        assert!(held.is_empty());
    }

    #[test]
    fn what_is_left_comes_back_in_listing_order() {
        let mut held: Held<u32, String> = Held::new();
        for i in [5, 1, 3] {
            held.hold(i, i.to_string());
        }
        held.release(3);
        assert_eq!(held.into_listing_order(), ["1", "5"]);
    }
}
