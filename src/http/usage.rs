//! Key usage, counted in memory on every check and recorded now and then.
//!
//! A use is every check of a known key: `checkKey`, `authorizeRequest`, and every admin
//! request the key authenticates, whether it passes or fails. Keys that are not known
//! (malformed, never issued, or replaced past their grace period) have no id to count
//! against and are left to the brute-force limiter. The counts stay here until the
//! background task in `crate::app` takes them and records them in one
//! `KeyUsageIntervalRecorded` per interval (one per `MAX_KEYS_PER_USAGE_RECORD` keys).
//!
//! Counting costs one uncontended lock of one of [`SHARDS`] small maps, chosen by the
//! key's hash, and a hash-map update: no allocation once a key was counted in the current
//! interval. The maps hold at most one entry per key used since the last flush, so they
//! are bounded by the number of keys.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::domain::{FunctionId, KeyHash, KeyHashHasher, KeyUsage, Timestamp};

/// How many independently locked maps the counts are spread over, so that workers
/// counting different keys never wait for each other.
pub const SHARDS: usize = 16;

type Tallies = HashMap<KeyHash, KeyUsage, BuildHasherDefault<KeyHashHasher>>;

/// Checks per key since the last flush.
#[derive(Debug, Default)]
pub struct KeyUsageCounter {
    shards: [Mutex<Tallies>; SHARDS],
}

impl KeyUsageCounter {
    fn shard(&self, key_hash: &KeyHash) -> MutexGuard<'_, Tallies> {
        // The map inside a shard indexes by the low bits of the same hash; pick the shard
        // by other bits so that each shard's map still spreads its keys.
        let bits = BuildHasherDefault::<KeyHashHasher>::default().hash_one(key_hash) >> 32;
        let index = usize::try_from(bits).unwrap_or(0) % SHARDS;
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one check of a known key, made at `at`, of `function` when the check names
    /// a function of the catalogue: a passed one counts against the key and the function.
    pub fn count(&self, key_hash: KeyHash, function: Option<FunctionId>, allowed: bool, at: Timestamp) {
        let one = match function {
            Some(function) => KeyUsage::of_one_check_of(key_hash, function, allowed, at),
            None => KeyUsage::of_one_check(key_hash, allowed, at),
        };
        match self.shard(&key_hash).entry(key_hash) {
            Entry::Occupied(mut counted) => counted.get_mut().merge(&one),
            Entry::Vacant(first) => {
                first.insert(one);
            }
        }
    }

    /// Takes every count, leaving none: what the next record of usage holds.
    pub fn take(&self) -> Vec<KeyUsage> {
        let mut taken = Vec::new();
        for shard in &self.shards {
            let tallies = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            taken.extend(tallies.into_values());
        }
        taken
    }

    /// Gives back counts that could not be recorded, adding them to any counted since, so
    /// that the next flush records them.
    pub fn put_back(&self, usage: &[KeyUsage]) {
        for returned in usage {
            match self.shard(&returned.key_hash).entry(returned.key_hash) {
                Entry::Occupied(mut counted) => counted.get_mut().merge(returned),
                Entry::Vacant(empty) => {
                    empty.insert(returned.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeySecret;

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000).plus_seconds(seconds)
    }

    #[test]
    fn checks_are_counted_per_key_and_taking_them_empties_the_counter() {
        let counter = KeyUsageCounter::default();
        let (one, other) = (KeySecret::generate(&mut rand::rng()).hash(), KeySecret::generate(&mut rand::rng()).hash());
        let (read, write) = (FunctionId::USERS_READ, FunctionId::USERS_MANAGE);
        counter.count(one, Some(write), true, at(2));
        counter.count(one, Some(write), false, at(1));
        counter.count(one, Some(read), true, at(3));
        counter.count(one, Some(write), true, at(4));
        counter.count(one, None, true, at(4));
        counter.count(other, Some(read), false, at(5));
        let mut taken = counter.take();
        taken.sort_by_key(|usage| usage.first_used_at);
        let functions = {
            let mut counted = vec![(read, 1, at(3)), (write, 2, at(4))];
            counted.sort();
            counted
        };
        let expected = [
            KeyUsage { key_hash: one, allowed: 4, refused: 1, first_used_at: at(1), last_used_at: at(4), functions },
            KeyUsage {
                key_hash: other,
                allowed: 0,
                refused: 1,
                first_used_at: at(5),
                last_used_at: at(5),
                functions: vec![],
            },
        ];
        assert_eq!(taken, expected);
        assert!(counter.take().is_empty());
    }

    #[test]
    fn counts_put_back_after_a_failed_record_are_added_to_the_newer_ones() {
        let counter = KeyUsageCounter::default();
        let key = KeySecret::generate(&mut rand::rng()).hash();
        let function = FunctionId::USERS_READ;
        counter.count(key, Some(function), true, at(1));
        let failed = counter.take();
        counter.count(key, Some(function), false, at(9));
        counter.count(key, Some(function), true, at(7));
        counter.put_back(&failed);
        assert_eq!(
            counter.take(),
            [KeyUsage {
                key_hash: key,
                allowed: 2,
                refused: 1,
                first_used_at: at(1),
                last_used_at: at(9),
                functions: vec![(function, 2, at(7))],
            }]
        );
    }
}
