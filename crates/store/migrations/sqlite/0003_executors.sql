-- Executors as their heartbeats describe them (Sourcegraph's executor_heartbeats).
CREATE TABLE executor_heartbeats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL UNIQUE,
    queue_names TEXT NOT NULL,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    executor_version TEXT NOT NULL,
    git_version TEXT NOT NULL,
    docker_version TEXT NOT NULL,
    src_cli_version TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX executor_heartbeats_last_seen ON executor_heartbeats (last_seen_at);
