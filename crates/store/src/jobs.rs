//! Jobs of every queue, and the execution log of each attempt. The queue's rules (states,
//! retries, stalled jobs) are the `workqueue` crate's; these are the statements.
//!
//! A job is `queued` until a worker dequeues it (`processing`, owned by that worker's hostname,
//! `attempt` incremented), and ends `completed`, `errored`, `failed` or `canceled`. Only the
//! owning worker can log, heartbeat or finish a processing job; a job reset to the queue belongs
//! to nobody until dequeued again.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Dialect, Result, Store, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Processing,
    Completed,
    Errored,
    Failed,
    Canceled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Errored => "errored",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    fn parse(text: &str) -> JobState {
        match text {
            "queued" => JobState::Queued,
            "processing" => JobState::Processing,
            "completed" => JobState::Completed,
            "errored" => JobState::Errored,
            "canceled" => JobState::Canceled,
            _ => JobState::Failed,
        }
    }

    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Processing)
    }
}

/// A job to add to a queue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub queue: &'a str,
    /// The queue's own description of the work (JSON).
    pub payload: &'a str,
    pub repository_id: Option<i64>,
    /// How many times the job may run before an error is final (1: no retry).
    pub max_attempts: i64,
}

/// A job as stored. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub queue: String,
    pub state: JobState,
    pub payload: String,
    pub repository_id: Option<i64>,
    pub worker_hostname: Option<String>,
    pub queued_at: i64,
    pub process_after: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    /// Dequeues so far (the current attempt while processing).
    pub attempt: i64,
    pub num_resets: i64,
    pub num_failures: i64,
    pub max_attempts: i64,
    pub cancel_requested: bool,
    pub failure_message: Option<String>,
}

/// How a worker ends a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome<'a> {
    Completed,
    /// A failure that may be retried (when attempts are left, after `retry_after_ms`).
    Errored {
        message: &'a str,
        retry_after_ms: i64,
    },
    /// A failure that is final.
    Failed {
        message: &'a str,
    },
}

/// One command of an attempt and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLogEntry {
    pub id: i64,
    pub job_id: i64,
    pub attempt: i64,
    pub key: String,
    /// The command as a JSON array.
    pub command: String,
    pub started_at: i64,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<i64>,
    pub output: String,
}

/// Jobs put back in the queue, and jobs failed for stalling too often.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StalledReset {
    pub reset: Vec<i64>,
    pub failed: Vec<i64>,
}

/// A queue's size and age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: i64,
    pub processing: i64,
    /// When the oldest queued job was queued.
    pub oldest_queued_at: Option<i64>,
}

const COLUMNS: &str = "id, queue, state, payload, repository_id, worker_hostname, queued_at, \
    process_after, started_at, finished_at, last_heartbeat_at, attempt, num_resets, \
    num_failures, max_attempts, cancel_requested, failure_message";

fn job(row: &AnyRow) -> Result<JobRecord> {
    let state: String = row.try_get("state")?;
    let cancel: i64 = row.try_get("cancel_requested")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        state: JobState::parse(&state),
        payload: row.try_get("payload")?,
        repository_id: row.try_get("repository_id")?,
        worker_hostname: row.try_get("worker_hostname")?,
        queued_at: row.try_get("queued_at")?,
        process_after: row.try_get("process_after")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        last_heartbeat_at: row.try_get("last_heartbeat_at")?,
        attempt: row.try_get("attempt")?,
        num_resets: row.try_get("num_resets")?,
        num_failures: row.try_get("num_failures")?,
        max_attempts: row.try_get("max_attempts")?,
        cancel_requested: cancel != 0,
        failure_message: row.try_get("failure_message")?,
    })
}

fn log_entry(row: &AnyRow) -> Result<JobLogEntry> {
    Ok(JobLogEntry {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        attempt: row.try_get("attempt")?,
        key: row.try_get("entry_key")?,
        command: row.try_get("command")?,
        started_at: row.try_get("started_at")?,
        exit_code: row.try_get("exit_code")?,
        duration_ms: row.try_get("duration_ms")?,
        output: row.try_get("output")?,
    })
}

/// `$first, $first+1, ...` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    pub async fn enqueue_job(&self, new: &NewJob<'_>) -> Result<JobRecord> {
        let at = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO jobs (queue, state, payload, repository_id, queued_at, process_after, \
             max_attempts) VALUES ($1, 'queued', $2, $3, $4, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(new.queue)
        .bind(new.payload)
        .bind(new.repository_id)
        .bind(at)
        .bind(new.max_attempts.max(1))
        .fetch_one(&self.pool)
        .await?;
        job(&row)
    }

    /// Hands the oldest ready job of a queue to a worker, with the digest of the token that
    /// will authenticate the worker's calls about it. On PostgreSQL concurrent dequeues skip
    /// each other's rows; on SQLite the statement runs alone.
    pub async fn dequeue_job(
        &self,
        queue: &str,
        worker: &str,
        token_sha256: &str,
    ) -> Result<Option<JobRecord>> {
        let at = now_ms();
        let skip_locked = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = 'processing', worker_hostname = $1, started_at = $2, \
             last_heartbeat_at = $2, attempt = attempt + 1, finished_at = NULL, token_sha256 = $4 \
             WHERE id = (SELECT id FROM jobs WHERE queue = $3 AND state = 'queued' \
             AND process_after <= $2 ORDER BY id LIMIT 1{skip_locked}) \
             AND state = 'queued' RETURNING {COLUMNS}"
        ))
        .bind(worker)
        .bind(at)
        .bind(queue)
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job).transpose()
    }

    /// The job a token was issued for, while its worker holds it.
    pub async fn job_by_token(&self, token_sha256: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE token_sha256 = $1 AND state = 'processing'"
        ))
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job).transpose()
    }

    /// Records a worker's heartbeat for the jobs it runs. Answers which of them it still owns,
    /// and which of those should be canceled.
    pub async fn heartbeat_jobs(
        &self,
        queue: &str,
        worker: &str,
        ids: &[i64],
    ) -> Result<(Vec<i64>, Vec<i64>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let sql = format!(
            "UPDATE jobs SET last_heartbeat_at = $1 WHERE queue = $2 AND worker_hostname = $3 \
             AND state = 'processing' AND id IN ({}) RETURNING id, cancel_requested",
            placeholders(4, ids.len())
        );
        let mut query = sqlx::query(&sql).bind(now_ms()).bind(queue).bind(worker);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut known = Vec::with_capacity(rows.len());
        let mut cancel = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let requested: i64 = row.try_get("cancel_requested")?;
            known.push(id);
            if requested != 0 {
                cancel.push(id);
            }
        }
        known.sort_unstable();
        cancel.sort_unstable();
        Ok((known, cancel))
    }

    /// Puts processing jobs without a heartbeat since `stalled_before` back in their queue, or
    /// fails them once they were reset `max_resets` times.
    pub async fn reset_stalled_jobs(
        &self,
        stalled_before: i64,
        max_resets: i64,
    ) -> Result<StalledReset> {
        let ids = |rows: Vec<AnyRow>| -> Result<Vec<i64>> {
            let mut ids: Vec<i64> = rows
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<std::result::Result<_, _>>()?;
            ids.sort_unstable();
            Ok(ids)
        };
        let failed = sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = $1, worker_hostname = NULL, \
             token_sha256 = NULL, \
             failure_message = 'the job stopped sending heartbeats too many times' \
             WHERE state = 'processing' AND last_heartbeat_at < $2 AND num_resets >= $3 \
             RETURNING id",
        )
        .bind(now_ms())
        .bind(stalled_before)
        .bind(max_resets)
        .fetch_all(&self.pool)
        .await?;
        let reset = sqlx::query(
            "UPDATE jobs SET state = 'queued', worker_hostname = NULL, token_sha256 = NULL, \
             num_resets = num_resets + 1, process_after = $1 \
             WHERE state = 'processing' AND last_heartbeat_at < $2 AND num_resets < $3 \
             RETURNING id",
        )
        .bind(now_ms())
        .bind(stalled_before)
        .bind(max_resets)
        .fetch_all(&self.pool)
        .await?;
        Ok(StalledReset {
            reset: ids(reset)?,
            failed: ids(failed)?,
        })
    }

    /// Asks for a job to stop: a queued one is canceled at once, a processing one is flagged for
    /// its worker's next heartbeat. Answers the job's state after, or `None` for no such job.
    pub async fn request_job_cancel(&self, id: i64) -> Result<Option<JobState>> {
        sqlx::query(
            "UPDATE jobs SET state = 'canceled', finished_at = $2 WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND state = 'processing'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(self.job(id).await?.map(|j| j.state))
    }

    /// Ends an attempt of a job the worker owns. Answers `None` when the job is not processing
    /// under this worker (it was reset, canceled or finished already), else the state it is in.
    pub async fn finish_job(
        &self,
        id: i64,
        queue: &str,
        worker: &str,
        outcome: &JobOutcome<'_>,
    ) -> Result<Option<JobState>> {
        let at = now_ms();
        let owned =
            "WHERE id = $2 AND queue = $3 AND worker_hostname = $4 AND state = 'processing'";
        let row = match outcome {
            JobOutcome::Completed => sqlx::query(&format!(
                "UPDATE jobs SET state = 'completed', finished_at = $1, token_sha256 = NULL {owned} \
                 RETURNING state"
            ))
            .bind(at)
            .bind(id)
            .bind(queue)
            .bind(worker)
            .fetch_optional(&self.pool)
            .await?,
            JobOutcome::Errored {
                message,
                retry_after_ms,
            } => sqlx::query(&format!(
                "UPDATE jobs SET num_failures = num_failures + 1, failure_message = $5, \
                 token_sha256 = NULL, \
                 state = CASE WHEN cancel_requested = 0 AND num_failures + 1 < max_attempts \
                 THEN 'queued' WHEN cancel_requested = 0 THEN 'errored' ELSE 'canceled' END, \
                 worker_hostname = CASE WHEN cancel_requested = 0 AND num_failures + 1 < max_attempts \
                 THEN NULL ELSE worker_hostname END, \
                 process_after = $1 + $6, \
                 finished_at = CASE WHEN cancel_requested = 0 AND num_failures + 1 < max_attempts \
                 THEN NULL ELSE $1 END {owned} RETURNING state"
            ))
            .bind(at)
            .bind(id)
            .bind(queue)
            .bind(worker)
            .bind(*message)
            .bind(*retry_after_ms)
            .fetch_optional(&self.pool)
            .await?,
            JobOutcome::Failed { message } => sqlx::query(&format!(
                "UPDATE jobs SET state = CASE WHEN cancel_requested = 0 THEN 'failed' \
                 ELSE 'canceled' END, failure_message = $5, finished_at = $1, \
                 token_sha256 = NULL {owned} \
                 RETURNING state"
            ))
            .bind(at)
            .bind(id)
            .bind(queue)
            .bind(worker)
            .bind(*message)
            .fetch_optional(&self.pool)
            .await?,
        };
        row.map(|r| r.try_get::<String, _>("state").map(|s| JobState::parse(&s)))
            .transpose()
            .map_err(Into::into)
    }

    /// Starts a log entry of the job's current attempt, if the worker owns the job.
    pub async fn append_job_log(
        &self,
        id: i64,
        worker: &str,
        key: &str,
        command: &str,
        started_at: i64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "INSERT INTO job_logs (job_id, attempt, entry_key, command, started_at, output) \
             SELECT id, attempt, $3, $4, $5, '' FROM jobs \
             WHERE id = $1 AND worker_hostname = $2 AND state = 'processing' RETURNING id",
        )
        .bind(id)
        .bind(worker)
        .bind(key)
        .bind(command)
        .bind(started_at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
    }

    /// Updates a log entry of the job's current attempt; false when the worker does not own the
    /// job or the entry is not of its current attempt.
    pub async fn update_job_log(
        &self,
        id: i64,
        worker: &str,
        entry_id: i64,
        exit_code: Option<i64>,
        duration_ms: Option<i64>,
        output: &str,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE job_logs SET exit_code = $4, duration_ms = $5, output = $6 \
             WHERE id = $3 AND job_id = $1 AND attempt = (SELECT attempt FROM jobs \
             WHERE id = $1 AND worker_hostname = $2 AND state = 'processing')",
        )
        .bind(id)
        .bind(worker)
        .bind(entry_id)
        .bind(exit_code)
        .bind(duration_ms)
        .bind(output)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job).transpose()
    }

    /// A job's log entries, oldest first (every attempt).
    pub async fn job_logs(&self, id: i64) -> Result<Vec<JobLogEntry>> {
        sqlx::query(
            "SELECT id, job_id, attempt, entry_key, command, started_at, exit_code, duration_ms, \
             output FROM job_logs WHERE job_id = $1 ORDER BY attempt, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(log_entry)
        .collect()
    }

    /// Jobs of a queue, newest first.
    pub async fn list_jobs(&self, queue: &str, limit: i64) -> Result<Vec<JobRecord>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE queue = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(queue)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job)
        .collect()
    }

    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        let row = sqlx::query(
            "SELECT \
             COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS queued, \
             COALESCE(SUM(CASE WHEN state = 'processing' THEN 1 ELSE 0 END), 0) AS processing, \
             MIN(CASE WHEN state = 'queued' THEN queued_at END) AS oldest \
             FROM jobs WHERE queue = $1 AND state IN ('queued', 'processing')",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            queued: row.try_get("queued")?,
            processing: row.try_get("processing")?,
            oldest_queued_at: row.try_get("oldest")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_each_store;

    /// A distinct token digest per dequeue (the column is unique).
    fn token() -> String {
        format!("{:064x}", fastrand::u128(..))
    }

    fn new(queue: &str, max_attempts: i64) -> NewJob<'_> {
        NewJob {
            queue,
            payload: "{}",
            repository_id: None,
            max_attempts,
        }
    }

    #[tokio::test]
    async fn jobs_go_from_queued_to_processing_to_a_final_state() {
        with_each_store(|store| async move {
            let first = store
                .enqueue_job(&new("codeintel", 1))
                .await
                .expect("enqueue");
            let second = store
                .enqueue_job(&new("codeintel", 1))
                .await
                .expect("enqueue");
            store
                .enqueue_job(&new("batches", 1))
                .await
                .expect("enqueue");
            let stats = store.queue_stats("codeintel").await.expect("stats");
            assert_eq!((stats.queued, stats.processing), (2, 0));
            assert_eq!(stats.oldest_queued_at, Some(first.queued_at));

            let taken = store
                .dequeue_job("codeintel", "w1", &token())
                .await
                .expect("dequeue")
                .expect("a job");
            assert_eq!(taken.id, first.id, "oldest first");
            assert_eq!(taken.state, JobState::Processing);
            assert_eq!(taken.attempt, 1);
            let other = store
                .dequeue_job("codeintel", "w2", &token())
                .await
                .expect("dequeue")
                .expect("a job");
            assert_eq!(other.id, second.id);
            assert!(
                store
                    .dequeue_job("codeintel", "w3", &token())
                    .await
                    .expect("dequeue")
                    .is_none()
            );

            // Only the owner heartbeats, logs and finishes.
            let (known, cancel) = store
                .heartbeat_jobs("codeintel", "w1", &[first.id, second.id, 999])
                .await
                .expect("heartbeat");
            assert_eq!((known, cancel), (vec![first.id], vec![]));
            assert_eq!(
                store
                    .append_job_log(first.id, "w2", "step.0", "[]", 1)
                    .await
                    .expect("log"),
                None
            );
            let entry = store
                .append_job_log(first.id, "w1", "step.0", "[\"true\"]", 1)
                .await
                .expect("log")
                .expect("owned");
            assert!(
                store
                    .update_job_log(first.id, "w1", entry, Some(0), Some(5), "ok\n")
                    .await
                    .expect("update")
            );
            assert!(
                !store
                    .update_job_log(first.id, "w2", entry, Some(0), Some(5), "x")
                    .await
                    .expect("update")
            );
            assert_eq!(
                store
                    .finish_job(first.id, "codeintel", "w2", &JobOutcome::Completed)
                    .await
                    .expect("finish"),
                None
            );
            assert_eq!(
                store
                    .finish_job(first.id, "codeintel", "w1", &JobOutcome::Completed)
                    .await
                    .expect("finish"),
                Some(JobState::Completed)
            );
            assert_eq!(
                store
                    .finish_job(first.id, "codeintel", "w1", &JobOutcome::Completed)
                    .await
                    .expect("finish"),
                None,
                "a job ends once"
            );
            let logs = store.job_logs(first.id).await.expect("logs");
            assert_eq!(logs.len(), 1);
            assert_eq!(
                (logs[0].exit_code, logs[0].output.as_str()),
                (Some(0), "ok\n")
            );

            // A processing job asked to cancel hears it on its next heartbeat.
            assert_eq!(
                store.request_job_cancel(second.id).await.expect("cancel"),
                Some(JobState::Processing)
            );
            let (_, cancel) = store
                .heartbeat_jobs("codeintel", "w2", &[second.id])
                .await
                .expect("beat");
            assert_eq!(cancel, vec![second.id]);
            let ended = store
                .finish_job(
                    second.id,
                    "codeintel",
                    "w2",
                    &JobOutcome::Failed {
                        message: "canceled",
                    },
                )
                .await
                .expect("finish");
            assert_eq!(ended, Some(JobState::Canceled));
            // A queued job is canceled at once.
            let queued = store
                .enqueue_job(&new("codeintel", 1))
                .await
                .expect("enqueue");
            assert_eq!(
                store.request_job_cancel(queued.id).await.expect("cancel"),
                Some(JobState::Canceled)
            );
            assert_eq!(store.request_job_cancel(12345).await.expect("cancel"), None);
        })
        .await;
    }

    #[tokio::test]
    async fn errors_are_retried_and_stalled_jobs_reset_then_fail() {
        with_each_store(|store| async move {
            let job = store
                .enqueue_job(&new("codeintel", 2))
                .await
                .expect("enqueue");
            store
                .dequeue_job("codeintel", "w1", &token())
                .await
                .expect("dequeue")
                .expect("job");
            let outcome = JobOutcome::Errored {
                message: "boom",
                retry_after_ms: 0,
            };
            let state = store
                .finish_job(job.id, "codeintel", "w1", &outcome)
                .await
                .expect("finish");
            assert_eq!(state, Some(JobState::Queued), "one attempt left: retried");
            let again = store
                .dequeue_job("codeintel", "w1", &token())
                .await
                .expect("dequeue")
                .expect("job");
            assert_eq!(again.attempt, 2);
            let state = store
                .finish_job(job.id, "codeintel", "w1", &outcome)
                .await
                .expect("finish");
            assert_eq!(state, Some(JobState::Errored), "no attempt left");

            // A retry waits for its delay.
            let delayed = store
                .enqueue_job(&new("codeintel", 2))
                .await
                .expect("enqueue");
            store
                .dequeue_job("codeintel", "w1", &token())
                .await
                .expect("dequeue")
                .expect("job");
            let later = JobOutcome::Errored {
                message: "later",
                retry_after_ms: 60_000,
            };
            store
                .finish_job(delayed.id, "codeintel", "w1", &later)
                .await
                .expect("finish");
            assert!(
                store
                    .dequeue_job("codeintel", "w1", &token())
                    .await
                    .expect("dequeue")
                    .is_none()
            );

            // Stalled: reset up to the limit, then failed.
            let stalled = store
                .enqueue_job(&new("batches", 1))
                .await
                .expect("enqueue");
            for round in 0..3 {
                store
                    .dequeue_job("batches", "w9", &token())
                    .await
                    .expect("dequeue")
                    .expect("job");
                let reset = store
                    .reset_stalled_jobs(now_ms() + 1, 2)
                    .await
                    .expect("reset");
                if round < 2 {
                    assert_eq!(reset.reset, vec![stalled.id]);
                } else {
                    assert_eq!(reset.failed, vec![stalled.id]);
                }
            }
            let record = store.job(stalled.id).await.expect("job").expect("exists");
            assert_eq!(record.state, JobState::Failed);
            assert_eq!(record.num_resets, 2);
            assert!(
                record
                    .failure_message
                    .unwrap_or_default()
                    .contains("heartbeats")
            );
            // A live job is left alone.
            let live = store
                .enqueue_job(&new("batches", 1))
                .await
                .expect("enqueue");
            store
                .dequeue_job("batches", "w9", &token())
                .await
                .expect("dequeue")
                .expect("job");
            let reset = store
                .reset_stalled_jobs(now_ms() - 60_000, 2)
                .await
                .expect("reset");
            assert!(reset.reset.is_empty() && reset.failed.is_empty());
            assert_eq!(
                store.job(live.id).await.expect("job").map(|j| j.state),
                Some(JobState::Processing)
            );
        })
        .await;
    }
}
