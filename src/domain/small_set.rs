//! `SmallSet`: a sorted set for the few ids an entity holds (a user's roles, the groups a
//! user was given, a group's children), in 24 bytes when it holds at most one.
//!
//! A `BTreeSet` allocates a node of eleven slots for its first element (about 100 bytes
//! for 8-byte ids, 280 for strings) and is 24 bytes itself; almost every user holds one
//! role and one group. `SmallSet` keeps no element, one element inline, or a boxed slice of
//! two or more, sorted and without duplicates, so it iterates, serialises and compares in
//! the order a `BTreeSet` does: snapshots and fingerprints are the same bytes. An insert
//! or a removal copies the slice, which is right for sets of a handful of elements and
//! wrong for large ones (a role's holders stay a `BTreeSet`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A sorted set of few elements, inline when it holds one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SmallSet<T>(Repr<T>);

#[derive(Clone, PartialEq, Eq, Hash, Default)]
enum Repr<T> {
    #[default]
    Empty,
    One(T),
    /// Two or more, sorted and distinct.
    Many(Box<[T]>),
}

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        SmallSet(Repr::Empty)
    }
}

impl<T: Ord> SmallSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The elements, in order.
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Many(many) => many,
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// How many elements the set holds.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the set holds no element.
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Empty)
    }

    /// Whether the set holds `value`.
    pub fn contains(&self, value: &T) -> bool {
        self.as_slice().binary_search(value).is_ok()
    }

    /// Adds `value`; whether it was not there yet.
    pub fn insert(&mut self, value: T) -> bool {
        let Err(at) = self.as_slice().binary_search(&value) else { return false };
        let mut elements = self.take_vec();
        elements.insert(at, value);
        *self = Self::from_sorted(elements);
        true
    }

    /// Removes `value`; whether it was there.
    pub fn remove(&mut self, value: &T) -> bool {
        let Ok(at) = self.as_slice().binary_search(value) else { return false };
        let mut elements = self.take_vec();
        elements.remove(at);
        *self = Self::from_sorted(elements);
        true
    }

    fn take_vec(&mut self) -> Vec<T> {
        match std::mem::take(&mut self.0) {
            Repr::Empty => Vec::new(),
            Repr::One(one) => vec![one],
            Repr::Many(many) => many.into_vec(),
        }
    }

    /// The set of sorted, distinct `elements`.
    fn from_sorted(mut elements: Vec<T>) -> Self {
        match elements.len() {
            0 => SmallSet(Repr::Empty),
            1 => elements.pop().map_or_else(Self::default, |one| SmallSet(Repr::One(one))),
            _ => SmallSet(Repr::Many(elements.into_boxed_slice())),
        }
    }
}

impl<T: Ord> FromIterator<T> for SmallSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut elements: Vec<T> = iter.into_iter().collect();
        elements.sort();
        elements.dedup();
        Self::from_sorted(elements)
    }
}

impl<'a, T: Ord> IntoIterator for &'a SmallSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Ord + fmt::Debug> fmt::Debug for SmallSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Written as a sequence, as a `BTreeSet` is.
impl<T: Ord + Serialize> Serialize for SmallSet<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Read from a sequence, as a `BTreeSet` is: sorted and deduplicated whatever the order read.
impl<'de, T: Ord + Deserialize<'de>> Deserialize<'de> for SmallSet<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(deserializer).map(|elements| elements.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::{RngExt, SeedableRng};

    use super::*;

    #[test]
    fn a_small_set_is_24_bytes_for_8_byte_elements_and_holds_one_inline() {
        assert_eq!(std::mem::size_of::<SmallSet<u64>>(), 24);
        assert!(matches!(SmallSet::from_iter([7u64]).0, Repr::One(7)));
    }

    /// It behaves as a `BTreeSet` does, and serialises to the same bytes, so that a
    /// snapshot or a fingerprint cannot tell them apart.
    #[test]
    fn a_small_set_answers_and_serialises_as_a_btree_set_over_random_inserts_and_removals() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..200 {
            let (mut small, mut reference) = (SmallSet::new(), BTreeSet::new());
            for _ in 0..rng.random_range(0..12) {
                let value: u8 = rng.random_range(0..6);
                if rng.random_bool(0.6) {
                    assert_eq!(small.insert(value), reference.insert(value));
                } else {
                    assert_eq!(small.remove(&value), reference.remove(&value));
                }
                assert!(small.iter().eq(reference.iter()));
                assert_eq!((small.len(), small.is_empty()), (reference.len(), reference.is_empty()));
                assert!((0..6).all(|value| small.contains(&value) == reference.contains(&value)));
                let bytes = postcard::to_stdvec(&small).unwrap();
                assert_eq!(bytes, postcard::to_stdvec(&reference).unwrap());
                assert_eq!(postcard::from_bytes::<SmallSet<u8>>(&bytes).unwrap(), small);
                assert_eq!(format!("{small:?}"), format!("{reference:?}"));
            }
        }
    }
}
