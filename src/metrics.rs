//! Prometheus metrics: what is counted, where it is kept, and its text exposition.
//!
//! Every metric is a fixed set of atomics, resolved when the program is compiled: a label
//! set is an index into an array (`CheckCounters` by endpoint and reason,
//! `CommandCounters` by command and outcome), so counting takes no lock, looks no label
//! up and allocates nothing. The key check counts one relaxed `fetch_add` per request.
//!
//! The exposition is written here by hand (the text format, version 0.0.4): it is a few
//! lines per family, and it keeps the counters plain atomics. The `prometheus-client`
//! crate was considered and not used: its labelled families look each label set up in a
//! map behind a lock on every increment unless the caller keeps the handles, its
//! histograms lock on every observation, and its registry would be one more structure to
//! thread through the ledger, for a format this module writes in a hundred lines.
//!
//! Who counts what: the HTTP layer counts checks (`http::checks`); the ledger counts
//! commands, their latency and the writer's batches, and keeps the latest checkpoint's
//! size ([`WriteMetrics`]); `http::metrics` reads the rest (the log head, the throttled
//! clients, the process) when scraped.

use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::{Command, Reason};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoints that check keys, by their operationIds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckEndpoint {
    /// `checkKey`, `POST /v1/check`.
    CheckKey,
    /// `authorizeRequest`, `GET /v1/authorize`.
    AuthorizeRequest,
}

impl CheckEndpoint {
    /// Every endpoint, in index order.
    pub const ALL: [CheckEndpoint; 2] = [CheckEndpoint::CheckKey, CheckEndpoint::AuthorizeRequest];

    /// The `endpoint` label: the operationId.
    pub fn name(self) -> &'static str {
        match self {
            CheckEndpoint::CheckKey => "checkKey",
            CheckEndpoint::AuthorizeRequest => "authorizeRequest",
        }
    }
}

/// Every check reason, in index order ([`reason_index`]).
const REASONS: [Reason; 10] = [
    Reason::Granted,
    Reason::MalformedKey,
    Reason::UnknownKey,
    Reason::RevokedKey,
    Reason::ExpiredKey,
    Reason::UserDisabled,
    Reason::FunctionNotGranted,
    Reason::EventNotAccessible,
    Reason::EventRequired,
    Reason::UnknownFunction,
];

/// The counter of a reason; a new reason fails to compile here until it has one.
const fn reason_index(reason: Reason) -> usize {
    match reason {
        Reason::Granted => 0,
        Reason::MalformedKey => 1,
        Reason::UnknownKey => 2,
        Reason::RevokedKey => 3,
        Reason::ExpiredKey => 4,
        Reason::UserDisabled => 5,
        Reason::FunctionNotGranted => 6,
        Reason::EventNotAccessible => 7,
        Reason::EventRequired => 8,
        Reason::UnknownFunction => 9,
    }
}

/// The `reason` label of a check refused with 429 before the key was looked at.
const THROTTLED: &str = "throttled";
const THROTTLED_INDEX: usize = REASONS.len();
const CHECK_OUTCOMES: usize = REASONS.len() + 1;

/// Checks answered, by endpoint and reason (and `throttled`, for a 429 that looked at no
/// key). One atomic per label set.
///
/// Aligned to a cache line so that no other data shares one with the counters: every
/// check writes them, and what a check only reads (the limiter's flag, the ledger's
/// pointer, both in `AppState` beside them) would otherwise be invalidated in the other
/// cores' caches by each increment.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CheckCounters {
    counts: [[AtomicU64; CHECK_OUTCOMES]; CheckEndpoint::ALL.len()],
}

impl CheckCounters {
    /// Counts a check answered with `reason`.
    #[inline]
    pub fn count(&self, endpoint: CheckEndpoint, reason: Reason) {
        self.counts[endpoint as usize][reason_index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a check refused with 429 before its key was looked at.
    #[inline]
    pub fn count_throttled(&self, endpoint: CheckEndpoint) {
        self.counts[endpoint as usize][THROTTLED_INDEX].fetch_add(1, Ordering::Relaxed);
    }

    /// The checks counted for `endpoint` with `reason`.
    pub fn get(&self, endpoint: CheckEndpoint, reason: Reason) -> u64 {
        self.counts[endpoint as usize][reason_index(reason)].load(Ordering::Relaxed)
    }

    fn write(&self, out: &mut Exposition) {
        const NAME: &str = "keyledger_checks_total";
        out.family(
            NAME,
            "counter",
            "Key checks answered, by endpoint (operationId) and reason; `throttled` is a 429 that looked at no key.",
        );
        for endpoint in CheckEndpoint::ALL {
            let counts = &self.counts[endpoint as usize];
            let reasons = REASONS.iter().map(|reason| reason.as_str()).chain([THROTTLED]);
            for (reason, count) in reasons.zip(counts) {
                out.sample(NAME, &[("endpoint", endpoint.name()), ("reason", reason)], count.load(Ordering::Relaxed));
            }
        }
    }
}

/// Declares [`CommandKind`]: one per [`Command`] variant, with its `operation` label (the
/// operationId of the HTTP operation that sends it, where there is one).
macro_rules! command_kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// What a command does, as the `operation` label of `keyledger_admin_commands_total`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum CommandKind {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant,
            )*
        }

        impl CommandKind {
            /// Every kind, in index order.
            pub const ALL: &[CommandKind] = &[$(CommandKind::$variant),*];

            /// The kind of a command; a new command fails to compile here until it has one.
            pub fn of(command: &Command) -> Self {
                match command {
                    $(Command::$variant { .. } => CommandKind::$variant,)*
                }
            }

            /// The `operation` label.
            pub fn name(self) -> &'static str {
                match self {
                    $(CommandKind::$variant => $name,)*
                }
            }
        }
    };
}

command_kinds! {
    Bootstrap => "bootstrap",
    CreateRole => "createRole",
    ActivateFunctions => "activateFunctions",
    DeactivateFunctions => "deactivateFunctions",
    CreateUser => "createUser",
    DisableUser => "disableUser",
    EnableUser => "enableUser",
    AssignRole => "assignRole",
    UnassignRole => "unassignRole",
    CreateEventGroup => "createEventGroup",
    AddEventToGroup => "addEventToGroup",
    RemoveEventFromGroup => "removeEventFromGroup",
    SetUserEventAccess => "setUserEventAccess",
    GenerateKey => "generateKey",
    RevokeKey => "revokeKey",
    RecordAdminAccessDenied => "recordAdminAccessDenied",
    RecordKeyUsage => "recordKeyUsage",
    RecordKeyLookup => "lookupKey",
    RecoverAdministrator => "recoverAdministrator",
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Carried out: its events are durable (or it had none to write).
    Ok,
    /// Refused by the rules (a 4xx): nothing appended.
    Refused,
    /// Not carried out because the storage failed or the ledger is shutting down (a
    /// 503): nothing appended.
    Failed,
}

impl CommandOutcome {
    /// Every outcome, in index order.
    pub const ALL: [CommandOutcome; 3] = [CommandOutcome::Ok, CommandOutcome::Refused, CommandOutcome::Failed];

    /// The `outcome` label.
    pub fn name(self) -> &'static str {
        match self {
            CommandOutcome::Ok => "ok",
            CommandOutcome::Refused => "refused",
            CommandOutcome::Failed => "failed",
        }
    }
}

const COMMAND_KINDS: usize = CommandKind::ALL.len();

/// A histogram with fixed buckets over whole numbers (microseconds, commands), exposed
/// divided by `unit` (so microseconds are exposed as seconds). The count is the sum of
/// the buckets, so a scrape never shows a `+Inf` bucket that disagrees with `_count`.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, inclusive and increasing.
    bounds: &'static [u64],
    /// One more than `bounds`: the last counts what is above every bound.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    unit: f64,
}

impl Histogram {
    /// A histogram with these upper bounds, exposed divided by `unit`.
    pub fn new(bounds: &'static [u64], unit: f64) -> Self {
        debug_assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "bounds increase");
        Self { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum: AtomicU64::new(0), unit }
    }

    /// Counts one observation.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// How many observations were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).sum()
    }

    fn write(&self, out: &mut Exposition, name: &str, help: &str) {
        out.family(name, "histogram", help);
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bucket, bound) in self.buckets.iter().zip(self.bounds) {
            cumulative += bucket.load(Ordering::Relaxed);
            out.sample(&bucket_name, &[("le", &(*bound as f64 / self.unit).to_string())], cumulative);
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        out.sample(&bucket_name, &[("le", "+Inf")], cumulative);
        out.sample(&format!("{name}_sum"), &[], self.sum.load(Ordering::Relaxed) as f64 / self.unit);
        out.sample(&format!("{name}_count"), &[], cumulative);
    }
}

/// Bounds of the write latency, in microseconds: 0.5 ms to 10 s.
const LATENCY_BOUNDS_MICROS: &[u64] = &[
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Bounds of the batch size, in commands: powers of two up to the writer's batch limit.
const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// What the ledger counts: commands by kind and outcome, how long each took, how many
/// commands each batch of the writer held, and the size of the latest checkpoint.
#[derive(Debug)]
pub struct WriteMetrics {
    commands: [[AtomicU64; CommandOutcome::ALL.len()]; COMMAND_KINDS],
    latency: Histogram,
    batch_size: Histogram,
    checkpoint_size: AtomicU64,
}

impl Default for WriteMetrics {
    fn default() -> Self {
        Self {
            commands: std::array::from_fn(|_| Default::default()),
            latency: Histogram::new(LATENCY_BOUNDS_MICROS, 1e6),
            batch_size: Histogram::new(BATCH_BOUNDS, 1.0),
            checkpoint_size: AtomicU64::new(0),
        }
    }
}

impl WriteMetrics {
    /// Counts a command that ended with `outcome` after `took` (from its submission to
    /// its answer: the queue, deciding, the synced append and the apply).
    pub fn command(&self, kind: CommandKind, outcome: CommandOutcome, took: Duration) {
        self.commands[kind as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// The commands of `kind` counted with `outcome`.
    pub fn commands(&self, kind: CommandKind, outcome: CommandOutcome) -> u64 {
        self.commands[kind as usize][outcome as usize].load(Ordering::Relaxed)
    }

    /// Counts a batch of the writer holding `commands` commands.
    pub fn batch(&self, commands: usize) {
        self.batch_size.observe(commands as u64);
    }

    /// Notes the size of the latest checkpoint.
    pub fn checkpoint_signed(&self, size: u64) {
        self.checkpoint_size.store(size, Ordering::Relaxed);
    }

    fn write(&self, out: &mut Exposition) {
        const NAME: &str = "keyledger_admin_commands_total";
        out.family(NAME, "counter", "Commands submitted to the writer, by operation and outcome (ok; refused: a 4xx, nothing appended; failed: storage or shutdown, a 503).");
        for kind in CommandKind::ALL {
            for outcome in CommandOutcome::ALL {
                let count = self.commands(*kind, outcome);
                out.sample(NAME, &[("operation", kind.name()), ("outcome", outcome.name())], count);
            }
        }
        self.latency.write(
            out,
            "keyledger_write_latency_seconds",
            "Seconds from a command's submission to its answer: waiting in the queue, deciding, the synced append and the apply.",
        );
        self.batch_size.write(
            out,
            "keyledger_write_batch_size",
            "Commands decided and appended together in one synced batch of the writer (group commit).",
        );
        out.family("keyledger_checkpoint_size", "gauge", "Records covered by the latest signed checkpoint.");
        out.sample("keyledger_checkpoint_size", &[], self.checkpoint_size.load(Ordering::Relaxed));
    }
}

/// What a scrape reads besides the counters.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// The log's head: its number of records.
    pub log_head: u64,
    /// Clients refused with 429 now.
    pub throttled_clients: usize,
    /// Clients with a bucket of refused checks that is not full.
    pub tracked_clients: usize,
}

/// The text exposition of every metric: the checks, the writes, the gauges and the
/// process's own metrics (from `/proc`, left out where there is none).
pub fn render(checks: &CheckCounters, writes: &WriteMetrics, gauges: Gauges) -> String {
    let mut out = Exposition::default();
    checks.write(&mut out);
    writes.write(&mut out);
    out.family("keyledger_log_head", "gauge", "Records in the log (the sequence number of the newest).");
    out.sample("keyledger_log_head", &[], gauges.log_head);
    out.family(
        "keyledger_throttled_clients",
        "gauge",
        "Client addresses (IPv6 by /64) refused with 429 now for too many checks with wrong keys.",
    );
    out.sample("keyledger_throttled_clients", &[], gauges.throttled_clients);
    out.family(
        "keyledger_throttle_tracked_clients",
        "gauge",
        "Client addresses whose bucket of checks with wrong keys is not full (at most 100,000 are kept).",
    );
    out.sample("keyledger_throttle_tracked_clients", &[], gauges.tracked_clients);
    if let Some(process) = process::read() {
        process.write(&mut out);
    }
    out.text
}

/// What a node serving a log with other nodes reports (issue #12).
#[derive(Debug, Clone, Copy)]
pub struct NodeGauges {
    /// The log position this node's view has applied.
    pub applied_position: u64,
    /// The log's head as this node last read it from the database.
    pub log_head: u64,
    /// Seconds since this node last wrote its heartbeat.
    pub heartbeat_age_seconds: f64,
}

/// Appends the node's gauges to a text exposition made by [`render`].
pub fn render_node(text: &mut String, node: NodeGauges) {
    let mut out = Exposition { text: std::mem::take(text) };
    out.family(
        "keyledger_tail_lag_records",
        "gauge",
        "Records in the log (as this node last read its head) that this node has not applied yet.",
    );
    out.sample("keyledger_tail_lag_records", &[], node.log_head.saturating_sub(node.applied_position));
    out.family("keyledger_tail_applied_position", "gauge", "The log position this node's view has applied.");
    out.sample("keyledger_tail_applied_position", &[], node.applied_position);
    out.family(
        "keyledger_node_heartbeat_age_seconds",
        "gauge",
        "Seconds since this node last wrote its heartbeat (its applied position) to the database.",
    );
    out.sample("keyledger_node_heartbeat_age_seconds", &[], node.heartbeat_age_seconds);
    *text = out.text;
}

/// A text exposition being written.
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// The `HELP` and `TYPE` lines of a family. Help texts are constants with neither a
    /// backslash nor a line break, so they need no escaping.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample. Label values are constants or numbers, which need no escaping.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                let separator = if index == 0 { "" } else { "," };
                let _ = write!(self.text, "{separator}{label}=\"{value}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// The process's metrics, as Prometheus's client libraries name them, read from `/proc`.
mod process {
    use super::Exposition;

    /// Clock ticks per second of the times in `/proc/self/stat`. Linux reports them in
    /// USER_HZ, which is 100 on every architecture Rust's std supports (Prometheus's
    /// procfs library fixes it at 100 too).
    const USER_HZ: f64 = 100.0;

    #[derive(Debug)]
    pub(super) struct Process {
        cpu_seconds: f64,
        resident_bytes: u64,
        virtual_bytes: u64,
        start_time_seconds: f64,
        open_fds: usize,
        max_fds: Option<u64>,
    }

    /// The process's metrics, or `None` where `/proc` cannot be read.
    pub(super) fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces and parentheses: the fields start after the
        // last `)`, at field 3 (`state`).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |number: usize| fields.get(number - 3).and_then(|value| value.parse::<u64>().ok());
        let (utime, stime, start_ticks) = (field(14)?, field(15)?, field(22)?);
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        };
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
            limits.lines().find_map(|line| line.strip_prefix("Max open files")?.split_whitespace().next()?.parse().ok())
        });
        Some(Process {
            cpu_seconds: (utime + stime) as f64 / USER_HZ,
            resident_bytes: kib("VmRSS:")? * 1024,
            virtual_bytes: kib("VmSize:")? * 1024,
            start_time_seconds: boot_time as f64 + start_ticks as f64 / USER_HZ,
            open_fds,
            max_fds,
        })
    }

    impl Process {
        pub(super) fn write(&self, out: &mut Exposition) {
            out.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
            out.sample("process_cpu_seconds_total", &[], self.cpu_seconds);
            out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
            out.sample("process_resident_memory_bytes", &[], self.resident_bytes);
            out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
            out.sample("process_virtual_memory_bytes", &[], self.virtual_bytes);
            out.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
            out.sample("process_start_time_seconds", &[], self.start_time_seconds);
            out.family("process_open_fds", "gauge", "Number of open file descriptors.");
            out.sample("process_open_fds", &[], self.open_fds);
            if let Some(max_fds) = self.max_fds {
                out.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
                out.sample("process_max_fds", &[], max_fds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples of a family, as `name{labels} value` lines.
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines().filter(|line| line.starts_with(name) && !line.starts_with('#')).collect()
    }

    #[test]
    fn every_reason_has_its_own_counter_in_order() {
        for (index, reason) in REASONS.iter().enumerate() {
            assert_eq!(reason_index(*reason), index, "{reason:?}");
        }
        let counters = CheckCounters::default();
        counters.count(CheckEndpoint::AuthorizeRequest, Reason::EventRequired);
        counters.count(CheckEndpoint::AuthorizeRequest, Reason::EventRequired);
        counters.count_throttled(CheckEndpoint::CheckKey);
        let text = render(
            &counters,
            &WriteMetrics::default(),
            Gauges { log_head: 0, throttled_clients: 0, tracked_clients: 0 },
        );
        let checks = samples(&text, "keyledger_checks_total");
        assert_eq!(checks.len(), 2 * 11);
        assert!(checks.contains(&"keyledger_checks_total{endpoint=\"authorizeRequest\",reason=\"event_required\"} 2"));
        assert!(checks.contains(&"keyledger_checks_total{endpoint=\"checkKey\",reason=\"throttled\"} 1"));
        assert!(checks.contains(&"keyledger_checks_total{endpoint=\"checkKey\",reason=\"event_required\"} 0"));
    }

    #[test]
    fn a_histogram_counts_each_observation_in_the_first_bucket_that_holds_it_cumulatively() {
        let histogram = Histogram::new(&[1, 2, 4], 1.0);
        for value in [0, 1, 2, 3, 4, 5, 100] {
            histogram.observe(value);
        }
        let mut out = Exposition::default();
        histogram.write(&mut out, "h", "A test.");
        assert_eq!(
            out.text,
            "# HELP h A test.\n# TYPE h histogram\n\
             h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 3\nh_bucket{le=\"4\"} 5\nh_bucket{le=\"+Inf\"} 7\n\
             h_sum 115\nh_count 7\n"
        );
    }

    #[test]
    fn latency_is_exposed_in_seconds_with_exact_bucket_bounds() {
        let writes = WriteMetrics::default();
        writes.command(CommandKind::CreateRole, CommandOutcome::Ok, Duration::from_micros(700));
        writes.command(CommandKind::CreateRole, CommandOutcome::Refused, Duration::from_secs(20));
        let text = render(
            &CheckCounters::default(),
            &writes,
            Gauges { log_head: 7, throttled_clients: 1, tracked_clients: 2 },
        );
        let latency = samples(&text, "keyledger_write_latency_seconds");
        assert_eq!(latency[0], "keyledger_write_latency_seconds_bucket{le=\"0.0005\"} 0");
        assert_eq!(latency[1], "keyledger_write_latency_seconds_bucket{le=\"0.001\"} 1");
        assert!(latency.contains(&"keyledger_write_latency_seconds_bucket{le=\"10\"} 1"));
        assert!(latency.contains(&"keyledger_write_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(latency.contains(&"keyledger_write_latency_seconds_sum 20.0007"));
        assert!(text.contains("keyledger_admin_commands_total{operation=\"createRole\",outcome=\"refused\"} 1\n"));
        assert!(text.contains("keyledger_log_head 7\n"));
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = render(
            &CheckCounters::default(),
            &WriteMetrics::default(),
            Gauges { log_head: 0, throttled_clients: 0, tracked_clients: 0 },
        );
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix).filter(|base| declared.last().is_some_and(|last| last == base))
                    })
                    .unwrap_or(name);
                assert_eq!(declared.last().map(String::as_str), Some(family), "{line}");
            }
        }
        for family in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(declared.iter().any(|name| name == family), "{family} missing");
        }
    }
}
