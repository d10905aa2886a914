//! The site configuration document: its schema (Sourcegraph's key names), validation with key paths,
//! and typed accessors with defaults.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::jsonc::{self, SyntaxError};

/// What kind of value a key takes, and the checks beyond its JSON type.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    /// An integer within the inclusive bounds.
    Integer {
        min: i64,
        max: i64,
    },
    /// A string of at least this many characters.
    String {
        min_len: usize,
    },
    /// An absolute http or https URL.
    AbsoluteUrl,
    StringArray,
    Object,
    /// `auth.providers`: objects that each name their `type`.
    AuthProviders,
    /// A duration such as `90d` or `12h`.
    Duration,
    /// `auth.lockout`: Sourcegraph's account lockout settings.
    Lockout,
    /// `executors.pools`: executor pools and how they scale with their queue.
    ExecutorPools,
}

/// An executor pool and how it scales: `ceil(queue size / jobs_per_instance_scaling)` executors,
/// within `[min_replicas, max_replicas]` (the names of Sourcegraph's executor deployment
/// modules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorPool {
    pub name: String,
    pub queue: String,
    pub jobs_per_instance_scaling: u64,
    pub min_replicas: u64,
    pub max_replicas: u64,
}

impl ExecutorPool {
    /// How many executors the pool wants for a queue of this size (queued plus processing).
    pub fn desired(&self, queue_size: u64) -> u64 {
        queue_size
            .div_ceil(self.jobs_per_instance_scaling)
            .clamp(self.min_replicas, self.max_replicas.max(self.min_replicas))
    }
}

/// Every key the site configuration accepts. Unknown keys are rejected, as a typo in a key would
/// otherwise silently leave the default in force.
const SCHEMA: &[(&str, Kind)] = &[
    ("externalURL", Kind::AbsoluteUrl),
    ("executors.accessToken", Kind::String { min_len: 20 }),
    ("executors.frontendURL", Kind::AbsoluteUrl),
    ("executors.pools", Kind::ExecutorPools),
    ("executors.jobNetwork", Kind::StringArray),
    (
        "repoListUpdateInterval",
        Kind::Integer {
            min: 0,
            max: 7 * 24 * 60,
        },
    ),
    (
        "gitMaxConcurrentClones",
        Kind::Integer { min: 1, max: 1024 },
    ),
    (
        "gitLongCommandTimeout",
        Kind::Integer {
            min: 1,
            max: 7 * 24 * 3600,
        },
    ),
    ("disableAutoGitUpdates", Kind::Bool),
    ("disableAutoCodeHostSyncs", Kind::Bool),
    ("auth.public", Kind::Bool),
    ("auth.providers", Kind::AuthProviders),
    ("auth.sessionExpiry", Kind::Duration),
    ("auth.sessionIdleTimeout", Kind::Duration),
    ("auth.lockout", Kind::Lockout),
    ("auth.minPasswordLength", Kind::Integer { min: 8, max: 256 }),
    ("codeIntelAutoIndexing.enabled", Kind::Bool),
    ("search.index.enabled", Kind::Bool),
    ("search.largeFiles", Kind::StringArray),
    ("search.limits", Kind::Object),
    (
        "maxReposToSearch",
        Kind::Integer {
            min: -1,
            max: i64::MAX,
        },
    ),
    ("experimentalFeatures", Kind::Object),
    ("corsOrigin", Kind::String { min_len: 0 }),
    ("email.address", Kind::String { min_len: 0 }),
    ("log", Kind::Object),
];

/// The document written for a new instance.
pub const DEFAULT_SITE_CONFIG: &str = r#"// Quarry site configuration: JSON with comments, with Sourcegraph's key names.
// Every saved version is kept; a change applies without a restart.
{
  // The URL users reach this instance at.
  // "externalURL": "https://quarry.example.com",

  // The shared secret executors present (at least 20 characters).
  // "executors.accessToken": "replace-with-a-long-random-secret",

  // Minutes between re-scans of code host connections.
  "repoListUpdateInterval": 1,

  // Clones and fetches that may run at once.
  "gitMaxConcurrentClones": 5
}
"#;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteConfigError {
    #[error("{0}")]
    Syntax(SyntaxError),
    #[error("invalid site configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl SiteConfigError {
    /// One message per problem, each starting with the key path it concerns (or the position of a
    /// syntax error).
    pub fn messages(&self) -> Vec<String> {
        match self {
            SiteConfigError::Syntax(e) => vec![e.to_string()],
            SiteConfigError::Invalid(messages) => messages.clone(),
        }
    }
}

/// A parsed, valid site configuration. The raw text (with its comments) is kept as the user wrote it.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    raw: String,
    values: Map<String, Value>,
}

impl SiteConfig {
    /// Parses and validates a document. Every problem is reported, not only the first.
    pub fn parse(text: &str) -> Result<SiteConfig, SiteConfigError> {
        let value = jsonc::parse(text).map_err(SiteConfigError::Syntax)?;
        let Value::Object(values) = value else {
            return Err(SiteConfigError::Invalid(vec![
                "(root): must be a JSON object".into(),
            ]));
        };
        let mut problems = Vec::new();
        for (key, value) in &values {
            match SCHEMA.iter().find(|(name, _)| name == key) {
                Some((_, kind)) => check(key, *kind, value, &mut problems),
                None => problems.push(format!("{key}: unknown key")),
            }
        }
        if problems.is_empty() {
            Ok(SiteConfig {
                raw: text.to_string(),
                values,
            })
        } else {
            Err(SiteConfigError::Invalid(problems))
        }
    }

    /// The document as the user wrote it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(Value::as_str)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.values.get(key).and_then(Value::as_i64)
    }

    fn flag(&self, key: &str) -> bool {
        self.values
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn external_url(&self) -> Option<&str> {
        self.str("externalURL")
    }

    pub fn executors_access_token(&self) -> Option<&str> {
        self.str("executors.accessToken")
    }

    /// How often code host connections are re-scanned (Sourcegraph's default: one minute).
    pub fn repo_list_update_interval(&self) -> Duration {
        let minutes = self.int("repoListUpdateInterval").unwrap_or(1);
        Duration::from_secs(u64::try_from(minutes).unwrap_or(1) * 60)
    }

    /// How many clones and fetches may run at once (Sourcegraph's default: 5).
    pub fn git_max_concurrent_clones(&self) -> usize {
        self.int("gitMaxConcurrentClones")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(5)
    }

    /// The limit on one clone or fetch (Sourcegraph's default: one hour).
    pub fn git_long_command_timeout(&self) -> Duration {
        Duration::from_secs(
            self.int("gitLongCommandTimeout")
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(3600),
        )
    }

    pub fn disable_auto_git_updates(&self) -> bool {
        self.flag("disableAutoGitUpdates")
    }

    /// Whether default branches are indexed and searched through the index (default: yes).
    pub fn search_index_enabled(&self) -> bool {
        self.values
            .get("search.index.enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    pub fn disable_auto_code_host_syncs(&self) -> bool {
        self.flag("disableAutoCodeHostSyncs")
    }

    /// Whether people who are not signed in may search (read-only); off by default.
    pub fn auth_public(&self) -> bool {
        self.flag("auth.public")
    }

    /// The builtin (username and password) provider, if enabled. Without `auth.providers` it is,
    /// with sign-up allowed, as in Sourcegraph's default configuration.
    pub fn builtin_auth(&self) -> Option<BuiltinAuth> {
        let Some(providers) = self.values.get("auth.providers").and_then(Value::as_array) else {
            return Some(BuiltinAuth { allow_signup: true });
        };
        providers
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("builtin"))
            .map(|p| BuiltinAuth {
                allow_signup: p
                    .get("allowSignup")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
    }

    fn duration(&self, key: &str, default: Duration) -> Duration {
        self.str(key)
            .and_then(|text| humantime::parse_duration(text).ok())
            .unwrap_or(default)
    }

    /// How long a session lasts from sign-in, however active (Sourcegraph's default: 90 days).
    pub fn session_expiry(&self) -> Duration {
        self.duration("auth.sessionExpiry", Duration::from_secs(90 * 24 * 3600))
    }

    /// How long a session lasts without a request (default: 7 days).
    pub fn session_idle_timeout(&self) -> Duration {
        self.duration(
            "auth.sessionIdleTimeout",
            Duration::from_secs(7 * 24 * 3600),
        )
    }

    /// Account lockout after failed sign-ins (Sourcegraph's defaults: 5 failures within an hour
    /// lock the account for 30 minutes).
    pub fn lockout(&self) -> Lockout {
        let setting = |key: &str, default: u64| {
            self.values
                .get("auth.lockout")
                .and_then(|l| l.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(default)
        };
        Lockout {
            failed_attempt_threshold: setting("failedAttemptThreshold", 5) as u32,
            consecutive_period: Duration::from_secs(setting("consecutivePeriod", 3600)),
            lockout_period: Duration::from_secs(setting("lockoutPeriod", 1800)),
        }
    }

    /// The executor pools an autoscaler sizes from their queue.
    pub fn executor_pools(&self) -> Vec<ExecutorPool> {
        let Some(pools) = self.values.get("executors.pools").and_then(Value::as_array) else {
            return Vec::new();
        };
        pools
            .iter()
            .filter_map(|pool| {
                let text = |key: &str| pool.get(key).and_then(Value::as_str).map(str::to_string);
                let number = |key: &str, default: u64| {
                    pool.get(key).and_then(Value::as_u64).unwrap_or(default)
                };
                Some(ExecutorPool {
                    name: text("name")?,
                    queue: text("queue")?,
                    jobs_per_instance_scaling: number("jobs_per_instance_scaling", 1).max(1),
                    min_replicas: number("min_replicas", 0),
                    max_replicas: number("max_replicas", 1),
                })
            })
            .collect()
    }

    /// Whether the steps of a queue's jobs may use the network (`executors.jobNetwork` lists
    /// such queues; steps have none otherwise).
    pub fn executor_queue_has_network(&self, queue: &str) -> bool {
        self.values
            .get("executors.jobNetwork")
            .and_then(Value::as_array)
            .is_some_and(|queues| queues.iter().any(|q| q.as_str() == Some(queue)))
    }

    /// The shortest password accepted (Sourcegraph's default: 12 characters).
    pub fn min_password_length(&self) -> usize {
        self.int("auth.minPasswordLength")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(12)
    }

    /// Whether users reach the instance over https (session cookies are then `Secure`).
    pub fn served_over_https(&self) -> bool {
        self.external_url()
            .is_some_and(|url| url.starts_with("https:"))
    }
}

/// The builtin authentication provider's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinAuth {
    pub allow_signup: bool,
}

/// When failed sign-ins lock an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub failed_attempt_threshold: u32,
    pub consecutive_period: Duration,
    pub lockout_period: Duration,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig::parse(DEFAULT_SITE_CONFIG).unwrap_or(SiteConfig {
            raw: String::from("{}"),
            values: Map::new(),
        })
    }
}

fn check(path: &str, kind: Kind, value: &Value, problems: &mut Vec<String>) {
    let mut problem = |message: String| problems.push(format!("{path}: {message}"));
    match kind {
        Kind::Bool if !value.is_boolean() => problem(format!("must be a boolean, got {value}")),
        Kind::Integer { min, max } => match value.as_i64() {
            Some(n) if n < min || n > max => {
                problem(format!("must be between {min} and {max}, got {n}"))
            }
            Some(_) => {}
            None => problem(format!("must be an integer, got {value}")),
        },
        Kind::String { min_len } => match value.as_str() {
            Some(s) if s.chars().count() < min_len => {
                problem(format!("must be at least {min_len} characters long"))
            }
            Some(_) => {}
            None => problem(format!("must be a string, got {value}")),
        },
        Kind::AbsoluteUrl => match value.as_str() {
            Some(s) => match url::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
                _ => problem(format!(
                    "must be an absolute http(s) URL such as https://quarry.example.com, got {value}"
                )),
            },
            None => problem(format!("must be a string, got {value}")),
        },
        Kind::StringArray => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_string() {
                        problems.push(format!("{path}[{i}]: must be a string, got {item}"));
                    }
                }
            }
            None => problem(format!("must be an array of strings, got {value}")),
        },
        Kind::Object if !value.is_object() => problem(format!("must be an object, got {value}")),
        Kind::Duration => match value.as_str().map(humantime::parse_duration) {
            Some(Ok(duration)) if !duration.is_zero() => {}
            _ => problem(format!(
                "must be a duration such as \"90d\" or \"12h\", got {value}"
            )),
        },
        Kind::Lockout => match value.as_object() {
            Some(fields) => {
                for (name, field) in fields {
                    let known = matches!(
                        name.as_str(),
                        "failedAttemptThreshold" | "consecutivePeriod" | "lockoutPeriod"
                    );
                    if !known {
                        problems.push(format!("{path}.{name}: unknown key"));
                    } else if field.as_u64().is_none_or(|n| n == 0) {
                        problems.push(format!(
                            "{path}.{name}: must be a positive integer, got {field}"
                        ));
                    }
                }
            }
            None => problem(format!("must be an object, got {value}")),
        },
        Kind::ExecutorPools => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(fields) = item.as_object() else {
                        problems.push(format!("{path}[{i}]: must be an object, got {item}"));
                        continue;
                    };
                    for (name, field) in fields {
                        let fine = match name.as_str() {
                            "name" | "queue" => field.as_str().is_some_and(|t| !t.is_empty()),
                            "jobs_per_instance_scaling" => field.as_u64().is_some_and(|n| n > 0),
                            "min_replicas" | "max_replicas" => field.as_u64().is_some(),
                            _ => {
                                problems.push(format!("{path}[{i}].{name}: unknown key"));
                                continue;
                            }
                        };
                        if !fine {
                            problems.push(format!("{path}[{i}].{name}: invalid value {field}"));
                        }
                    }
                    for required in ["name", "queue"] {
                        if !fields.contains_key(required) {
                            problems.push(format!("{path}[{i}].{required}: is required"));
                        }
                    }
                    let number = |key: &str, default: u64| {
                        fields.get(key).and_then(Value::as_u64).unwrap_or(default)
                    };
                    if number("min_replicas", 0) > number("max_replicas", u64::MAX) {
                        problems.push(format!(
                            "{path}[{i}].min_replicas: must not exceed max_replicas"
                        ));
                    }
                }
            }
            None => problem(format!("must be an array, got {value}")),
        },
        Kind::AuthProviders => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.get("type").and_then(Value::as_str) {
                        Some("builtin" | "openidconnect" | "saml" | "github" | "gitlab") => {}
                        Some(other) => problems.push(format!(
                            "{path}[{i}].type: unknown provider type \"{other}\""
                        )),
                        None => problems.push(format!("{path}[{i}].type: is required")),
                    }
                }
            }
            None => problem(format!("must be an array, got {value}")),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_document_is_valid() {
        let config = SiteConfig::parse(DEFAULT_SITE_CONFIG).unwrap();
        assert_eq!(config.git_max_concurrent_clones(), 5);
        assert_eq!(config.repo_list_update_interval(), Duration::from_secs(60));
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let err = SiteConfig::parse(
            r#"{
              "externalURL": "quarry.local",
              "executors.accessToken": "short",
              "gitMaxConcurrentClones": 0,
              "auth.providers": [{"type": "builtin"}, {"allowSignup": true}],
              "noSuchKey": 1,
            }"#,
        )
        .unwrap_err();
        let messages = err.messages();
        let has = |prefix: &str| messages.iter().any(|m| m.starts_with(prefix));
        assert!(has("externalURL: must be an absolute"), "{messages:?}");
        assert!(
            has("executors.accessToken: must be at least 20"),
            "{messages:?}"
        );
        assert!(
            has("gitMaxConcurrentClones: must be between 1"),
            "{messages:?}"
        );
        assert!(has("auth.providers[1].type: is required"), "{messages:?}");
        assert!(has("noSuchKey: unknown key"), "{messages:?}");
        assert_eq!(messages.len(), 5, "{messages:?}");
    }

    #[test]
    fn non_object_root_is_refused() {
        assert!(matches!(
            SiteConfig::parse("[1]"),
            Err(SiteConfigError::Invalid(_))
        ));
    }

    #[test]
    fn syntax_error_names_the_position() {
        let err = SiteConfig::parse("{\n \"externalURL\": }").unwrap_err();
        assert!(err.messages()[0].contains("line 2"), "{err}");
    }

    #[test]
    fn accessors_read_values_and_keep_the_raw_text() {
        let text = "// hi\n{\"externalURL\": \"https://q.example.com\", \"executors.accessToken\": \"0123456789abcdefghij\", \"disableAutoGitUpdates\": true}";
        let config = SiteConfig::parse(text).unwrap();
        assert_eq!(config.external_url(), Some("https://q.example.com"));
        assert_eq!(
            config.executors_access_token(),
            Some("0123456789abcdefghij")
        );
        assert!(config.disable_auto_git_updates());
        assert_eq!(config.raw(), text);
    }

    #[test]
    fn auth_settings_have_sourcegraphs_defaults_and_are_checked() {
        let defaults = SiteConfig::parse("{}").unwrap();
        assert!(!defaults.auth_public());
        assert_eq!(
            defaults.builtin_auth(),
            Some(BuiltinAuth { allow_signup: true })
        );
        assert_eq!(defaults.lockout().failed_attempt_threshold, 5);
        assert_eq!(defaults.min_password_length(), 12);
        assert_eq!(
            defaults.session_expiry(),
            Duration::from_secs(90 * 24 * 3600)
        );
        let set = SiteConfig::parse(
            r#"{"auth.providers": [{"type": "builtin"}], "auth.sessionIdleTimeout": "2h",
                "auth.lockout": {"failedAttemptThreshold": 3}, "externalURL": "https://q.example.com"}"#,
        )
        .unwrap();
        assert_eq!(
            set.builtin_auth(),
            Some(BuiltinAuth {
                allow_signup: false
            })
        );
        assert_eq!(set.session_idle_timeout(), Duration::from_secs(7200));
        assert_eq!(set.lockout().failed_attempt_threshold, 3);
        assert!(set.served_over_https());
        let none = SiteConfig::parse(r#"{"auth.providers": [{"type": "github"}]}"#).unwrap();
        assert_eq!(none.builtin_auth(), None);
        let err = SiteConfig::parse(
            r#"{"auth.sessionExpiry": "soon", "auth.lockout": {"lockoutPeriod": 0, "x": 1}}"#,
        )
        .unwrap_err();
        let messages = err.messages();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("auth.sessionExpiry: must be a duration")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("auth.lockout.lockoutPeriod: must be a positive")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("auth.lockout.x: unknown key")),
            "{messages:?}"
        );
    }

    #[test]
    fn executor_pools_are_checked_and_scale_with_their_queue() {
        let config = SiteConfig::parse(
            r#"{"executors.pools": [{"name": "linux", "queue": "codeintel", "jobs_per_instance_scaling": 4, "min_replicas": 1, "max_replicas": 5}]}"#,
        )
        .expect("valid");
        let pool = &config.executor_pools()[0];
        assert_eq!(
            (
                pool.desired(0),
                pool.desired(1),
                pool.desired(9),
                pool.desired(100)
            ),
            (1, 1, 3, 5)
        );
        let bad = SiteConfig::parse(
            r#"{"executors.pools": [{"queue": "codeintel", "jobs_per_instance_scaling": 0, "min_replicas": 3, "max_replicas": 2, "extra": 1}]}"#,
        )
        .expect_err("invalid")
        .messages();
        for expected in [
            "executors.pools[0].name: is required",
            "executors.pools[0].jobs_per_instance_scaling: invalid value 0",
            "executors.pools[0].min_replicas: must not exceed max_replicas",
            "executors.pools[0].extra: unknown key",
        ] {
            assert!(
                bad.iter().any(|m| m == expected),
                "{expected} missing from {bad:?}"
            );
        }
    }
}
