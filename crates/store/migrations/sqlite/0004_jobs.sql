-- Jobs of every queue (codeintel, batches, ...), and the execution log of each attempt.
-- Times are Unix milliseconds: pickup latency is measured in milliseconds.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    payload TEXT NOT NULL,
    repository_id BIGINT,
    worker_hostname TEXT,
    queued_at BIGINT NOT NULL,
    process_after BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    last_heartbeat_at BIGINT,
    attempt BIGINT NOT NULL DEFAULT 0,
    num_resets BIGINT NOT NULL DEFAULT 0,
    num_failures BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 1,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    failure_message TEXT,
    -- SHA-256 of the job's token while a worker holds it (Sourcegraph's executor job token).
    token_sha256 TEXT
);
CREATE INDEX jobs_dequeue ON jobs (queue, state, process_after, id);
CREATE INDEX jobs_worker ON jobs (worker_hostname, state);
CREATE UNIQUE INDEX jobs_token ON jobs (token_sha256);

CREATE TABLE job_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    entry_key TEXT NOT NULL,
    command TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    exit_code BIGINT,
    duration_ms BIGINT,
    output TEXT NOT NULL
);
CREATE INDEX job_logs_job ON job_logs (job_id, attempt, id);
