//! Projection snapshots: the permission view at a log position, saved so that start-up
//! replays only the records after it.
//!
//! A snapshot file is `snapshot-<seq>.bin` in the snapshot directory:
//!
//! ```text
//! "KLSNAP05" | blake3 of the body (32 bytes) | body = postcard(Snapshot)
//! ```
//!
//! postcard is not self-describing, so the magic names the layout of the state: any change
//! to the serialised `State` bumps its number (`KLSNAP02` added each key's last use,
//! `KLSNAP03` where a user was created by a recovery or, on another branch, the
//! lookalike-name indexes, `KLSNAP04` the groups each event reaches through nesting,
//! `KLSNAP05` all of these together), and a snapshot of another layout is refused before
//! decoding rather than mis-decoded. A test serialises a fixed state and compares its
//! digest with `LAYOUT_DIGEST_FOR_MAGIC`, so a layout change cannot go in without both
//! being bumped.
//!
//! It is trusted only if its checksum matches, it was written by a build with the same
//! function catalogue, and the log's record at its position has the chain hash it names;
//! otherwise keyledger ignores it and replays the whole log. Files are written to a
//! temporary name, fsynced and renamed, so a crash never leaves a half-written snapshot
//! under a real name. A snapshot holds key hashes and ids, never a secret.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{CATALOGUE, State, Timestamp};
use crate::log::ChainHash;

/// The magic of this build's snapshots: [`MAGIC_PREFIX`] and the layout's number.
const MAGIC: &[u8; 8] = b"KLSNAP05";
/// blake3 of the magic and the body of a snapshot of a fixed state, for the test that
/// fails when the layout changes: a change to the serialised `State` bumps [`MAGIC`] and
/// records the new digest here (the test prints it).
#[cfg(test)]
const LAYOUT_DIGEST_FOR_MAGIC: &str = "a2222811fdddf647a81445386c4f0f026032fa4a1028ae6a7c299007b47dce14";
/// What every keyledger snapshot starts with, whatever its layout.
const MAGIC_PREFIX: &[u8; 6] = b"KLSNAP";
/// How many snapshot files to keep; older ones are removed after a new one is written.
const KEEP: usize = 2;

/// The view at a position of the log.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The sequence number of the last record the state includes.
    pub seq: u64,
    /// That record's chain hash.
    pub head_hash: ChainHash,
    /// That record's time.
    pub last_at: Timestamp,
    /// A fingerprint of the build's function catalogue; the state's function sets are bit
    /// masks over it.
    pub catalogue: [u8; 32],
    /// The permission view.
    pub state: State,
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing failed.
    #[error("snapshot I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a snapshot, or its checksum does not match.
    #[error("snapshot {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The snapshot was written by a build with another layout of the state.
    #[error("snapshot {} has layout {found}, this build reads {}", path.display(), String::from_utf8_lossy(MAGIC))]
    OtherFormat {
        /// The file.
        path: PathBuf,
        /// The magic it starts with.
        found: String,
    },
    /// The snapshot was written by a build with another function catalogue.
    #[error("snapshot {} was written by a build with another function catalogue", .0.display())]
    OtherCatalogue(PathBuf),
}

/// The fingerprint of this build's function catalogue.
pub fn catalogue_fingerprint() -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for info in &CATALOGUE {
        hasher.update(info.id.as_bytes());
        hasher.update(b"\n");
    }
    *hasher.finalize().as_bytes()
}

fn file_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.bin")
}

fn seq_of(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix("snapshot-")?.strip_suffix(".bin")?.parse().ok()
}

/// A snapshot as it is serialised: [`Snapshot`] with the state borrowed.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    seq: u64,
    head_hash: ChainHash,
    last_at: Timestamp,
    catalogue: [u8; 32],
    state: &'a State,
}

impl SnapshotRef<'_> {
    /// The body of the snapshot file: the snapshot in postcard.
    fn body(&self) -> Result<Vec<u8>, SnapshotError> {
        postcard::to_stdvec(self).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))
    }
}

/// Writes a snapshot durably into `dir` and removes all but the newest few.
pub fn write(
    dir: &Path,
    seq: u64,
    head_hash: ChainHash,
    last_at: Timestamp,
    state: &State,
) -> Result<PathBuf, SnapshotError> {
    fs::create_dir_all(dir)?;
    let body = SnapshotRef { seq, head_hash, last_at, catalogue: catalogue_fingerprint(), state }.body()?;
    let path = dir.join(file_name(seq));
    let temporary = dir.join(format!("{}.tmp", file_name(seq)));
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(blake3::hash(&body).as_bytes())?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, &path)?;
    fs::File::open(dir)?.sync_all()?;
    prune(dir)?;
    Ok(path)
}

fn snapshots_newest_first(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut found = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry?.path();
                if let Some(seq) = seq_of(&path) {
                    found.push((seq, path));
                }
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    found.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    Ok(found)
}

fn prune(dir: &Path) -> Result<(), SnapshotError> {
    for (_, path) in snapshots_newest_first(dir)?.into_iter().skip(KEEP) {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// Reads one snapshot file, checking its checksum and catalogue.
pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
    let bytes = fs::read(path)?;
    let corrupt = |reason: &str| SnapshotError::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    if bytes.len() < MAGIC.len() + 32 || !bytes.starts_with(MAGIC_PREFIX) {
        return Err(corrupt("not a keyledger snapshot"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        let found = String::from_utf8_lossy(&bytes[..MAGIC.len()]).into_owned();
        return Err(SnapshotError::OtherFormat { path: path.to_owned(), found });
    }
    let (checksum, body) = bytes[MAGIC.len()..].split_at(32);
    if blake3::hash(body).as_bytes() != checksum {
        return Err(corrupt("checksum mismatch"));
    }
    let snapshot: Snapshot = postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
    if snapshot.catalogue != catalogue_fingerprint() {
        return Err(SnapshotError::OtherCatalogue(path.to_owned()));
    }
    Ok(snapshot)
}

/// The newest snapshot in `dir` that reads back intact, skipping (and reporting) any that
/// do not. `None` when there is none.
pub fn latest(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    for (_, path) in snapshots_newest_first(dir)? {
        match read(&path) {
            Ok(snapshot) => return Ok(Some(snapshot)),
            Err(error) => tracing::warn!(%error, "ignoring a snapshot"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;
    use crate::domain::{EventAccess, EventId, GroupId, KeyHash, KeyId, KeyStatus, Position, RoleId, UserId};

    /// A state that holds every kind of serialised field: users enabled and recovered,
    /// with roles, event access by groups and to all events; a role with functions and a
    /// holder; nested groups with events; keys active, replaced, revoked and used; and the
    /// name indexes. It is [`Event::examples`] and a few events more, at fixed times.
    fn state_with_every_kind_of_field() -> State {
        let (user, group) = (UserId::example(1), GroupId::example(1));
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let more = [
            Event::EventGroupCreated { group_id: GroupId::example(2), name: "Germany".into(), parent_id: Some(group) },
            Event::EventAddedToGroup { group_id: GroupId::example(2), event_id: EventId::example(2) },
            Event::RoleAssigned { user_id: user.clone(), role_id: RoleId::example(1) },
            Event::KeyGenerated {
                user_id: user.clone(),
                key_id: KeyId::example(3),
                key_hash: KeyHash::example(3),
                expires_at: None,
                replaced_key_id: None,
                replaced_key_valid_until: None,
            },
            Event::KeyGenerated {
                user_id: user.clone(),
                key_id: KeyId::example(4),
                key_hash: KeyHash::example(4),
                expires_at: Some(at.plus_seconds(86_400)),
                replaced_key_id: Some(KeyId::example(3)),
                replaced_key_valid_until: Some(at.plus_seconds(3_600)),
            },
            Event::KeyUsageRecorded {
                user_id: user,
                key_id: KeyId::example(4),
                allowed: 1,
                refused: 0,
                first_used_at: at,
                last_used_at: at.plus_seconds(10),
            },
            Event::EventAccessSet { user_id: UserId::example(2), all_events: true, groups: vec![] },
        ];
        let mut state = State::default();
        for (event, seq) in Event::examples().iter().chain(&more).zip(1..) {
            state.apply(Position { seq, at: at.plus_seconds(seq) }, event);
        }
        state
    }

    #[test]
    fn the_snapshot_layout_changes_only_with_a_new_magic() {
        let state = state_with_every_kind_of_field();
        let statuses: Vec<KeyStatus> = state.keys().map(|key| key.status()).collect();
        assert!(statuses.contains(&KeyStatus::Active));
        assert!(statuses.iter().any(|status| matches!(status, KeyStatus::Replaced { .. })));
        assert!(statuses.iter().any(|status| matches!(status, KeyStatus::Revoked { .. })));
        assert!(state.keys().any(|key| key.last_used_at().is_some()));
        assert!(state.group(&GroupId::example(2)).unwrap().parent().is_some());
        assert!(state.user(&UserId::example(2)).unwrap().recovered().is_some());
        assert_eq!(state.user(&UserId::example(2)).unwrap().event_access(), &EventAccess::AllEvents);
        assert!(state.role(&RoleId::example(1)).unwrap().holders().contains(&UserId::example(1)));
        assert!(
            state.role_by_description("api access").is_some() && state.user_named_like("RECOVERED ADMIN").is_some()
        );

        // The catalogue fingerprint is left out: a new function is not a new layout.
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let snapshot = SnapshotRef {
            seq: state.head(),
            head_hash: ChainHash::GENESIS,
            last_at: at,
            catalogue: [0; 32],
            state: &state,
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(MAGIC);
        hasher.update(&snapshot.body().unwrap());
        let digest = hasher.finalize().to_hex().to_string();
        assert!(
            digest == LAYOUT_DIGEST_FOR_MAGIC,
            "the serialised State of a fixed history changed: if its layout changed (a field added, removed, \
             retyped or moved), bump MAGIC (now {}) and set LAYOUT_DIGEST_FOR_MAGIC to \"{digest}\"; if only the \
             fixed history or the function catalogue's order did, set the digest alone",
            String::from_utf8_lossy(MAGIC)
        );
    }

    fn state_with_a_user() -> State {
        let mut state = State::default();
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let user_id = UserId::parse("usr_00000000000000aa").unwrap();
        state.apply(Position { seq: 1, at }, &Event::UserCreated { user_id, name: "Ann".to_owned(), email: None });
        state
    }

    #[test]
    fn a_written_snapshot_reads_back_with_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_with_a_user();
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        write(dir.path(), 1, ChainHash::GENESIS, at, &state).unwrap();
        let snapshot = latest(dir.path()).unwrap().unwrap();
        assert_eq!(snapshot.seq, 1);
        assert_eq!(snapshot.state.head(), 1);
        assert_eq!(snapshot.state.user(&UserId::parse("usr_00000000000000aa").unwrap()).unwrap().name(), "Ann");
    }

    #[test]
    fn a_corrupt_snapshot_is_skipped_for_an_older_intact_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_with_a_user();
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        write(dir.path(), 1, ChainHash::GENESIS, at, &state).unwrap();
        let newer = write(dir.path(), 2, ChainHash::GENESIS, at, &state).unwrap();
        let mut bytes = fs::read(&newer).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newer, bytes).unwrap();
        assert!(matches!(read(&newer), Err(SnapshotError::Corrupt { .. })));
        assert_eq!(latest(dir.path()).unwrap().unwrap().seq, 1);
    }

    #[test]
    fn a_snapshot_of_an_earlier_layout_is_refused_before_decoding_so_the_whole_log_is_replayed() {
        // A KLSNAP02 snapshot holds only the groups that contain each event directly; the
        // KLSNAP03 and KLSNAP04 ones written by commits before everything was merged each
        // lack some of the current layout. Their checksums are intact, so only the magic can tell them
        // from a current one; postcard would mis-decode them.
        for old in [b"KLSNAP02", b"KLSNAP03", b"KLSNAP04"] {
            let dir = tempfile::tempdir().unwrap();
            let at = Timestamp::from_unix_millis(1_800_000_000_000);
            let path = write(dir.path(), 1, ChainHash::GENESIS, at, &state_with_a_user()).unwrap();
            let mut bytes = fs::read(&path).unwrap();
            bytes[..8].copy_from_slice(old);
            fs::write(&path, bytes).unwrap();
            let expected = std::str::from_utf8(old).unwrap();
            assert!(matches!(read(&path), Err(SnapshotError::OtherFormat { found, .. }) if found == expected));
            assert!(latest(dir.path()).unwrap().is_none(), "no usable snapshot: the whole log is replayed");
        }
    }

    #[test]
    fn only_the_newest_snapshots_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::default();
        let at = Timestamp::from_unix_millis(0);
        for seq in 1..=5 {
            write(dir.path(), seq, ChainHash::GENESIS, at, &state).unwrap();
        }
        let kept: Vec<u64> = snapshots_newest_first(dir.path()).unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(kept, vec![5, 4]);
    }
}
