//! One contract, run against both logs: what any [`EventLog`] must do.

use super::*;
use crate::domain::{Actor, Event, Timestamp, UserId};
use record::Envelope;

fn records(from: u64, count: u64, mut prev: ChainHash) -> Vec<StoredRecord> {
    (from..from + count)
        .map(|seq| {
            let envelope = Envelope { seq, at: Timestamp::from_unix_millis(1_800_000_000_000), actor: Actor::System };
            let event = Event::UserEnabled { user_id: UserId::parse(&format!("usr_{seq:016x}")).unwrap() };
            let (record, hash) = record::encode(&envelope, &event, prev);
            prev = hash;
            record
        })
        .collect()
}

fn contract<L: EventLog>(log: &L) {
    // An empty log has head 0 and nothing to read.
    assert_eq!(log.head().unwrap(), 0);
    assert!(log.read(1, 10).unwrap().is_empty());

    // Appends land in order and move the head.
    let first = records(1, 3, ChainHash::GENESIS);
    log.append(0, &first).unwrap();
    assert_eq!(log.head().unwrap(), 3);
    assert_eq!(log.read(1, 10).unwrap(), first);
    assert_eq!(log.read(2, 1).unwrap(), vec![first[1].clone()]);
    assert!(log.read(4, 10).unwrap().is_empty());

    // An append at a stale position is refused and writes nothing.
    let stale = records(1, 1, ChainHash::GENESIS);
    assert!(matches!(log.append(0, &stale), Err(AppendError::Conflict { expected: 0, actual: 3 })));
    assert_eq!(log.head().unwrap(), 3);

    // Records that do not continue the log are refused whole.
    let mut gappy = records(4, 2, ChainHash::GENESIS);
    gappy[1].seq = 9;
    assert!(matches!(log.append(3, &gappy), Err(AppendError::OutOfSequence { first_expected: 4 })));
    assert_eq!(log.head().unwrap(), 3);
    assert_eq!(log.read(1, 100).unwrap().len(), 3);

    // An empty append is a no-op.
    log.append(3, &[]).unwrap();
    assert_eq!(log.head().unwrap(), 3);

    // The Merkle tree covers exactly the records appended, refused appends included not.
    assert_eq!(merkle::root(&Tree(log), 3).unwrap(), reference_root(&log.read(1, 100).unwrap()));
    let more = records(4, 6, decode_hash(&first[2]));
    log.append(3, &more).unwrap();
    let all = log.read(1, 100).unwrap();
    for size in 0..=9 {
        assert_eq!(merkle::root(&Tree(log), size).unwrap(), reference_root(&all[..size as usize]), "root at {size}");
    }
    assert!(matches!(merkle::root(&Tree(log), 10), Err(merkle::ProofError::MissingNode(_))));
}

fn decode_hash(record: &StoredRecord) -> ChainHash {
    record::decode(&record.bytes).unwrap().hash
}

/// The root of the records' bytes, computed leaf by leaf in memory.
fn reference_root(records: &[StoredRecord]) -> TreeHash {
    let mut frontier = Frontier::default();
    for record in records {
        frontier.push(merkle::leaf_hash(&record.bytes), |_, _| {});
    }
    frontier.root()
}

#[test]
fn memory_log_keeps_the_contract() {
    contract(&MemoryLog::new());
}

#[test]
fn fjall_log_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&FjallLog::open(dir.path()).unwrap());
}

#[test]
fn fjall_log_keeps_its_records_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let written = records(1, 5, ChainHash::GENESIS);
    {
        let log = FjallLog::open(dir.path()).unwrap();
        log.append(0, &written).unwrap();
    }
    let log = FjallLog::open(dir.path()).unwrap();
    assert_eq!(log.head().unwrap(), 5);
    assert_eq!(log.read(1, 100).unwrap(), written);
    // The tree's right edge is reloaded, so appends after a restart keep it whole.
    let more = records(6, 4, decode_hash(&written[4]));
    log.append(5, &more).unwrap();
    let all = log.read(1, 100).unwrap();
    assert_eq!(merkle::root(&Tree(&log), 9).unwrap(), reference_root(&all));
}

#[test]
fn fjall_log_builds_the_tree_of_a_log_written_before_the_tree_was_kept() {
    let dir = tempfile::tempdir().unwrap();
    let written = records(1, 7, ChainHash::GENESIS);
    {
        // Records only, as an earlier build wrote them.
        let database = fjall::Database::builder(dir.path()).open().unwrap();
        let keyspace = database.keyspace("records", fjall::KeyspaceCreateOptions::default).unwrap();
        for record in &written {
            keyspace.insert(record.seq.to_be_bytes(), record.bytes.as_slice()).unwrap();
        }
        database.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let log = FjallLog::open(dir.path()).unwrap();
    assert_eq!(merkle::root(&Tree(&log), 7).unwrap(), reference_root(&written));
    let more = records(8, 2, decode_hash(&written[6]));
    log.append(7, &more).unwrap();
    assert_eq!(merkle::root(&Tree(&log), 9).unwrap(), reference_root(&log.read(1, 100).unwrap()));
}

#[test]
fn fjall_log_refuses_a_second_opener_of_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FjallLog::open(dir.path()).unwrap();
    let second = FjallLog::open(dir.path());
    assert!(matches!(second, Err(FjallLogError::Locked(_))), "{second:?}");
}

#[test]
fn fjall_log_names_the_path_and_what_to_do_when_a_file_stands_where_the_log_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, b"a file").unwrap();
    let error = FjallLog::open(&path).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, FjallLogError::Open { .. }), "{error:?}");
    assert!(message.starts_with(&format!("cannot open the log at {}: ", path.display())), "{message}");
    assert!(message.contains("a file stands where keyledger needs a directory"), "{message}");
    assert!(!message.contains("FjallError") && !message.contains("Os {"), "{message}");
}

#[test]
fn fjall_log_storage_errors_read_as_the_system_says_them_not_as_debug_output() {
    let full = FjallLogError::Storage(fjall::Error::Io(std::io::Error::from_raw_os_error(28)));
    let message = full.to_string();
    assert!(message.starts_with("storage error: No space left on device"), "{message}");
    assert!(!message.contains("FjallError") && !message.contains("Os {"), "{message}");
}
