//! Watch fan-out for [`super::memory_api::InMemoryApi`]: live watchers plus a bounded replay
//! history, so a watch can start at a listed revision.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::api::{ApiError, WatchEvent, WatchStream};

/// Watch events kept for resuming a watch from a listed revision.
const HISTORY: usize = 100_000;

pub(super) struct Kind<T> {
    pub watchers: Vec<mpsc::UnboundedSender<WatchEvent<T>>>,
    history: VecDeque<(u64, WatchEvent<T>)>,
    /// Revision of the newest event dropped from `history`.
    dropped: u64,
}

impl<T: Clone> Kind<T> {
    pub fn publish(&mut self, revision: u64, ev: WatchEvent<T>) {
        self.watchers.retain(|w| w.send(ev.clone()).is_ok());
        if self.history.len() == HISTORY {
            if let Some((r, _)) = self.history.pop_front() {
                self.dropped = r;
            }
        }
        self.history.push_back((revision, ev));
    }

    pub fn watch(&mut self, from: u64) -> Result<WatchStream<T>, ApiError> {
        if from < self.dropped {
            return Err(ApiError::Gone(from.to_string()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for (_, ev) in self.history.iter().filter(|(r, _)| *r > from) {
            let _ = tx.send(ev.clone());
        }
        self.watchers.push(tx);
        Ok(rx)
    }
}

impl<T> Default for Kind<T> {
    fn default() -> Self {
        Self {
            watchers: Vec::new(),
            history: VecDeque::new(),
            dropped: 0,
        }
    }
}
