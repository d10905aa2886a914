//! The trigram index: per repository, the default branch's files in immutable shards, with a
//! manifest naming the commit indexed, the shards in force and the documents each no longer
//! holds (tombstones). A new commit adds a shard with only the changed files; many changes, or
//! many shards, rebuild the repository's index from scratch.
//!
//! Crash safety: shards and manifests are written to temporary files, flushed and renamed; a
//! manifest is replaced only after every shard it names is in place; shards no manifest names are
//! deleted when the index is opened. A torn write is therefore never read, and a damaged shard is
//! detected by its checksums and reported, never served.

mod build;
pub mod candidates;
mod dictionary;
pub mod format;
mod repo;
mod search;
mod service;
pub mod trigram;

pub use build::{BuildStats, IndexBuilder};
pub use repo::{IndexCatalog, RepoIndex};
pub use search::search;
pub use service::IndexService;

/// Errors of the index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index i/o: {0}")]
    Io(String),
    #[error("damaged index: {0}")]
    Corrupt(String),
    #[error("index format version {0} is not supported by this version of Quarry")]
    Version(u32),
    #[error("{0}")]
    Git(String),
}
