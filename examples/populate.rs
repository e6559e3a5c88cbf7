//! Fills a data directory with API users and keys, for start-up and memory benchmarks.
//!
//! ```sh
//! cargo run --release --example populate -- --data-dir DIR --users N
//! ```
//!
//! Every user is created, assigned one shared API role, given access to one event group
//! and a key: four records each, after the bootstrap's. Records go through the same
//! `decide`, `apply` and `encode` as the server's, and are appended in large synced
//! batches straight to the fjall log (no HTTP, no writer thread), so a million users take
//! well under a minute. The directory must be empty. Keys' secrets are discarded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use keyledger::domain::{
    Actor, Command, Context, EventAccess, FunctionId, GroupId, KeyId, KeySecret, Name, Position, RoleId, State,
    Timestamp, UserId, decide,
};
use keyledger::log::record::{self, Envelope};
use keyledger::log::{ChainHash, EventLog, FjallLog, StoredRecord};

const CHUNK: usize = 20_000;

struct Filler {
    log: FjallLog,
    state: State,
    prev_hash: ChainHash,
    pending: Vec<StoredRecord>,
    appended: u64,
}

impl Filler {
    fn run(&mut self, actor: &Actor, command: Command) -> Result<(), String> {
        let now = Timestamp::now();
        let context = Context { actor: actor.clone(), now, expected_version: None, credential: None };
        let events = decide(&self.state, &context, command).map_err(|e| e.to_string())?;
        for event in events {
            let seq = self.state.head() + 1;
            let (stored, hash) = record::encode(
                &Envelope { seq, at: now, actor: actor.clone(), justification: None },
                &event,
                self.prev_hash,
            );
            self.state.apply(Position { seq, at: now }, &event);
            self.prev_hash = hash;
            self.pending.push(stored);
        }
        if self.pending.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.log.append(self.appended, &self.pending).map_err(|e| e.to_string())?;
        self.appended += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut data_dir, mut users) = (None, 1000u64);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--data-dir", Some(dir)) => data_dir = Some(PathBuf::from(dir)),
            ("--users", Some(n)) => users = n.replace('_', "").parse().unwrap_or(users),
            _ => {
                eprintln!("usage: populate --data-dir DIR --users N");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(data_dir) = data_dir else {
        eprintln!("usage: populate --data-dir DIR --users N");
        return ExitCode::FAILURE;
    };
    match populate(data_dir, users) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn populate(data_dir: PathBuf, users: u64) -> Result<(), String> {
    let started = Instant::now();
    let log = FjallLog::open(&data_dir.join("log")).map_err(|e| e.to_string())?;
    if log.head().map_err(|e| e.to_string())? != 0 {
        return Err(format!("{} is not empty", data_dir.display()));
    }
    let mut filler =
        Filler { log, state: State::default(), prev_hash: ChainHash::GENESIS, pending: Vec::new(), appended: 0 };
    let mut rng = rand::rng();
    let admin_secret = KeySecret::generate(&mut rng);
    let admin = UserId::generate(&mut rng);
    let bootstrap = Command::Bootstrap {
        user_id: admin.clone(),
        role_id: RoleId::generate(&mut rng),
        key_id: KeyId::generate(&mut rng),
        key_hash: admin_secret.hash(),
    };
    filler.run(&Actor::System, bootstrap)?;
    let actor = Actor::User(admin);
    let role = RoleId::generate(&mut rng);
    let description = Name::parse("API Access").map_err(|e| e.to_string())?;
    filler.run(&actor, Command::CreateRole { role_id: role.clone(), description })?;
    let read_functions =
        ["api.attendees.read", "api.events.read", "api.invoices.read", "api.people.read", "api.sessions.read"];
    let functions = read_functions.iter().filter_map(|id| FunctionId::parse(id).ok()).collect();
    filler.run(&actor, Command::ActivateFunctions { role_id: role.clone(), functions })?;
    let group = GroupId::generate(&mut rng);
    let group_name = Name::parse("USA").map_err(|e| e.to_string())?;
    filler.run(&actor, Command::CreateEventGroup { group_id: group.clone(), name: group_name, parent_id: None })?;
    for n in 0..users {
        let user_id = UserId::generate(&mut rng);
        // User names must not look alike, so each API user is numbered.
        let name = Name::parse(&format!("API user {n}")).map_err(|e| e.to_string())?;
        filler.run(&actor, Command::CreateUser { user_id: user_id.clone(), name, email: None })?;
        filler.run(&actor, Command::AssignRole { user_id: user_id.clone(), role_id: role.clone() })?;
        let access = EventAccess::Groups([group.clone()].into_iter().collect());
        filler.run(&actor, Command::SetUserEventAccess { user_id: user_id.clone(), access })?;
        let key = KeySecret::generate(&mut rng);
        let command = Command::GenerateKey {
            user_id,
            key_id: KeyId::generate(&mut rng),
            key_hash: key.hash(),
            expires_at: None,
            grace_seconds: None,
        };
        filler.run(&actor, command)?;
    }
    filler.flush()?;
    println!(
        "populated {}: {users} users with keys, {} records, in {:.1} s",
        data_dir.display(),
        filler.appended,
        started.elapsed().as_secs_f64()
    );
    println!("admin key: {}", admin_secret.expose());
    Ok(())
}
