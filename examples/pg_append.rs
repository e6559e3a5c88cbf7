//! Append latency of the PostgreSQL log against the fjall log, on this machine: for batch
//! sizes 1 and 64, `--appends` appends each, every one timed from the call to its durable
//! return (PostgreSQL: the transaction's COMMIT; fjall: the synced batch).
//!
//! ```sh
//! scripts/with-postgres.sh sh -c 'cargo run --example pg_append -- "$KEYLEDGER_TEST_DATABASE_URL" 2000'
//! ```
//!
//! Each run creates a database of its own on the server the URL names (and leaves it), and
//! a temporary fjall directory. The two stores alternate batch by batch, so that a noisy
//! machine slows both alike and their ratio holds.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use keyledger::domain::{Actor, Event, Timestamp, UserId};
use keyledger::log::record::{self, Envelope};
use keyledger::log::{ChainHash, EventLog, FjallLog, PostgresLog, SchemaPolicy, StoredRecord};

/// A log being filled: its head and chain hash.
struct Filling<L> {
    log: L,
    prev: ChainHash,
    head: u64,
    latencies: Vec<Duration>,
}

impl<L: EventLog> Filling<L> {
    fn new(log: L) -> Self {
        Self { log, prev: ChainHash::GENESIS, head: 0, latencies: Vec::new() }
    }

    fn append(&mut self, batch: usize) -> Result<(), String> {
        let mut records: Vec<StoredRecord> = Vec::with_capacity(batch);
        for seq in self.head + 1..=self.head + batch as u64 {
            let envelope = Envelope { seq, at: Timestamp::now(), actor: Actor::System, justification: None };
            let user_id = UserId::parse(&format!("usr_{seq:016x}")).map_err(|e| e.to_string())?;
            let (stored, hash) = record::encode(&envelope, &Event::UserEnabled { user_id }, self.prev);
            self.prev = hash;
            records.push(stored);
        }
        let started = Instant::now();
        self.log.append(self.head, &records).map_err(|e| e.to_string())?;
        self.latencies.push(started.elapsed());
        self.head += batch as u64;
        Ok(())
    }

    fn report(&mut self, name: &str, batch: usize) {
        self.latencies.sort();
        let at = |q: f64| self.latencies[((self.latencies.len() - 1) as f64 * q).round() as usize];
        let total: Duration = self.latencies.iter().sum();
        println!(
            "{name:>10} batch {batch:>2}: p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  {:>7.0} records/s serially ({} appends)",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            at(1.0).as_secs_f64() * 1e3,
            (self.latencies.len() * batch) as f64 / total.as_secs_f64(),
            self.latencies.len(),
        );
        self.latencies.clear();
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: pg_append DATABASE_URL [APPENDS]")?;
    let appends: usize = args.next().map_or(Ok(2000), |n| n.parse()).map_err(|_| "APPENDS is a number")?;
    let mut config = keyledger::log::postgres::parse_url(&url).map_err(|e| e.to_string())?;
    let name = format!("keyledger_bench_{}", std::process::id());
    let mut admin = config.connect(postgres::NoTls).map_err(|e| e.to_string())?;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| e.to_string())?;
    config.dbname(&name);
    let mut pg = Filling::new(PostgresLog::open_config(config, SchemaPolicy::Migrate).map_err(|e| e.to_string())?);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut fjall = Filling::new(FjallLog::open(dir.path()).map_err(|e| e.to_string())?);
    for batch in [1, 64] {
        for _ in 0..appends {
            pg.append(batch)?;
            fjall.append(batch)?;
        }
        pg.report("postgresql", batch);
        fjall.report("fjall", batch);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
