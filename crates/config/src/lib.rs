//! Site configuration: one JSON-with-comments document with Sourcegraph's key names.
//!
//! Owns: parsing (comments and trailing commas allowed), the schema of accepted keys, validation
//! messages that start with the key path, typed accessors with Sourcegraph's defaults, and the live
//! handle through which running services read the version in force.
//!
//! Invariants: a [`SiteConfig`] value is always valid (there is no way to build an invalid one);
//! the live handle only ever holds a valid configuration, so a refused document leaves the previous
//! one in force; every saved version is kept (saving goes through [`SiteConfigManager`], which
//! refuses an edit based on a stale version).

mod jsonc;
mod live;
mod manager;
mod site;

pub use jsonc::SyntaxError;
pub use live::LiveSiteConfig;
pub use manager::{ConfigError, SiteConfigManager};
pub use site::{
    BuiltinAuth, DEFAULT_SITE_CONFIG, ExecutorPool, Lockout, SiteConfig, SiteConfigError,
};
