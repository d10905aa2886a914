//! Code host connections and the repo updater.
//!
//! Owns: connection configurations (`LOCAL` directories, Sourcegraph's generic `OTHER` git host),
//! turning `quarry serve` arguments into connections, discovering each connection's repositories,
//! and the schedule that clones and fetches them (adaptive interval, jitter, backoff, bounded
//! concurrency).
//!
//! Invariants: a repository is deleted only when a complete listing of its connection no longer
//! has it (an unreadable directory deletes nothing); a problem with one repository is recorded and
//! never blocks the others; repository names are validated before they are stored.

mod connection;
mod error;
mod updater;

pub use connection::{
    ConnectionConfig, DEFAULT_MAX_DEPTH, DiscoveredRepo, Discovery, LocalConfig, OtherConfig,
    connection_for_argument, is_git_url,
};
pub use error::RepoError;
pub use updater::{
    MAX_FETCH_INTERVAL, MIN_FETCH_INTERVAL, RepoUpdater, SyncReport, failure_backoff,
    next_fetch_interval,
};
