//! The accounts service: sign-up, sign-in, sessions, access tokens, one-time links, user
//! administration and the audit trail of each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_config::LiveSiteConfig;
use quarry_store::{AccessToken, LinkPurpose, NewAuditEntry, NewUser, Session, Store, User, now};
use serde_json::json;

use crate::actor::{Actor, Credential, Presented, SCOPE_SITE_ADMIN_SUDO, SCOPE_USER_ALL};
use crate::throttle::SignInThrottle;
use crate::{AuthError, password, secret};

/// How long a one-time sign-in or password reset link stays valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A session's `last_active_at` is written at most this often, not on every request.
const SESSION_TOUCH_INTERVAL: i64 = 60;

/// How long a proven access token is trusted without asking the store again. A change made by
/// this process (a token revoked, a user demoted or deleted) takes effect at once; one made by
/// another process, within this time.
const PROVEN_TOKEN_TTL: Duration = Duration::from_secs(1);
/// At most this many proven tokens are remembered; beyond it they are all forgotten.
const MAX_PROVEN_TOKENS: usize = 4096;

/// Access tokens recently proven, by digest, with their record and owner: a burst of API calls
/// (a search typed letter by letter, a script) costs one store lookup per token and second, not
/// one per call.
#[derive(Default)]
struct ProvenTokens {
    by_digest: Mutex<HashMap<String, (Instant, AccessToken, User)>>,
}

impl ProvenTokens {
    fn get(&self, digest: &str) -> Option<(AccessToken, User)> {
        let proven = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        proven
            .get(digest)
            .filter(|(at, _, _)| at.elapsed() < PROVEN_TOKEN_TTL)
            .map(|(_, token, user)| (token.clone(), user.clone()))
    }

    fn insert(&self, digest: String, token: AccessToken, user: User) {
        let mut proven = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        if proven.len() >= MAX_PROVEN_TOKENS {
            proven.clear();
        }
        proven.insert(digest, (Instant::now(), token, user));
    }

    fn forget_all(&self) {
        self.by_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// What a new account is made of.
#[derive(Debug, Clone)]
pub struct AccountForm {
    pub username: String,
    pub email: Option<String>,
    pub password: Option<String>,
}

/// Accounts and their credentials. Cheap to clone; clones share the sign-in throttle and the
/// tokens recently proven.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    config: LiveSiteConfig,
    throttle: Arc<SignInThrottle>,
    proven_tokens: Arc<ProvenTokens>,
}

/// Usernames as Sourcegraph allows them: letters, digits, `-`, `_` and `.`, starting and ending
/// with a letter or digit.
fn check_username(username: &str) -> Result<(), AuthError> {
    let valid_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let edges_ok = username.starts_with(|c: char| c.is_ascii_alphanumeric())
        && username.ends_with(|c: char| c.is_ascii_alphanumeric());
    if username.is_empty() || username.len() > 255 || !valid_chars || !edges_ok {
        return Err(AuthError::Invalid(
            "username: use 1-255 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into(),
        ));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), AuthError> {
    let valid = email.len() <= 320
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
        && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(AuthError::Invalid(format!(
            "email: {email:?} is not an email address"
        )));
    }
    Ok(())
}

impl Accounts {
    pub fn new(store: Store, config: LiveSiteConfig) -> Self {
        Accounts {
            store,
            config,
            throttle: Arc::new(SignInThrottle::default()),
            proven_tokens: Arc::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records a security event. A failure to record is logged, never shown to the caller.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        subject: &str,
        details: serde_json::Value,
    ) {
        let entry = NewAuditEntry {
            actor_user_id: actor.user_id(),
            actor: actor.name(),
            action,
            subject,
            address: actor.address.as_deref(),
            details: details.to_string(),
        };
        if let Err(e) = self.store.append_audit(entry).await {
            tracing::error!(error = %e, action, "cannot write to the audit log");
        }
    }

    async fn create(&self, form: &AccountForm, only_if_first: bool) -> Result<User, AuthError> {
        check_username(&form.username)?;
        if let Some(email) = &form.email {
            check_email(email)?;
        }
        let hash = match &form.password {
            Some(plain) => {
                password::check_policy(plain, self.config.current().min_password_length())?;
                Some(password::hash(plain).await?)
            }
            None => None,
        };
        let user = self
            .store
            .create_user(
                NewUser {
                    username: &form.username,
                    email: form.email.as_deref(),
                    password_hash: hash.as_deref(),
                },
                only_if_first,
            )
            .await?;
        Ok(user)
    }

    /// Creates the first account, a site admin; refused once any account exists.
    pub async fn site_init(&self, form: AccountForm, caller: &Actor) -> Result<User, AuthError> {
        self.register(form, true, "site.initialized", caller).await
    }

    /// Whether the builtin provider lets people create their own accounts.
    pub fn signup_allowed(&self) -> bool {
        self.config
            .current()
            .builtin_auth()
            .is_some_and(|b| b.allow_signup)
    }

    /// Self-service sign-up, when the builtin provider allows it.
    pub async fn sign_up(&self, form: AccountForm, caller: &Actor) -> Result<User, AuthError> {
        if !self.signup_allowed() {
            return Err(AuthError::SignupDisabled);
        }
        self.register(form, false, "user.signed_up", caller).await
    }

    /// Creates an account from a complete form and audits it as done by the new user.
    async fn register(
        &self,
        form: AccountForm,
        only_if_first: bool,
        action: &str,
        caller: &Actor,
    ) -> Result<User, AuthError> {
        if form.email.is_none() || form.password.is_none() {
            return Err(AuthError::Invalid(
                "username, email and password are required".into(),
            ));
        }
        let user = self.create(&form, only_if_first).await?;
        let actor = Actor {
            user: Some(user.clone()),
            ..caller.clone()
        };
        self.audit(&actor, action, &user.username, json!({})).await;
        Ok(user)
    }

    /// A site admin creates an account (without a password: the returned reset link sets it).
    pub async fn create_user_by_admin(
        &self,
        admin: &Actor,
        username: &str,
        email: Option<&str>,
    ) -> Result<(User, String), AuthError> {
        require_site_admin(admin)?;
        let form = AccountForm {
            username: username.to_string(),
            email: email.map(str::to_string),
            password: None,
        };
        let user = self.create(&form, false).await?;
        self.audit(admin, "user.created", &user.username, json!({}))
            .await;
        let link = self
            .new_link(LinkPurpose::ResetPassword, Some(user.id))
            .await?;
        Ok((user, link))
    }

    /// Checks a username (or email) and password. Attempts are throttled per account and per
    /// address; every outcome is audited.
    pub async fn sign_in(
        &self,
        name: &str,
        plain_password: &str,
        caller: &Actor,
    ) -> Result<User, AuthError> {
        let config = self.config.current();
        if config.builtin_auth().is_none() {
            return Err(AuthError::BuiltinDisabled);
        }
        let address = caller.address.as_deref();
        if let Err(wait) = self.throttle.check(name, address) {
            self.audit(caller, "sign_in.throttled", name, json!({}))
                .await;
            return Err(AuthError::Throttled(wait.as_secs().max(1)));
        }
        if plain_password.chars().count() > password::MAX_PASSWORD_LENGTH {
            return Err(AuthError::BadCredentials);
        }
        let found = self.store.user_for_sign_in(name).await?;
        let stored_hash = found.as_ref().and_then(|(_, hash)| hash.as_deref());
        let matches = password::verify(plain_password, stored_hash).await;
        match found {
            Some((user, _)) if matches => {
                self.throttle.succeeded(name);
                let actor = Actor {
                    user: Some(user.clone()),
                    ..caller.clone()
                };
                self.audit(&actor, "sign_in.succeeded", &user.username, json!({}))
                    .await;
                Ok(user)
            }
            _ => {
                let locked = self.throttle.failed(name, address, config.lockout());
                self.audit(
                    caller,
                    "sign_in.failed",
                    name,
                    json!({ "locked": locked.is_some() }),
                )
                .await;
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// Starts a session; returns the cookie value (shown once, stored as a digest) and the session.
    pub async fn start_session(&self, user: &User) -> Result<(String, Session), AuthError> {
        let token = secret::random_hex(32)?;
        let csrf = secret::random_hex(32)?;
        let session = self
            .store
            .create_session(user.id, &secret::digest(&token), &csrf)
            .await?;
        Ok((token, session))
    }

    /// The session and user behind a cookie value, if the session exists and has expired neither
    /// by idleness nor by age.
    pub async fn session(&self, token: &str) -> Result<Option<(Session, User)>, AuthError> {
        let Some((session, user)) = self.store.session_by_token(&secret::digest(token)).await?
        else {
            return Ok(None);
        };
        let config = self.config.current();
        let at = now();
        let idle = config.session_idle_timeout().as_secs() as i64;
        let lifetime = config.session_expiry().as_secs() as i64;
        if at - session.last_active_at > idle || at - session.created_at > lifetime {
            self.store.delete_session(session.id).await?;
            return Ok(None);
        }
        if at - session.last_active_at >= SESSION_TOUCH_INTERVAL {
            self.store.touch_session(session.id, at).await?;
        }
        Ok(Some((session, user)))
    }

    /// Removes every session past its idle or absolute expiry; returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64, AuthError> {
        let config = self.config.current();
        let at = now();
        let idle_before = at - config.session_idle_timeout().as_secs() as i64;
        let started_before = at - config.session_expiry().as_secs() as i64;
        Ok(self
            .store
            .delete_expired_sessions(idle_before, started_before)
            .await?)
    }

    /// Removes expired sessions every `interval` until `stop` is cancelled (sessions are also
    /// refused when presented after expiry; this keeps the table from growing).
    pub async fn expire_sessions(
        self,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            match self.delete_expired_sessions().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Ends the caller's session (sign-out).
    pub async fn end_session(&self, actor: &Actor) -> Result<(), AuthError> {
        if let Credential::Session { id, .. } = &actor.credential {
            self.store.delete_session(*id).await?;
            self.audit(actor, "sign_out", actor.name(), json!({})).await;
        }
        Ok(())
    }

    /// Ends every session of a user: the user themself or a site admin.
    pub async fn revoke_sessions(&self, actor: &Actor, user_id: i64) -> Result<u64, AuthError> {
        require_self_or_admin(actor, user_id)?;
        let user = self.existing_user(user_id).await?;
        let ended = self.store.delete_sessions_of(user_id).await?;
        self.audit(
            actor,
            "sessions.revoked",
            &user.username,
            json!({ "sessions": ended }),
        )
        .await;
        Ok(ended)
    }

    /// The user an `Authorization` header proves, or `InvalidToken`. A sudo token must belong to
    /// a site admin and carry `site-admin:sudo`.
    pub async fn authenticate(
        &self,
        presented: &Presented,
    ) -> Result<(AccessToken, User), AuthError> {
        let token = match presented {
            Presented::Token(token) | Presented::Sudo { token, .. } => token,
        };
        let digest = secret::digest(token);
        let (record, owner) = match self.proven_tokens.get(&digest) {
            Some(proven) => proven,
            None => {
                let (mut record, owner) = self
                    .store
                    .access_token_by_digest(&digest)
                    .await?
                    .ok_or(AuthError::InvalidToken)?;
                let at = now();
                if record
                    .last_used_at
                    .is_none_or(|last| at - last >= SESSION_TOUCH_INTERVAL)
                {
                    self.store.touch_access_token(record.id, at).await?;
                    record.last_used_at = Some(at);
                }
                self.proven_tokens
                    .insert(digest, record.clone(), owner.clone());
                (record, owner)
            }
        };
        let Presented::Sudo { user: target, .. } = presented else {
            return Ok((record, owner));
        };
        if !owner.site_admin || !record.scopes.iter().any(|s| s == SCOPE_SITE_ADMIN_SUDO) {
            return Err(AuthError::Forbidden(
                "token-sudo needs a site admin's token with the site-admin:sudo scope".into(),
            ));
        }
        let (user, _) = self
            .store
            .user_for_sign_in(target)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {target:?}")))?;
        Ok((record, user))
    }

    /// Creates an access token for a user (the user themself, or a site admin for anyone);
    /// returns its record and the token, which is never shown again.
    pub async fn create_access_token(
        &self,
        actor: &Actor,
        user_id: i64,
        scopes: &[String],
        note: &str,
    ) -> Result<(AccessToken, String), AuthError> {
        require_self_or_admin(actor, user_id)?;
        let owner = self.existing_user(user_id).await?;
        if !scopes.iter().any(|s| s == SCOPE_USER_ALL) {
            return Err(AuthError::Invalid(format!(
                "scopes: must include {SCOPE_USER_ALL}"
            )));
        }
        for scope in scopes {
            match scope.as_str() {
                SCOPE_USER_ALL => {}
                SCOPE_SITE_ADMIN_SUDO if owner.site_admin => {}
                SCOPE_SITE_ADMIN_SUDO => {
                    return Err(AuthError::Invalid(format!(
                        "scopes: {SCOPE_SITE_ADMIN_SUDO} is only for site admins"
                    )));
                }
                other => {
                    return Err(AuthError::Invalid(format!(
                        "scopes: unknown scope {other:?} (use {SCOPE_USER_ALL} or {SCOPE_SITE_ADMIN_SUDO})"
                    )));
                }
            }
        }
        if note.trim().is_empty() || note.len() > 1000 {
            return Err(AuthError::Invalid(
                "note: must say what the token is for (1-1000 characters)".into(),
            ));
        }
        let token = secret::new_access_token()?;
        let record = self
            .store
            .create_access_token(user_id, &secret::digest(&token), note, scopes)
            .await?;
        self.audit(
            actor,
            "access_token.created",
            &owner.username,
            json!({ "tokenId": record.id, "scopes": scopes, "note": note }),
        )
        .await;
        Ok((record, token))
    }

    /// Revokes a token by its id (its user or a site admin).
    pub async fn delete_access_token(&self, actor: &Actor, token_id: i64) -> Result<(), AuthError> {
        let record = self
            .store
            .access_token_by_id(token_id)
            .await?
            .ok_or_else(|| AuthError::NotFound("access token".into()))?;
        if require_self_or_admin(actor, record.user_id).is_err() {
            // Someone else's token is as good as absent: its existence is not revealed.
            return Err(AuthError::NotFound("access token".into()));
        }
        self.store.delete_access_token(token_id).await?;
        self.proven_tokens.forget_all();
        let owner = self.existing_user(record.user_id).await?;
        self.audit(
            actor,
            "access_token.revoked",
            &owner.username,
            json!({ "tokenId": token_id }),
        )
        .await;
        Ok(())
    }

    /// Revokes a token given the token itself.
    pub async fn delete_access_token_by_value(
        &self,
        actor: &Actor,
        token: &str,
    ) -> Result<(), AuthError> {
        let (record, _) = self
            .store
            .access_token_by_digest(&secret::digest(token))
            .await?
            .ok_or_else(|| AuthError::NotFound("access token".into()))?;
        self.delete_access_token(actor, record.id).await
    }

    async fn new_link(
        &self,
        purpose: LinkPurpose,
        user_id: Option<i64>,
    ) -> Result<String, AuthError> {
        let token = secret::random_hex(32)?;
        self.store
            .create_one_time_link(
                &secret::digest(&token),
                purpose,
                user_id,
                now() + LINK_LIFETIME.as_secs() as i64,
            )
            .await?;
        Ok(token)
    }

    /// A one-time sign-in link token for the first site admin; when no account exists yet, the
    /// link creates the site admin `admin` unless the site was initialised before it is used.
    pub async fn site_admin_sign_in_link(&self) -> Result<String, AuthError> {
        let admin = self.store.first_site_admin().await?;
        self.new_link(LinkPurpose::SignIn, admin.map(|a| a.id))
            .await
    }

    /// Uses a one-time sign-in link: it works once, within its lifetime.
    pub async fn use_sign_in_link(&self, token: &str, caller: &Actor) -> Result<User, AuthError> {
        let user_id = self
            .store
            .take_one_time_link(&secret::digest(token), LinkPurpose::SignIn, now())
            .await?
            .ok_or(AuthError::InvalidLink)?;
        let user = match user_id {
            Some(id) => self.existing_user(id).await?,
            // A link printed before any account existed: the first site admin, made if need be.
            None => match self.store.first_site_admin().await? {
                Some(admin) => admin,
                None => {
                    let form = AccountForm {
                        username: "admin".into(),
                        email: None,
                        password: None,
                    };
                    match self.create(&form, true).await {
                        Ok(admin) => admin,
                        // Someone initialised the site meanwhile.
                        Err(AuthError::Conflict(_)) => self
                            .store
                            .first_site_admin()
                            .await?
                            .ok_or(AuthError::InvalidLink)?,
                        Err(e) => return Err(e),
                    }
                }
            },
        };
        let actor = Actor {
            user: Some(user.clone()),
            ..caller.clone()
        };
        self.audit(&actor, "sign_in.link_used", &user.username, json!({}))
            .await;
        Ok(user)
    }

    /// A site admin creates a password reset link token for a user.
    pub async fn password_reset_link(
        &self,
        admin: &Actor,
        user_id: i64,
    ) -> Result<String, AuthError> {
        require_site_admin(admin)?;
        let user = self.existing_user(user_id).await?;
        let token = self
            .new_link(LinkPurpose::ResetPassword, Some(user_id))
            .await?;
        self.audit(
            admin,
            "password_reset.link_created",
            &user.username,
            json!({}),
        )
        .await;
        Ok(token)
    }

    /// Sets a new password through a reset link; every session of the user ends.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        caller: &Actor,
    ) -> Result<User, AuthError> {
        password::check_policy(new_password, self.config.current().min_password_length())?;
        let user_id = self
            .store
            .take_one_time_link(&secret::digest(token), LinkPurpose::ResetPassword, now())
            .await?
            .flatten()
            .ok_or(AuthError::InvalidLink)?;
        let hash = password::hash(new_password).await?;
        self.store.set_password_hash(user_id, &hash).await?;
        let user = self.existing_user(user_id).await?;
        let actor = Actor {
            user: Some(user.clone()),
            ..caller.clone()
        };
        self.audit(&actor, "password.reset", &user.username, json!({}))
            .await;
        Ok(user)
    }

    /// Promotes or demotes a site admin; the last one cannot be demoted.
    pub async fn set_site_admin(
        &self,
        admin: &Actor,
        user_id: i64,
        site_admin: bool,
    ) -> Result<(), AuthError> {
        require_site_admin(admin)?;
        let user = self.existing_user(user_id).await?;
        self.store.set_site_admin(user_id, site_admin).await?;
        self.proven_tokens.forget_all();
        let action = if site_admin {
            "user.promoted"
        } else {
            "user.demoted"
        };
        self.audit(admin, action, &user.username, json!({})).await;
        Ok(())
    }

    /// Deletes an account; the last site admin cannot be deleted.
    pub async fn delete_user(&self, admin: &Actor, user_id: i64) -> Result<(), AuthError> {
        require_site_admin(admin)?;
        let deleted = self.store.delete_user(user_id).await?;
        self.proven_tokens.forget_all();
        self.audit(admin, "user.deleted", &deleted.username, json!({}))
            .await;
        Ok(())
    }

    /// The account of a username (or email).
    pub async fn user_named(&self, name: &str) -> Result<User, AuthError> {
        self.store
            .user_for_sign_in(name)
            .await?
            .map(|(user, _)| user)
            .ok_or_else(|| AuthError::NotFound(format!("user {name:?}")))
    }

    async fn existing_user(&self, user_id: i64) -> Result<User, AuthError> {
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AuthError::NotFound("user".into()))
    }
}

/// Refuses anyone but a site admin.
pub fn require_site_admin(actor: &Actor) -> Result<(), AuthError> {
    if actor.is_site_admin() {
        return Ok(());
    }
    match &actor.user {
        Some(user) if user.site_admin => Ok(()),
        Some(_) => Err(AuthError::Forbidden("must be a site admin".into())),
        None => Err(AuthError::Unauthenticated),
    }
}

/// Refuses anyone but the user themself or a site admin.
pub fn require_self_or_admin(actor: &Actor, user_id: i64) -> Result<(), AuthError> {
    if actor.is_site_admin() {
        return Ok(());
    }
    match &actor.user {
        Some(user) if user.site_admin || user.id == user_id => Ok(()),
        Some(_) => Err(AuthError::Forbidden(
            "must be the user or a site admin".into(),
        )),
        None => Err(AuthError::Unauthenticated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("a.l-i_ce9").is_ok());
        for bad in ["", "-alice", "alice.", "al ice", "al/ice", "äl"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
        assert!(check_email("a@example.com").is_ok());
        for bad in ["a", "@example.com", "a@b", "a b@example.com", "a@b@c.com"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
