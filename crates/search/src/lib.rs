//! Code search: Sourcegraph's query language, matching, and search over repositories.
//!
//! Owns: parsing and planning queries, matching a file against a plan (the same lines `rg`
//! reports), searching repositories at any revision straight from git objects, ranking, and the
//! stream of events (Sourcegraph's names and shapes) a search produces.
//!
//! Invariants: every search is bounded (match count, timeout, bounded concurrency) and stops
//! when its consumer goes away; regexps run in linear time; a malformed query is an error that
//! names its position, never a panic.

pub mod archive;
pub mod events;
pub mod http;
pub mod index;
pub mod languages;
pub mod lines;
pub mod matcher;
pub mod query;
pub mod ranking;
mod service;
mod shards;

pub use service::{DEFAULT_MAX_FILE_SIZE, IndexState, MAX_CONTEXT_LINES, SearchOptions, Searcher};
pub use shards::{Ownership, RemoteShard};
