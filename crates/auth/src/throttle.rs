//! Slowing down password guessing: failed sign-ins are counted per account and per network
//! address; past a threshold within the counting period, further attempts are refused until the
//! lockout period has passed (Sourcegraph's `auth.lockout`). Counts live in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quarry_config::Lockout;

/// An address may fail this many times the account threshold (it may serve many people).
const ADDRESS_THRESHOLD_FACTOR: u32 = 4;

/// Past this many tracked keys, expired ones are dropped before a new one is added.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first_at: Instant,
    locked_until: Option<Instant>,
}

/// Failed sign-in counts; shared by every request of the process.
#[derive(Debug, Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

fn keys(account: &str, address: Option<&str>) -> [Option<(String, u32)>; 2] {
    [
        Some((format!("account:{}", account.to_lowercase()), 1)),
        address.map(|a| (format!("address:{a}"), ADDRESS_THRESHOLD_FACTOR)),
    ]
}

impl SignInThrottle {
    /// `Err(wait)` when the account or the address is locked out.
    pub fn check(&self, account: &str, address: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys(account, address)
            .into_iter()
            .flatten()
            .filter_map(|(key, _)| failures.get(&key)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt; returns the lockout it started, if any.
    pub fn failed(
        &self,
        account: &str,
        address: Option<&str>,
        policy: Lockout,
    ) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > PRUNE_ABOVE {
            failures.retain(|_, f| {
                now.duration_since(f.first_at) < policy.consecutive_period
                    || f.locked_until.is_some_and(|until| until > now)
            });
        }
        let mut started = None;
        for (key, factor) in keys(account, address).into_iter().flatten() {
            let entry = failures.entry(key).or_insert(Failures {
                count: 0,
                first_at: now,
                locked_until: None,
            });
            let lock_over = entry.locked_until.is_some_and(|until| until <= now);
            if lock_over || now.duration_since(entry.first_at) > policy.consecutive_period {
                *entry = Failures {
                    count: 0,
                    first_at: now,
                    locked_until: None,
                };
            }
            entry.count += 1;
            if entry.count >= policy.failed_attempt_threshold.saturating_mul(factor) {
                entry.locked_until = Some(now + policy.lockout_period);
                started = Some(policy.lockout_period);
            }
        }
        started
    }

    /// A successful sign-in clears the account's count (never the address's).
    pub fn succeeded(&self, account: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&format!("account:{}", account.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Lockout = Lockout {
        failed_attempt_threshold: 3,
        consecutive_period: Duration::from_secs(3600),
        lockout_period: Duration::from_secs(1800),
    };

    #[test]
    fn an_account_is_locked_after_the_threshold() {
        let throttle = SignInThrottle::default();
        assert!(throttle.failed("Alice", Some("10.0.0.1"), POLICY).is_none());
        assert!(throttle.failed("alice", Some("10.0.0.2"), POLICY).is_none());
        assert!(throttle.check("alice", None).is_ok());
        assert!(throttle.failed("ALICE", Some("10.0.0.3"), POLICY).is_some());
        let wait = throttle.check("alice", Some("10.0.0.9")).unwrap_err();
        assert!(wait > Duration::from_secs(1700));
        assert!(throttle.check("bob", Some("10.0.0.9")).is_ok());
    }

    #[test]
    fn an_address_is_locked_after_spraying_many_accounts() {
        let throttle = SignInThrottle::default();
        for i in 0..12 {
            assert!(
                throttle
                    .check(&format!("user{i}"), Some("10.0.0.1"))
                    .is_ok()
            );
            throttle.failed(&format!("user{i}"), Some("10.0.0.1"), POLICY);
        }
        assert!(throttle.check("someone-else", Some("10.0.0.1")).is_err());
        assert!(throttle.check("someone-else", Some("10.0.0.2")).is_ok());
    }

    #[test]
    fn success_clears_the_account_count() {
        let throttle = SignInThrottle::default();
        throttle.failed("carol", None, POLICY);
        throttle.failed("carol", None, POLICY);
        throttle.succeeded("carol");
        throttle.failed("carol", None, POLICY);
        assert!(throttle.check("carol", None).is_ok());
    }
}
