//! Which functions each user's keys were last recorded using, for the unused access
//! report (issue #14): a projection of the usage records, kept in [`super::State`].
//!
//! A `KeyUsageIntervalRecorded` of version 2 counts each key's passed checks per function,
//! so the last use of every function by every user is exact from the first record of the
//! log on, except across usage recorded before functions were counted (version 1 of that
//! record, and `KeyUsageRecorded`): a passed check recorded that way could have been of any
//! function. [`FunctionUsage::exact_since`] is the time after the last such check: a window
//! that starts at or after it is answered exactly.
//!
//! Memory: one map entry per user whose keys passed a check, holding one `(function,
//! time)` pair (16 bytes) per function used; nothing for users who never used a key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FunctionId, FunctionUse, Timestamp, UserId};

/// One user's functions and when each was last used, sorted by function.
pub(super) type UsedFunctions = Box<[(FunctionId, Timestamp)]>;

/// The last recorded use of each function by each user's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUsage {
    /// From when every passed check was recorded with its function; `None` when every
    /// one was (no usage was recorded without its functions).
    exact_since: Option<Timestamp>,
    /// Per user, each function it used and when last, sorted by function.
    last_used: BTreeMap<UserId, Box<[(FunctionId, Timestamp)]>>,
}

impl FunctionUsage {
    /// Notes passed checks recorded without their functions, the last at `last`.
    pub(super) fn note_uncounted(&mut self, last: Timestamp) {
        let after = Timestamp::from_unix_millis(last.unix_millis().saturating_add(1));
        self.exact_since = Some(self.exact_since.map_or(after, |since| since.max(after)));
    }

    /// Notes the functions `user`'s key passed checks of in a usage record from `from`.
    pub(super) fn note_used(&mut self, user: &UserId, from: Timestamp, functions: &[FunctionUse]) {
        if functions.is_empty() {
            return;
        }
        let mut used: Vec<(FunctionId, Timestamp)> =
            self.last_used.get(user).map(|kept| kept.to_vec()).unwrap_or_default();
        for function in functions.iter().filter(|function| function.1 > 0) {
            let at = function.last_used_at(from);
            match used.binary_search_by_key(&function.0, |kept| kept.0) {
                Ok(index) => used[index].1 = used[index].1.max(at),
                Err(index) => used.insert(index, (function.0, at)),
            }
        }
        self.last_used.insert(user.clone(), used.into_boxed_slice());
    }

    /// `user`'s entry as it stands, for the batch journal ([`super::State::rollback_batch`]).
    pub(super) fn kept(&self, user: &UserId) -> Option<UsedFunctions> {
        self.last_used.get(user).cloned()
    }

    /// Puts back `user`'s entry as [`FunctionUsage::kept`] returned it.
    pub(super) fn restore(&mut self, user: UserId, kept: Option<UsedFunctions>) {
        match kept {
            Some(kept) => self.last_used.insert(user, kept),
            None => self.last_used.remove(&user),
        };
    }

    /// Puts back `exact_since` as [`FunctionUsage::exact_since`] returned it.
    pub(super) fn restore_exact_since(&mut self, exact_since: Option<Timestamp>) {
        self.exact_since = exact_since;
    }

    /// From when every passed check is known with its function; `None` when every one is.
    pub fn exact_since(&self) -> Option<Timestamp> {
        self.exact_since
    }

    /// When `user`'s keys last passed a check of `function`, as recorded.
    pub fn last_used(&self, user: &UserId, function: FunctionId) -> Option<Timestamp> {
        let used = self.last_used.get(user)?;
        used.binary_search_by_key(&function, |kept| kept.0).ok().map(|index| used[index].1)
    }
}
