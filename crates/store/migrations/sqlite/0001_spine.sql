CREATE TABLE site_config_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contents TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE external_services (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_sync_at BIGINT,
    last_sync_error TEXT,
    next_sync_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE repos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    clone_url TEXT NOT NULL,
    external_service_id BIGINT NOT NULL REFERENCES external_services(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    clone_status TEXT NOT NULL DEFAULT 'not_cloned',
    last_error TEXT,
    last_fetched_at BIGINT,
    last_changed_at BIGINT,
    default_branch TEXT,
    head_commit TEXT,
    fetch_interval_secs BIGINT NOT NULL DEFAULT 45,
    next_fetch_at BIGINT NOT NULL DEFAULT 0,
    failure_count BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX repos_next_fetch_at ON repos (next_fetch_at);
CREATE INDEX repos_external_service_id ON repos (external_service_id);
