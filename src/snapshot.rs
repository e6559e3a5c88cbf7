//! Projection snapshots: the permission view at a log position, saved so that start-up
//! replays only the records after it.
//!
//! A snapshot file is `snapshot-<seq>.bin` in the snapshot directory:
//!
//! ```text
//! "KLSNAP08" | blake3 of the body (32 bytes) | body = postcard(Snapshot)
//! ```
//!
//! postcard is not self-describing, so the magic names the layout of the state: any change
//! to the serialised `State` bumps its number (`KLSNAP02` added each key's last use,
//! `KLSNAP03` where a user was created by a recovery or, on another branch, the
//! lookalike-name indexes, `KLSNAP04` the groups each event reaches through nesting,
//! `KLSNAP05` all of these together, `KLSNAP06` key hashes as 32 bytes instead of 64 hex
//! characters, `KLSNAP07` role, user, group and key ids as the 8 bytes of their number
//! instead of their text, and users in a sequence by slot beside an index of their
//! slots; `KLSNAP08` each user's last use of each function, for the unused access report,
//! the key policy and each key's legacy mark, issue #14), and a snapshot of another layout is refused before
//! decoding rather than mis-decoded. A test serialises a fixed state and compares its
//! digest with `LAYOUT_DIGEST_FOR_MAGIC`, so a layout change cannot go in without both
//! being bumped.
//!
//! It is trusted only if its checksum matches, it was written by a build with the same
//! function catalogue, and the log's record at its position has the chain hash it names;
//! otherwise keyledger ignores it and starts from an older one, or replays the whole log.
//! Files are written to a temporary name, fsynced and renamed (and the directory fsynced),
//! so a crash never leaves a half-written snapshot under a real name; a temporary file a
//! crash left behind is never read and is removed by the next prune. A snapshot holds key
//! hashes and ids, never a secret.
//!
//! # Retention
//!
//! Snapshots are kept at spaced positions, not only the newest: the view at any point of
//! the history ([`crate::history`]) starts from the nearest retained snapshot at or before
//! it and replays only what follows. [`retained`] keeps the newest [`RECENT`] (start-up,
//! and a fallback should the newest be unreadable) and, of the others, the last one in
//! each interval of `spacing` records (the snapshot interval), doubling the spacing
//! whenever more than [`SPACED`] intervals would be kept. So the directory holds at most
//! `RECENT + SPACED` files whatever the log's size, and a point-in-time question replays
//! at most two spacings (one while the log has fewer than `SPACED` intervals, when every
//! snapshot written is kept).

use std::fs;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{CATALOGUE, State, Timestamp};
use crate::log::{ChainHash, EventLog};

/// The magic of this build's snapshots: [`MAGIC_PREFIX`] and the layout's number.
const MAGIC: &[u8; 8] = b"KLSNAP08";
/// blake3 of the magic and the body of a snapshot of a fixed state, for the test that
/// fails when the layout changes: a change to the serialised `State` bumps [`MAGIC`] and
/// records the new digest here (the test prints it).
#[cfg(test)]
const LAYOUT_DIGEST_FOR_MAGIC: &str = "dcb47beb69817e472efa71eca85e6236769281e8a9d683facc20231c35692b8d";
/// What every keyledger snapshot starts with, whatever its layout.
const MAGIC_PREFIX: &[u8; 6] = b"KLSNAP";
/// How many of the newest snapshot files are always kept.
pub const RECENT: usize = 2;
/// The most spaced intervals whose last snapshot is kept; the spacing doubles beyond.
pub const SPACED: u64 = 16;
/// How many bytes of a file are read to learn its position and time ([`header`]): the
/// magic, the checksum and the fields before the state, with room to spare.
const HEADER_BYTES: usize = 512;

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

/// What a snapshot says of itself before its state: where in the log it stands. Read
/// without the checksum ([`header`]), so only good for choosing which snapshot to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// The sequence number of the last record the state includes.
    pub seq: u64,
    /// That record's chain hash.
    pub head_hash: ChainHash,
    /// That record's time.
    pub last_at: Timestamp,
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

/// A writer that hashes what goes through it.
struct Hashing<W> {
    hasher: blake3::Hasher,
    inner: W,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
impl SnapshotRef<'_> {
    /// The body of the snapshot file: the snapshot in postcard.
    fn body(&self) -> Result<Vec<u8>, SnapshotError> {
        postcard::to_stdvec(self).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))
    }
}

/// Writes a snapshot durably into `dir`. [`prune`] thins the directory afterwards.
pub fn write(
    dir: &Path,
    seq: u64,
    head_hash: ChainHash,
    last_at: Timestamp,
    state: &State,
) -> Result<PathBuf, SnapshotError> {
    fs::create_dir_all(dir)?;
    let snapshot = SnapshotRef { seq, head_hash, last_at, catalogue: catalogue_fingerprint(), state };
    let path = dir.join(file_name(seq));
    let temporary = dir.join(format!("{}.tmp", file_name(seq)));
    {
        // The body is streamed into the file and hashed on the way, so that no copy of it
        // is held in memory (it is hundreds of bytes per user); the checksum goes in its
        // place once the body is written.
        let mut file = fs::File::create(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(&[0; 32])?;
        let mut body = Hashing { hasher: blake3::Hasher::new(), inner: std::io::BufWriter::new(&mut file) };
        postcard::to_io(&snapshot, &mut body).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        let checksum = body.hasher.finalize();
        body.inner.flush()?;
        drop(body);
        file.seek(std::io::SeekFrom::Start(MAGIC.len() as u64))?;
        file.write_all(checksum.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&temporary, &path)?;
    fs::File::open(dir)?.sync_all()?;
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

/// The positions of `seqs` (snapshot positions, newest first) that retention keeps: the
/// newest [`RECENT`], and the last one in each interval of `spacing` records, the spacing
/// doubled until at most [`SPACED`] intervals reach the newest.
pub fn retained(seqs_newest_first: &[u64], spacing: u64) -> std::collections::BTreeSet<u64> {
    let mut kept: std::collections::BTreeSet<u64> = seqs_newest_first.iter().take(RECENT).copied().collect();
    let Some(&newest) = seqs_newest_first.first() else { return kept };
    let mut spacing = spacing.max(1);
    while newest / spacing >= SPACED {
        spacing = spacing.saturating_mul(2);
    }
    let mut interval = None;
    for &seq in seqs_newest_first {
        // Newest first: the first seen of each interval is its last.
        if interval != Some(seq / spacing) {
            interval = Some(seq / spacing);
            kept.insert(seq);
        }
    }
    kept
}

/// Removes the snapshots [`retained`] does not keep, and any temporary file left by a
/// write that a crash interrupted. Only the writer writes and prunes, one at a time.
pub fn prune(dir: &Path, spacing: u64) -> Result<(), SnapshotError> {
    let found = snapshots_newest_first(dir)?;
    let seqs: Vec<u64> = found.iter().map(|(seq, _)| *seq).collect();
    let kept = retained(&seqs, spacing);
    for (seq, path) in found {
        if !kept.contains(&seq) {
            fs::remove_file(path)?;
        }
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "tmp") {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Reads where a snapshot file stands in the log from its first bytes, without reading
/// its state or checking its checksum. `None` when it is not a snapshot of this layout.
pub fn header(path: &Path) -> Option<Header> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(HEADER_BYTES);
    fs::File::open(path).ok()?.take(HEADER_BYTES as u64).read_to_end(&mut bytes).ok()?;
    let body = bytes.strip_prefix(MAGIC)?.get(32..)?;
    postcard::take_from_bytes::<Header>(body).ok().map(|(header, _)| header)
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
    let (intact, decoded) = checked_and_decoded(checksum, body);
    if !intact {
        return Err(corrupt("checksum mismatch"));
    }
    let snapshot = decoded.map_err(|e| corrupt(&e.to_string()))?;
    if snapshot.catalogue != catalogue_fingerprint() {
        return Err(SnapshotError::OtherCatalogue(path.to_owned()));
    }
    Ok(snapshot)
}

/// Whether `body` has the blake3 `checksum`, and the snapshot it decodes to. With a
/// second core the body is hashed there while this one decodes it (at 1M users hashing is
/// about a tenth of the read), and a decode is used only once the checksum matched, as
/// `read` does; with one core the checksum is checked first and a corrupt body is never
/// decoded. Decoding a corrupt body is harmless either way: postcard only fails on it
/// (every length is checked against the bytes left, and no `Deserialize` of the state
/// panics), and its result is dropped.
fn checked_and_decoded(checksum: &[u8], body: &[u8]) -> (bool, Result<Snapshot, postcard::Error>) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cores < 2 {
        if blake3::hash(body).as_bytes() != checksum {
            return (false, Err(postcard::Error::DeserializeBadEncoding));
        }
        return (true, postcard::from_bytes(body));
    }
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| blake3::hash(body));
        let decoded = postcard::from_bytes(body);
        let hash = hashing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (hash.as_bytes() == checksum, decoded)
    })
}

/// Whether the log's record at `seq` exists and has the chain hash `hash`: what makes a
/// snapshot at `seq` the view of this log's first `seq` records, given that the chain up
/// to it verified when those records were first replayed.
pub fn matches_log<L: EventLog>(log: &L, seq: u64, hash: ChainHash) -> bool {
    log.read(seq, 1)
        .ok()
        .and_then(|records| records.into_iter().next())
        .filter(|stored| stored.seq == seq)
        .and_then(|stored| crate::log::record::decode(&stored.bytes).ok())
        .is_some_and(|record| record.hash == hash)
}

/// The newest snapshot in `dir` that reads back intact, skipping (and reporting) any that
/// do not. `None` when there is none.
pub fn latest(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    newest_where(dir, |_| true)
}

/// The newest snapshot in `dir` that reads back intact and whose [`Header`] `wanted`
/// accepts, skipping (and reporting) any that do not read back. `None` when there is none.
/// A file removed by a prune while this looks is skipped like an unreadable one.
pub fn newest_where(dir: &Path, mut wanted: impl FnMut(&Header) -> bool) -> Result<Option<Snapshot>, SnapshotError> {
    for (_, path) in snapshots_newest_first(dir)? {
        let Some(header) = header(&path) else {
            tracing::warn!(path = %path.display(), "ignoring a snapshot that is not of this build's layout");
            continue;
        };
        if !wanted(&header) {
            continue;
        }
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
        // The streamed file is the magic, the checksum and the body the layout test hashes.
        let body = SnapshotRef {
            seq: 1,
            head_hash: ChainHash::GENESIS,
            last_at: at,
            catalogue: catalogue_fingerprint(),
            state: &state,
        }
        .body()
        .unwrap();
        let file = fs::read(dir.path().join(file_name(1))).unwrap();
        assert_eq!(file, [&MAGIC[..], blake3::hash(&body).as_bytes(), &body].concat());
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
        // lack some of the current layout, KLSNAP05 wrote key hashes as hex text and
        // KLSNAP06 ids as text; KLSNAP07 lacks the users' last use of each function, the key
        // policy and the legacy mark.
        // Their checksums are intact, so only the magic can tell them from a current one;
        // postcard would mis-decode them.
        for old in [b"KLSNAP02", b"KLSNAP03", b"KLSNAP04", b"KLSNAP05", b"KLSNAP06", b"KLSNAP07"] {
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
    fn pruning_keeps_the_newest_and_the_last_of_each_interval_and_removes_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::default();
        let at = Timestamp::from_unix_millis(0);
        for seq in [3, 9, 12, 18, 21, 27, 30] {
            write(dir.path(), seq, ChainHash::GENESIS, at, &state).unwrap();
            prune(dir.path(), 10).unwrap();
        }
        fs::write(dir.path().join(format!("{}.tmp", file_name(31))), b"torn").unwrap();
        prune(dir.path(), 10).unwrap();
        let kept: Vec<u64> = snapshots_newest_first(dir.path()).unwrap().into_iter().map(|(seq, _)| seq).collect();
        // The newest two, and the last of 0..10, 10..20 and 20..30.
        assert_eq!(kept, vec![30, 27, 18, 9]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4, "the temporary file is gone");
    }

    #[test]
    fn retention_keeps_a_bounded_number_of_snapshots_at_most_two_spacings_apart() {
        let spacing = 100;
        // A snapshot every `spacing` records and a few more, as a writer with batches writes them.
        let mut written: Vec<u64> = Vec::new();
        let mut seq = 0;
        while seq < 100_000 {
            seq += spacing + seq % 7;
            written.insert(0, seq);
            let kept = retained(&written, spacing);
            written.retain(|seq| kept.contains(seq));
            assert!(written.len() as u64 <= SPACED + RECENT as u64, "{} kept at {seq}", written.len());
        }
        let newest = written[0];
        let mut spacing_now = spacing;
        while newest / spacing_now >= SPACED {
            spacing_now *= 2;
        }
        for position in (0..=newest).step_by(37) {
            let start = written.iter().copied().find(|seq| *seq <= position).unwrap_or(0);
            assert!(position - start < spacing_now + spacing + 7, "position {position} starts at {start}");
        }
        assert_eq!(retained(&[], spacing), Default::default());
    }

    #[test]
    fn a_header_says_where_a_snapshot_stands_without_reading_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let path = write(dir.path(), 1, ChainHash::GENESIS, at, &state_with_a_user()).unwrap();
        assert_eq!(header(&path), Some(Header { seq: 1, head_hash: ChainHash::GENESIS, last_at: at }));
        let other = dir.path().join("other.bin");
        fs::write(&other, b"KLSNAP04 and something else").unwrap();
        assert_eq!(header(&other), None);
        let found = newest_where(dir.path(), |header| header.last_at <= at).unwrap().unwrap();
        assert_eq!(found.seq, 1);
        assert!(newest_where(dir.path(), |header| header.last_at < at).unwrap().is_none());
    }
}
