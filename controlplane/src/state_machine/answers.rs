//! Writes proposed on this replica, answered by the state machine as it applies them.
//!
//! openraft answers a client write from its core task: the state machine worker hands the
//! applied results to the core, and the core to the writer, two task wakeups after the
//! apply. At low concurrency those wakeups (each a parked thread, on a VM an idle vCPU to
//! wake) are a good part of what a write costs above its fsyncs. So a write proposed here
//! carries a token ([`Proposal::waiter`], kept in memory only: it is never serialized, so
//! it never leaves this replica and the log's format is that of the bare command), and the
//! state machine answers it directly once the entry's transaction is committed. The answer
//! is the same one openraft would give, at the same point (committed on a quorum and
//! applied here); whichever of the two arrives first is used. (openraft's own answer then
//! finds its receiver gone; its responder notes that at `warn` level in `tracing`, which
//! Skiff does not collect. A custom responder would say nothing, but openraft 0.9's
//! membership calls need its default one.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::command::CommandResponse;

/// The registry of waiting writes. Cheap to clone.
#[derive(Clone, Default)]
pub struct Answers {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<CommandResponse>>>,
}

impl Answers {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<CommandResponse>>> {
        self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a write about to be proposed. Dropping the [`Waiter`] unregisters it.
    pub fn wait(&self) -> Waiter {
        let token = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(token, tx);
        Waiter {
            answers: self.clone(),
            token,
            rx,
        }
    }

    /// The entry carrying `token` was applied with `response`. A token nobody waits for (the
    /// writer gave up, or had its answer from openraft first) is ignored.
    pub fn answer(&self, token: u64, response: CommandResponse) {
        if let Some(tx) = self.waiting().remove(&token) {
            let _ = tx.send(response);
        }
    }

    fn forget(&self, token: u64) {
        self.waiting().remove(&token);
    }
}

/// One registered write.
pub struct Waiter {
    answers: Answers,
    token: u64,
    rx: oneshot::Receiver<CommandResponse>,
}

impl Waiter {
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The state machine's answer; pending forever if it never comes (select it against
    /// openraft's own answer).
    pub async fn answered(&mut self) -> CommandResponse {
        match (&mut self.rx).await {
            Ok(resp) => resp,
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.answers.forget(self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(revision: u64) -> CommandResponse {
        CommandResponse {
            revision,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_waiter_gets_the_answer_for_its_token_only() {
        let answers = Answers::default();
        let mut a = answers.wait();
        let mut b = answers.wait();
        assert_ne!(a.token(), b.token());
        answers.answer(b.token(), response(7));
        answers.answer(a.token(), response(5));
        assert_eq!(a.answered().await.revision, 5);
        assert_eq!(b.answered().await.revision, 7);
        assert!(answers.waiting().is_empty());
    }

    #[test]
    fn a_dropped_waiter_is_forgotten_and_its_late_answer_ignored() {
        let answers = Answers::default();
        let waiter = answers.wait();
        let token = waiter.token();
        drop(waiter);
        assert!(answers.waiting().is_empty());
        answers.answer(token, response(1));
        answers.answer(12345, response(2));
        assert!(answers.waiting().is_empty());
    }
}
