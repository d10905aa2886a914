-- Precise code intelligence uploads (SCIP indexes), stored in blob storage as `upload-<id>.scip.gz`.
CREATE TABLE uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id BIGINT NOT NULL,
    commit_oid TEXT NOT NULL,
    root TEXT NOT NULL,
    indexer TEXT NOT NULL,
    indexer_version TEXT NOT NULL,
    associated_index_id BIGINT,
    state TEXT NOT NULL,
    upload_size BIGINT,
    uncompressed_size BIGINT,
    uploaded_at BIGINT NOT NULL,
    failure_message TEXT
);
CREATE INDEX uploads_index ON uploads (associated_index_id);
