//! Site configuration: one JSON-with-comments document with Sourcegraph's key names.
//!
//! Owns: parsing (comments and trailing commas allowed), the schema of accepted keys, validation
//! messages that start with the key path, typed accessors with Sourcegraph's defaults, and the live
//! handle through which running services read the version in force.
//!
//! Invariants: a [`SiteConfig`] value is always valid (there is no way to build an invalid one);
//! the live handle only ever holds a valid configuration, so a refused document leaves the previous
//! one in force. This crate does no I/O: storing versions is the store's job.

mod jsonc;
mod live;
mod site;

pub use jsonc::SyntaxError;
pub use live::LiveSiteConfig;
pub use site::{DEFAULT_SITE_CONFIG, SiteConfig, SiteConfigError};
