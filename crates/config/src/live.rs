//! The configuration in force, shared by every service of a process.

use std::sync::{Arc, RwLock};

use crate::SiteConfig;

/// A cheaply cloned handle to the site configuration in force and the id of its stored version.
/// Readers take a snapshot per operation, so a change applies to the next operation without restart.
#[derive(Debug, Clone)]
pub struct LiveSiteConfig {
    inner: Arc<RwLock<(i64, Arc<SiteConfig>)>>,
}

impl LiveSiteConfig {
    pub fn new(version: i64, config: SiteConfig) -> Self {
        LiveSiteConfig {
            inner: Arc::new(RwLock::new((version, Arc::new(config)))),
        }
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<SiteConfig> {
        match self.inner.read() {
            Ok(guard) => guard.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// The id of the stored version in force.
    pub fn version(&self) -> i64 {
        match self.inner.read() {
            Ok(guard) => guard.0,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    /// Puts a newer version in force; an older or equal version id is ignored, so concurrent
    /// reloads never move the configuration backwards.
    pub fn replace(&self, version: i64, config: SiteConfig) -> bool {
        let mut guard = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if version <= guard.0 {
            return false;
        }
        *guard = (version, Arc::new(config));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_replace_older_ones_never_the_reverse() {
        let live = LiveSiteConfig::new(1, SiteConfig::default());
        let newer = SiteConfig::parse(r#"{"gitMaxConcurrentClones": 9}"#).unwrap();
        assert!(live.replace(2, newer));
        assert_eq!(live.current().git_max_concurrent_clones(), 9);
        assert!(!live.replace(1, SiteConfig::default()));
        assert_eq!(live.version(), 2);
        assert_eq!(live.current().git_max_concurrent_clones(), 9);
    }
}
