//! gitserver: bare mirrors of repositories and the git operations on them.
//!
//! Owns: the mirror directory (one bare mirror per repository), clone and fetch through the git CLI,
//! reads (revisions, trees, files, logs, diffs, archives), read-only git smart HTTP, and the
//! [`GitService`] trait with its three wirings: in process ([`LocalGitService`]), over HTTP
//! ([`HttpGitClient`] against [`http::router`]), and sharded by rendezvous hashing
//! ([`ShardedGitService`]).
//!
//! Invariants: a mirror at its final path is complete (clones are made aside and renamed into
//! place); repository names are validated before they touch a path; git never prompts and never
//! outlives its caller (timeouts; the process group is killed when the caller gives up); errors
//! never carry a credential from a remote URL. This crate knows nothing of the database.

mod command;
mod error;
pub mod http;
mod local;
mod metrics;
mod name;
mod objects;
mod secret;
mod service;
mod shards;
pub mod smart_http;
pub mod testing;

pub use command::{ByteStream, redact_credentials};
pub use error::GitError;
pub use http::HttpGitClient;
pub use local::LocalGitService;
pub use name::validate_repo_name;
pub use secret::{
    INTERNAL_SECRET_VAR, bearer_matches, require_internal_secret, secrets_match, service_url,
};
pub use service::{
    Commit, EntryKind, GitRef, GitService, Signature, SyncResult, TreeEntry, validate_oid,
    validate_path, validate_revision,
};
pub use shards::{ShardedGitService, rendezvous_owner};
