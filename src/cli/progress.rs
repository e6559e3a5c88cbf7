//! Progress bars on standard error for the commands that read a whole log or bundle
//! (seconds at a million records), hidden when standard error is not a terminal, so logs
//! and scripts see nothing of them.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::log::{AppendError, EventLog, StoredRecord};
use crate::merkle::{NodeId, TreeHash};

/// A bar of `length` units (`records` or `bytes`) doing `what`; hidden unless standard
/// error is a terminal.
pub fn bar(what: &'static str, length: u64, unit: Unit) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match unit {
        Unit::Records => "{msg} [{bar:30}] {human_pos}/{human_len} records ({eta})",
        Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr()).with_style(style).with_message(what)
}

/// What a bar counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Records of a log.
    Records,
    /// Bytes of a file.
    Bytes,
}

/// A log that moves a bar by the records read from it: wraps the log a command reads
/// through, so the progress of a verification or a replay shows without the ledger
/// knowing of bars.
#[derive(Debug)]
pub struct ProgressLog<L> {
    log: L,
    bar: ProgressBar,
}

impl<L: EventLog> ProgressLog<L> {
    /// Wraps `log`; the bar's length is the log's head.
    pub fn new(log: L, what: &'static str) -> Result<Self, L::Error> {
        let head = log.head()?;
        Ok(ProgressLog { log, bar: bar(what, head, Unit::Records) })
    }

    /// The bar, to finish or clear when the work is done.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl<L: EventLog> EventLog for ProgressLog<L> {
    type Error = L::Error;

    fn head(&self) -> Result<u64, L::Error> {
        self.log.head()
    }

    fn append(&self, expected_head: u64, records: &[StoredRecord]) -> Result<(), AppendError<L::Error>> {
        self.log.append(expected_head, records)
    }

    fn read(&self, from_seq: u64, max: usize) -> Result<Vec<StoredRecord>, L::Error> {
        let records = self.log.read(from_seq, max)?;
        if let Some(last) = records.last() {
            self.bar.set_position(last.seq);
        }
        Ok(records)
    }

    fn tree_node(&self, id: NodeId) -> Result<Option<TreeHash>, L::Error> {
        self.log.tree_node(id)
    }

    fn requires_restart(&self, error: &L::Error) -> bool {
        self.log.requires_restart(error)
    }
}

/// A writer that moves a bar by the lines written through it: a bundle is one record or
/// checkpoint a line.
pub struct LineProgress<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W: Write> LineProgress<W> {
    /// Wraps `inner`, counting its lines on `bar`.
    pub fn new(inner: W, bar: ProgressBar) -> Self {
        LineProgress { inner, bar }
    }
}

impl<W: Write> Write for LineProgress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        let lines = buf[..written].iter().filter(|byte| **byte == b'\n').count();
        if lines > 0 {
            self.bar.inc(lines as u64);
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
