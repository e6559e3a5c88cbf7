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

// ---------------------------------------------------------------------------------------
// PostgreSQL (issue #12): run when KEYLEDGER_TEST_DATABASE_URL names a server
// (`scripts/with-postgres.sh cargo test --lib postgres`), each test in a fresh database.
// ---------------------------------------------------------------------------------------

/// Runs `test` on a fresh, never migrated database, or says why it did not.
fn with_database(test: impl FnOnce(&::postgres::Config)) {
    match postgres::testing::fresh_database() {
        Some(database) => test(&database),
        None => eprintln!("KEYLEDGER_TEST_DATABASE_URL is not set: the PostgreSQL test did not run"),
    }
}

#[test]
fn postgres_log_keeps_the_contract() {
    with_database(|database| contract(&postgres::testing::open(database)));
}

#[test]
fn postgres_log_keeps_its_records_and_tree_across_reopening() {
    with_database(|database| {
        let written = records(1, 5, ChainHash::GENESIS);
        {
            let log = postgres::testing::open(database);
            log.append(0, &written).unwrap();
        }
        let log = postgres::testing::open(database);
        assert_eq!(log.head().unwrap(), 5);
        assert_eq!(log.read(1, 100).unwrap(), written);
        let more = records(6, 4, decode_hash(&written[4]));
        log.append(5, &more).unwrap();
        let all = log.read(1, 100).unwrap();
        assert_eq!(merkle::root(&Tree(&log), 9).unwrap(), reference_root(&all));
    });
}

#[test]
fn postgres_logs_of_two_nodes_append_in_turn_and_each_learns_of_a_head_the_other_moved() {
    // Issue #12: several nodes append to one database; the head's optimistic check is all
    // that orders them, and the tree each writes continues the other's.
    with_database(|database| {
        let first = postgres::testing::open(database);
        let second = PostgresLog::open_config(database.clone(), SchemaPolicy::RequireCurrent).unwrap();
        let one = records(1, 2, ChainHash::GENESIS);
        first.append(0, &one).unwrap();
        let stale = second.append(0, &records(1, 1, ChainHash::GENESIS));
        assert!(matches!(stale, Err(AppendError::Conflict { expected: 0, actual: 2 })), "{stale:?}");
        let two = records(3, 3, decode_hash(&one[1]));
        second.append(2, &two).unwrap();
        let three = records(6, 2, decode_hash(&two[2]));
        first.append(5, &three).unwrap();
        let all = first.read(1, 100).unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(second.read(1, 100).unwrap(), all);
        assert_eq!(merkle::root(&Tree(&second), 7).unwrap(), reference_root(&all));
        assert_eq!(merkle::root(&Tree(&first), 7).unwrap(), reference_root(&all));
    });
}

#[test]
fn postgres_follower_wakes_on_an_append_writes_heartbeats_and_one_holds_the_signer_lock() {
    with_database(|database| {
        let log = postgres::testing::open(database);
        let mut a = log.follower();
        let mut b = log.follower();
        assert_eq!(a.wait_for_head(std::time::Duration::from_millis(1)).unwrap(), 0);
        log.append(0, &records(1, 3, ChainHash::GENESIS)).unwrap();
        // Woken by the notification well before the (long) timeout.
        let started = std::time::Instant::now();
        assert_eq!(a.wait_for_head(std::time::Duration::from_secs(30)).unwrap(), 3);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        let live = std::time::Duration::from_secs(3);
        a.heartbeat("node-a", 3, live, false).unwrap();
        let nodes = b.heartbeat("node-b", 1, live, true).unwrap();
        let seen: Vec<(&str, u64)> = nodes.iter().map(|node| (node.node_id.as_str(), node.applied)).collect();
        assert_eq!(seen, [("node-a", 3), ("node-b", 1)]);
        // One signer at a time; when its session ends, another takes the lock.
        assert!(a.hold_signer_lock().unwrap());
        assert!(!b.hold_signer_lock().unwrap());
        assert!(a.hold_signer_lock().unwrap());
        a.disconnect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !b.hold_signer_lock().unwrap() {
            assert!(std::time::Instant::now() < deadline, "the lock was never released");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
}

#[test]
fn postgres_log_migrates_only_when_asked_and_never_opens_a_newer_schema() {
    with_database(|database| {
        // A database keyledger never migrated is schema 0: refused without --migrate.
        let refused = PostgresLog::open_config(database.clone(), SchemaPolicy::RequireCurrent);
        let Err(error) = refused else { panic!("an unmigrated database opened") };
        assert!(matches!(error, PostgresLogError::SchemaTooOld { found: 0, .. }), "{error:?}");
        assert!(error.to_string().contains("--migrate"), "{error}");
        drop(postgres::testing::open(database));
        // Migrated, it opens without --migrate.
        drop(PostgresLog::open_config(database.clone(), SchemaPolicy::RequireCurrent).unwrap());
        // A schema a newer build migrated is refused, with --migrate too.
        let mut client = database.connect(::postgres::NoTls).unwrap();
        client
            .execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, 'from the future')",
                &[&(postgres::SCHEMA_VERSION + 1)],
            )
            .unwrap();
        for policy in [SchemaPolicy::Migrate, SchemaPolicy::RequireCurrent] {
            let refused = PostgresLog::open_config(database.clone(), policy);
            assert!(matches!(refused, Err(PostgresLogError::SchemaTooNew { .. })), "{refused:?}");
        }
    });
}

#[test]
fn postgres_log_notifies_every_append_with_the_new_head() {
    with_database(|database| {
        let log = postgres::testing::open(database);
        let mut listener = database.connect(::postgres::NoTls).unwrap();
        listener.batch_execute(&format!("LISTEN {}", postgres::NOTIFY_CHANNEL)).unwrap();
        let first = records(1, 3, ChainHash::GENESIS);
        log.append(0, &first).unwrap();
        log.append(3, &records(4, 2, decode_hash(&first[2]))).unwrap();
        use ::postgres::fallible_iterator::FallibleIterator;
        let mut notifications = listener.notifications();
        let heads: Vec<String> = notifications
            .timeout_iter(std::time::Duration::from_secs(10))
            .take(2)
            .map(|notification| Ok(notification.payload().to_owned()))
            .collect()
            .unwrap();
        assert_eq!(heads, ["3", "5"]);
    });
}

#[test]
fn postgres_log_refuses_an_append_after_another_writer_moved_the_head() {
    with_database(|database| {
        let log = postgres::testing::open(database);
        let first = records(1, 2, ChainHash::GENESIS);
        log.append(0, &first).unwrap();
        // Another writer's transaction moves the head (as a second node will).
        let mut other = database.connect(::postgres::NoTls).unwrap();
        other.execute("UPDATE head SET position = 3", &[]).unwrap();
        let next = records(3, 1, decode_hash(&first[1]));
        assert!(matches!(log.append(2, &next), Err(AppendError::Conflict { expected: 2, actual: 3 })));
        // Nothing of the refused batch was written: no record, no tree node.
        assert!(log.read(3, 10).unwrap().is_empty());
        let nodes: i64 = other.query_one("SELECT count(*) FROM tree_nodes", &[]).unwrap().get(0);
        assert_eq!(nodes, 3, "the leaves of records 1 and 2 and their parent");
    });
}

#[test]
fn postgres_import_copies_a_fjall_log_byte_for_byte_into_an_empty_database_only() {
    with_database(|database| {
        let dir = tempfile::tempdir().unwrap();
        let source = FjallLog::open(dir.path()).unwrap();
        let written = records(1, 11, ChainHash::GENESIS);
        source.append(0, &written).unwrap();
        let target = postgres::testing::open(database);
        let checkpoints = vec![(7, "a line".to_owned()), (11, "another".to_owned())];
        assert_eq!(target.import(&source, &checkpoints).unwrap(), 11);
        assert_eq!(target.read(1, 100).unwrap(), written);
        assert_eq!(target.head().unwrap(), 11);
        for size in 1..=11 {
            assert_eq!(merkle::root(&Tree(&target), size).unwrap(), merkle::root(&Tree(&source), size).unwrap());
        }
        assert_eq!(target.checkpoint_store().lines().unwrap(), ["a line", "another"]);
        // It continues like any log, and a second import is refused whole.
        target.append(11, &records(12, 1, decode_hash(&written[10]))).unwrap();
        assert!(matches!(target.import(&source, &[]), Err(postgres::ImportError::NotEmpty)));
        assert_eq!(target.head().unwrap(), 12);
    });
}

#[test]
fn postgres_checkpoint_store_keeps_the_signed_lines_in_order() {
    use crate::checkpoint::{CheckpointStore, Signer};
    with_database(|database| {
        let log = postgres::testing::open(database);
        let store = CheckpointStore::in_postgres(log.checkpoint_store());
        assert!(store.all().unwrap().is_empty());
        let signer = Signer::generate();
        let at = crate::domain::Timestamp::from_unix_millis(1_800_000_000_000);
        let first = signer.sign(3, merkle::leaf_hash(b"r1"), at, merkle::leaf_hash(b"v1"));
        let second = signer.sign(9, merkle::leaf_hash(b"r2"), at, merkle::leaf_hash(b"v2"));
        store.append(&first).unwrap();
        store.append(&second).unwrap();
        // Read back through another connection: committed, the same bytes, oldest first.
        let again = CheckpointStore::in_postgres(postgres::testing::open_checkpoints(database));
        assert_eq!(again.all().unwrap(), vec![first.clone(), second]);
        assert_eq!(log.checkpoint_store().lines().unwrap()[0], first.to_line());
        // Storing the same line again (a retry) changes nothing; a size is signed once.
        store.append(&first).unwrap();
        let resigned = signer.sign(3, merkle::leaf_hash(b"r1"), at.plus_seconds(1), merkle::leaf_hash(b"v1"));
        assert!(store.append(&resigned).is_err());
        assert_eq!(store.all().unwrap().len(), 2);
    });
}

#[test]
fn postgres_log_reconnects_when_its_connections_are_cut() {
    with_database(|database| {
        let log = postgres::testing::open(database);
        let first = records(1, 2, ChainHash::GENESIS);
        log.append(0, &first).unwrap();
        // The server drops every keyledger connection (a restart, a failover, an admin).
        let mut admin = database.connect(::postgres::NoTls).unwrap();
        let cut: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'keyledger'
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(cut >= 2, "the writer's and the reader's connections, cut {cut}");
        // The calls that find their connection dead reconnect and carry on: nothing had
        // been sent that could be lost.
        let next = records(3, 2, decode_hash(&first[1]));
        log.append(2, &next).unwrap();
        assert_eq!(log.head().unwrap(), 4);
        assert_eq!(log.read(1, 10).unwrap().len(), 4);
    });
}
