//! Logs: `tracing` to standard error, filtered by `RUST_LOG` (default `info`).
//!
//! Without `RUST_LOG`, the INFO lines of a normal start are the ones an operator needs:
//! the log opened (its head, the snapshot it started from, how long replay took) and the
//! address served with the data directory and the start-up time. The libraries' own
//! progress lines (fjall's "Recovering database / LSM-tree / manifest" on every start,
//! actix's workers) are quieted to warnings by [`QUIET_BY_DEFAULT`]; an explicit
//! `RUST_LOG` replaces the whole default, so `RUST_LOG=debug` shows them again.
//!
//! Nothing logged ever contains a key's secret: requests are logged by method, path and
//! status, never by header or body.
//!
//! Lines are written to standard error in batches ([`BatchedStderr`]): INFO and lower at
//! most [`BATCH_DELAY`] after they are logged, WARN and ERROR at once.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The libraries whose INFO lines are their own progress, not the operator's business:
/// warnings and errors only, unless `RUST_LOG` says otherwise.
pub const QUIET_BY_DEFAULT: &str = "fjall=warn,lsm_tree=warn,actix_server=warn";

/// The filter used when `RUST_LOG` is not set: `default_level` for keyledger, and the
/// [`QUIET_BY_DEFAULT`] libraries at warnings.
pub fn default_filter(default_level: &str) -> String {
    format!("{default_level},{QUIET_BY_DEFAULT}")
}

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(default_level)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Batched)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// How long an INFO line may wait in [`BatchedStderr`]'s buffer before the flushing thread
/// writes it: lines written meanwhile go out with it, in one write.
const BATCH_DELAY: Duration = Duration::from_millis(10);

/// The most bytes [`BatchedStderr`] buffers: past this, the logging thread writes the
/// buffer itself (so a flood of lines costs memory up to this, then waits on the disk).
const MAX_BUFFERED_BYTES: usize = 1 << 20;

/// Standard error, written in batches. Every admin request logs an INFO line; writing each
/// with its own `write(2)` cost about a tenth of an admin write's CPU (perf, issue #11).
/// INFO and lower lines go to a buffer that a thread of its own writes out at most
/// [`BATCH_DELAY`] later; a WARN or ERROR line writes the buffer and itself at once, in
/// order, before the logging call returns, so that nothing before a warning is lost if
/// the process then stops. [`flush`] writes what is buffered (the process calls it before
/// it exits); a process killed outright loses at most the last [`BATCH_DELAY`] of INFO
/// lines.
#[derive(Debug)]
struct BatchedStderr {
    buffer: Mutex<Vec<u8>>,
    /// Wakes the flushing thread when the buffer stops being empty.
    filled: Condvar,
    /// Where lines go: standard error (a test's buffer in tests).
    sink: fn(&[u8]),
    /// How long the flushing thread lets lines gather: [`BATCH_DELAY`].
    delay: Duration,
    /// Whether the flushing thread runs; if it could not be started, every line is
    /// written at once.
    flushing: AtomicBool,
}

fn to_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

static STDERR: OnceLock<&'static BatchedStderr> = OnceLock::new();

impl BatchedStderr {
    /// The process's batched standard error, its flushing thread started on first use.
    fn get() -> &'static Self {
        STDERR.get_or_init(|| Self::start(to_stderr, BATCH_DELAY))
    }

    /// A batched writer to `sink` and its flushing thread (which lives as long as the
    /// process, like the writer).
    fn start(sink: fn(&[u8]), delay: Duration) -> &'static Self {
        let batched: &'static Self = Box::leak(Box::new(Self {
            buffer: Mutex::new(Vec::new()),
            filled: Condvar::new(),
            sink,
            delay,
            flushing: AtomicBool::new(true),
        }));
        let started = std::thread::Builder::new().name("keyledger-log".to_owned()).spawn(move || batched.run());
        if started.is_err() {
            batched.flushing.store(false, Ordering::Relaxed);
        }
        batched
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flushing thread: waits for a line, lets more come for [`BATCH_DELAY`], writes
    /// them all.
    fn run(&self) {
        loop {
            {
                let buffer = self.lock();
                let _unused = self.filled.wait_while(buffer, |buffer| buffer.is_empty());
            }
            std::thread::sleep(self.delay);
            self.flush();
        }
    }

    /// Writes what is buffered, holding the buffer so lines stay in order.
    fn flush(&self) {
        self.write_out(&mut self.lock());
    }

    /// Writes `buffer` (held locked by the caller) to the sink and empties it.
    fn write_out(&self, buffer: &mut Vec<u8>) {
        if !buffer.is_empty() {
            (self.sink)(buffer);
            buffer.clear();
        }
    }

    fn write_line(&self, line: &[u8], at_once: bool) {
        let mut buffer = self.lock();
        if at_once || buffer.len() + line.len() > MAX_BUFFERED_BYTES || !self.flushing.load(Ordering::Relaxed) {
            self.write_out(&mut buffer);
            (self.sink)(line);
            return;
        }
        let was_empty = buffer.is_empty();
        buffer.extend_from_slice(line);
        drop(buffer);
        if was_empty {
            self.filled.notify_one();
        }
    }
}

/// One log line on its way to [`BatchedStderr`]: the formatter writes it in pieces, and it
/// goes to the buffer whole when dropped.
#[derive(Debug)]
pub struct LineWriter {
    line: Vec<u8>,
    at_once: bool,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            BatchedStderr::get().write_line(&self.line, self.at_once);
        }
    }
}

/// Makes a [`LineWriter`] per log line: WARN and ERROR lines written at once, the others
/// batched.
#[derive(Debug, Clone, Copy)]
struct Batched;

impl<'a> MakeWriter<'a> for Batched {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { line: Vec::new(), at_once: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        LineWriter { line: Vec::with_capacity(256), at_once: *meta.level() <= Level::WARN }
    }
}

/// Writes the log lines still buffered. The process calls it before it exits; a line
/// logged afterwards is written within [`BATCH_DELAY`] as usual.
pub fn flush() {
    if let Some(batched) = STDERR.get() {
        batched.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static WRITTEN: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static FLUSHED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    fn text(written: &Mutex<Vec<u8>>) -> String {
        String::from_utf8(written.lock().unwrap_or_else(PoisonError::into_inner).clone()).expect("UTF-8")
    }

    #[test]
    fn info_lines_wait_for_a_flush_and_a_warning_writes_them_first_in_order() {
        // A delay no test run reaches: only the calls below write.
        let sink = |bytes: &[u8]| WRITTEN.lock().unwrap_or_else(PoisonError::into_inner).extend(bytes);
        let batched = BatchedStderr::start(sink, Duration::from_secs(24 * 60 * 60));
        batched.write_line(b"1 info\n", false);
        batched.write_line(b"2 info\n", false);
        assert_eq!(text(&WRITTEN), "", "INFO lines wait");
        batched.write_line(b"3 warn\n", true);
        assert_eq!(text(&WRITTEN), "1 info\n2 info\n3 warn\n", "a warning writes what waits, then itself");
        batched.write_line(b"4 info\n", false);
        batched.flush();
        assert_eq!(text(&WRITTEN), "1 info\n2 info\n3 warn\n4 info\n");
    }

    #[test]
    fn the_flushing_thread_writes_waiting_lines_in_one_write() {
        let sink = |bytes: &[u8]| {
            let mut flushed = FLUSHED.lock().unwrap_or_else(PoisonError::into_inner);
            flushed.extend(bytes);
            flushed.push(b'|');
        };
        // Half a second for the second line to join the first (it takes microseconds).
        let batched = BatchedStderr::start(sink, Duration::from_millis(500));
        batched.write_line(b"a\n", false);
        batched.write_line(b"b\n", false);
        // Bounded only so that a broken thread fails the test rather than hanging it.
        for _ in 0..6000 {
            if !text(&FLUSHED).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(text(&FLUSHED), "a\nb\n|", "one write for both lines");
    }
}
