//! The change feed: what the writer made durable, broadcast to whoever follows the log.
//!
//! After each batch is appended (and applied to the view), the writer publishes its
//! records, as stored, in one [`Change::Records`]; after each checkpoint is signed and
//! synced, the checkpoint. Publishing never waits: the feed is a bounded ring
//! ([`tokio::sync::broadcast`]) shared by every follower, the oldest message overwritten
//! when it is full, and a follower that falls more than the ring's capacity behind learns
//! it (`RecvError::Lagged`) when it next reads. So a slow or stalled follower costs the
//! writer nothing, and the memory held for all followers together is at most the ring's
//! capacity in messages. A follower reads the records it missed from the log, which keeps
//! everything.
//!
//! Order: a record is published only once it is durable and in the view, so a follower
//! that subscribes and then reads the view's head gets every later record from the feed
//! and every earlier one from the log (some possibly from both: it skips what it has).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::checkpoint::Checkpoint;
use crate::log::StoredRecord;

/// How many messages (batches and checkpoints) the feed keeps for a follower that is
/// behind. A batch holds one record or a few thousand, so a follower may be this many
/// commits behind before it is cut off; the memory is held only while one is.
pub const DEFAULT_FEED_CAPACITY: usize = 512;

/// One message of the feed.
#[derive(Debug, Clone)]
pub enum Change {
    /// The records of one appended batch, in order, exactly as stored.
    Records(Arc<[StoredRecord]>),
    /// A checkpoint, once signed and synced; it covers every record published before it.
    Checkpoint(Arc<Checkpoint>),
}

/// The writer's end of the feed.
#[derive(Debug)]
pub(super) struct Feed {
    sender: broadcast::Sender<Change>,
}

impl Feed {
    pub(super) fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// Publishes a batch's records, unless nobody follows. Never waits.
    pub(super) fn publish_records(&self, records: Vec<StoredRecord>) {
        if self.sender.receiver_count() > 0 && !records.is_empty() {
            // An error means every follower went away meanwhile: nobody to tell.
            let _ = self.sender.send(Change::Records(records.into()));
        }
    }

    /// Publishes a checkpoint, unless nobody follows. Never waits.
    pub(super) fn publish_checkpoint(&self, checkpoint: &Checkpoint) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Change::Checkpoint(Arc::new(checkpoint.clone())));
        }
    }
}
