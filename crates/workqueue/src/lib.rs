//! Job queues: the rules every queue (`codeintel`, `batches`, ...) shares, over the store's jobs
//! table.
//!
//! Owns: enqueueing; dequeueing, optionally waiting (bounded) until a job arrives, so an idle
//! worker starts a new job within milliseconds without polling the database in a tight loop;
//! heartbeats (which jobs a worker still owns, which to cancel); ending a job (completed, or an
//! error retried while attempts remain, or failed); resetting jobs whose worker stopped sending
//! heartbeats (default: none for 25 s; after 3 resets the job fails with a clear message); and
//! each queue's size and the age of its oldest queued job.
//!
//! Invariants: a job is processed by at most one worker at a time (the store's dequeue is atomic
//! per row); only the owning worker can heartbeat, log or end a job, so a worker that was
//! presumed dead and reset cannot complete a job a second time; a waiting dequeue is woken by an
//! enqueue in this process and otherwise looks again at least every `recheck` interval (other
//! processes may enqueue too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::select_all;
use quarry_store::{
    JobOutcome, JobRecord, JobState, NewJob, QueueStats, StalledReset, Store, StoreError, now_ms,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum WorkQueueError {
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, WorkQueueError>;

/// How one queue treats its jobs.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    /// A processing job with no heartbeat for this long is put back in the queue.
    pub stall_after: Duration,
    /// After this many resets a stalled job fails instead.
    pub max_resets: i64,
    /// Runs of a job before an error is final (1: errors are not retried).
    pub max_attempts: i64,
    /// Wait before a retried job may run again.
    pub retry_after: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            stall_after: Duration::from_secs(25),
            max_resets: 3,
            max_attempts: 1,
            retry_after: Duration::from_secs(10),
        }
    }
}

/// The queues of an instance. Cheap to share; clones see the same wake-ups.
#[derive(Clone)]
pub struct WorkQueues {
    store: Store,
    queues: Arc<HashMap<String, QueueOptions>>,
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    recheck: Duration,
    /// The sizes last read by `refresh_sizes`, by queue.
    sizes: Arc<Mutex<Vec<(String, QueueStats)>>>,
    /// Ends every waiting dequeue (the process is stopping).
    stopping: CancellationToken,
}

impl WorkQueues {
    /// Queues by name with their options.
    pub fn new(store: Store, queues: &[(&str, QueueOptions)]) -> Self {
        WorkQueues {
            store,
            queues: Arc::new(
                queues
                    .iter()
                    .map(|(name, options)| ((*name).to_string(), *options))
                    .collect(),
            ),
            wakeups: Arc::new(Mutex::new(HashMap::new())),
            recheck: Duration::from_millis(500),
            sizes: Arc::default(),
            stopping: CancellationToken::new(),
        }
    }

    /// How often a waiting dequeue looks at the database again for jobs other processes added.
    pub fn with_recheck(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// Waiting dequeues answer at once (with no job) from when `stopping` is cancelled, so a
    /// process can stop without waiting out its executors' long polls.
    pub fn with_stopping(mut self, stopping: CancellationToken) -> Self {
        self.stopping = stopping;
        self
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.queues.keys().cloned().collect();
        names.sort();
        names
    }

    fn options(&self, queue: &str) -> Result<QueueOptions> {
        self.queues
            .get(queue)
            .copied()
            .ok_or_else(|| WorkQueueError::UnknownQueue(queue.to_string()))
    }

    fn wakeup(&self, queue: &str) -> Arc<Notify> {
        let mut wakeups = match self.wakeups.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        wakeups.entry(queue.to_string()).or_default().clone()
    }

    pub async fn enqueue(
        &self,
        queue: &str,
        payload: &str,
        repository_id: Option<i64>,
    ) -> Result<JobRecord> {
        let options = self.options(queue)?;
        let job = self
            .store
            .enqueue_job(&NewJob {
                queue,
                payload,
                repository_id,
                max_attempts: options.max_attempts,
            })
            .await?;
        self.wakeup(queue).notify_waiters();
        Ok(job)
    }

    /// The oldest ready job of the first of `queues` that has one, handed to `worker` with the
    /// digest of its job token; waits up to `wait` for one to arrive (zero: answer at once).
    pub async fn dequeue(
        &self,
        queues: &[&str],
        worker: &str,
        token_sha256: &str,
        wait: Duration,
    ) -> Result<Option<JobRecord>> {
        for queue in queues {
            self.options(queue)?;
        }
        if queues.is_empty() {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so an enqueue between the two is not missed.
            let wakeups: Vec<Arc<Notify>> = queues.iter().map(|q| self.wakeup(q)).collect();
            let mut notified: Vec<_> = wakeups.iter().map(|w| Box::pin(w.notified())).collect();
            for n in &mut notified {
                n.as_mut().enable();
            }
            for queue in queues {
                if let Some(job) = self.store.dequeue_job(queue, worker, token_sha256).await? {
                    return Ok(Some(job));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || self.stopping.is_cancelled() {
                return Ok(None);
            }
            let pause = (deadline - now).min(self.recheck);
            tokio::select! {
                _ = self.stopping.cancelled() => return Ok(None),
                _ = tokio::time::timeout(pause, select_all(notified)) => {}
            }
        }
    }

    /// A worker's heartbeat: which of `ids` it still owns in `queue`, and which to cancel.
    pub async fn heartbeat(
        &self,
        queue: &str,
        worker: &str,
        ids: &[i64],
    ) -> Result<(Vec<i64>, Vec<i64>)> {
        self.options(queue)?;
        Ok(self.store.heartbeat_jobs(queue, worker, ids).await?)
    }

    /// Completes a job the worker owns; `None` when it does not own it (any more).
    pub async fn complete(&self, queue: &str, worker: &str, id: i64) -> Result<Option<JobState>> {
        self.options(queue)?;
        Ok(self
            .store
            .finish_job(id, queue, worker, &JobOutcome::Completed)
            .await?)
    }

    /// Ends an attempt with an error: retried after the queue's delay while attempts remain.
    pub async fn error(
        &self,
        queue: &str,
        worker: &str,
        id: i64,
        message: &str,
    ) -> Result<Option<JobState>> {
        let options = self.options(queue)?;
        let outcome = JobOutcome::Errored {
            message,
            retry_after_ms: i64::try_from(options.retry_after.as_millis()).unwrap_or(i64::MAX),
        };
        let state = self.store.finish_job(id, queue, worker, &outcome).await?;
        if state == Some(JobState::Queued) {
            self.wakeup(queue).notify_waiters();
        }
        Ok(state)
    }

    /// Ends a job with a final failure.
    pub async fn fail(
        &self,
        queue: &str,
        worker: &str,
        id: i64,
        message: &str,
    ) -> Result<Option<JobState>> {
        self.options(queue)?;
        Ok(self
            .store
            .finish_job(id, queue, worker, &JobOutcome::Failed { message })
            .await?)
    }

    /// Asks a job to stop (see `Store::request_job_cancel`).
    pub async fn cancel(&self, id: i64) -> Result<Option<JobState>> {
        Ok(self.store.request_job_cancel(id).await?)
    }

    /// Resets or fails every queue's stalled jobs once.
    pub async fn reset_stalled(&self) -> Result<StalledReset> {
        let mut all = StalledReset::default();
        // Queues with the same options are handled by one statement.
        let mut seen: Vec<(u128, i64)> = Vec::new();
        for (queue, options) in self.queues.iter() {
            let key = (options.stall_after.as_millis(), options.max_resets);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let stall_ms = i64::try_from(options.stall_after.as_millis()).unwrap_or(i64::MAX);
            let done = self
                .store
                .reset_stalled_jobs(now_ms() - stall_ms, options.max_resets)
                .await?;
            if !done.reset.is_empty() {
                tracing::warn!(queue = %queue, jobs = ?done.reset, "stalled jobs put back in the queue");
                self.wakeup(queue).notify_waiters();
            }
            if !done.failed.is_empty() {
                tracing::warn!(queue = %queue, jobs = ?done.failed, "stalled jobs failed");
            }
            all.reset.extend(done.reset);
            all.failed.extend(done.failed);
        }
        Ok(all)
    }

    /// Resets stalled jobs every `every` until cancelled.
    pub async fn run_resetter(self, every: Duration, cancel: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => {
                    if let Err(e) = self.reset_stalled().await {
                        tracing::error!(error = %e, "cannot reset stalled jobs");
                    }
                }
            }
        }
    }

    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        self.options(queue)?;
        Ok(self.store.queue_stats(queue).await?)
    }

    /// Reads every queue's size now and keeps it for `sizes`.
    pub async fn refresh_sizes(&self) -> Result<Vec<(String, QueueStats)>> {
        let mut sizes = Vec::with_capacity(self.queues.len());
        for name in self.names() {
            let stats = self.store.queue_stats(&name).await?;
            sizes.push((name, stats));
        }
        let mut kept = match self.sizes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        kept.clone_from(&sizes);
        Ok(sizes)
    }

    /// The sizes the last `refresh_sizes` read (empty before the first).
    pub fn sizes(&self) -> Vec<(String, QueueStats)> {
        match self.sizes.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_store::testing::with_each_store;

    /// A distinct token digest per dequeue.
    fn token() -> String {
        format!("{:064x}", fastrand::u128(..))
    }

    fn queues(store: Store) -> WorkQueues {
        WorkQueues::new(
            store,
            &[
                ("codeintel", QueueOptions::default()),
                (
                    "batches",
                    QueueOptions {
                        max_attempts: 2,
                        retry_after: Duration::ZERO,
                        ..QueueOptions::default()
                    },
                ),
            ],
        )
    }

    #[tokio::test]
    async fn a_waiting_dequeue_takes_a_job_as_soon_as_it_is_queued() {
        with_each_store(|store| async move {
            let queues = queues(store).with_recheck(Duration::from_secs(30));
            let waiting = {
                let queues = queues.clone();
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    let job = queues
                        .dequeue(
                            &["batches", "codeintel"],
                            "w1",
                            &token(),
                            Duration::from_secs(20),
                        )
                        .await;
                    (job, started.elapsed())
                })
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            let queued = queues
                .enqueue("codeintel", "{}", None)
                .await
                .expect("enqueue");
            let (job, waited) = waiting.await.expect("task");
            let job = job.expect("dequeue").expect("a job");
            assert_eq!(job.id, queued.id);
            // Woken by the enqueue, not by the 30 s recheck nor the 20 s limit.
            assert!(waited < Duration::from_secs(20), "{waited:?}");
            // Nothing queued: a plain dequeue answers at once.
            let none = queues
                .dequeue(&["codeintel"], "w1", &token(), Duration::ZERO)
                .await
                .expect("dequeue");
            assert!(none.is_none());
            assert!(matches!(
                queues
                    .dequeue(&["nope"], "w1", &token(), Duration::ZERO)
                    .await,
                Err(WorkQueueError::UnknownQueue(_))
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn errors_retry_where_the_queue_allows_and_stats_count_jobs() {
        with_each_store(|store| async move {
            let queues = queues(store);
            let job = queues
                .enqueue("batches", "{}", None)
                .await
                .expect("enqueue");
            queues
                .dequeue(&["batches"], "w1", &token(), Duration::ZERO)
                .await
                .expect("dequeue");
            let stats = queues.stats("batches").await.expect("stats");
            assert_eq!((stats.queued, stats.processing), (0, 1));
            assert_eq!(
                queues
                    .error("batches", "w1", job.id, "flaky")
                    .await
                    .expect("error"),
                Some(JobState::Queued)
            );
            queues
                .dequeue(&["batches"], "w1", &token(), Duration::ZERO)
                .await
                .expect("dequeue");
            assert_eq!(
                queues
                    .error("batches", "w1", job.id, "flaky")
                    .await
                    .expect("error"),
                Some(JobState::Errored)
            );
            let once = queues
                .enqueue("codeintel", "{}", None)
                .await
                .expect("enqueue");
            queues
                .dequeue(&["codeintel"], "w1", &token(), Duration::ZERO)
                .await
                .expect("dequeue");
            assert_eq!(
                queues
                    .error("codeintel", "w1", once.id, "no retries")
                    .await
                    .expect("error"),
                Some(JobState::Errored)
            );
            assert!(
                queues
                    .reset_stalled()
                    .await
                    .expect("reset")
                    .reset
                    .is_empty()
            );
        })
        .await;
    }
}
