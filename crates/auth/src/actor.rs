//! Who is calling: the account behind a request (if any) and the credential it presented.

use quarry_store::{User, Viewer};

/// The scope every access token carries: act as its user through every API.
pub const SCOPE_USER_ALL: &str = "user:all";
/// The scope that lets a site admin's token act as another user (`token-sudo`).
pub const SCOPE_SITE_ADMIN_SUDO: &str = "site-admin:sudo";

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Nothing: an anonymous caller.
    None,
    /// A browser session cookie; state-changing requests must also carry its CSRF token.
    Session { id: i64, csrf_token: String },
    /// An access token (`Authorization: token ...`).
    AccessToken { id: i64 },
    /// Whoever runs `quarry admin` against the instance's database: they hold its keys already.
    Operator,
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: Option<User>,
    pub credential: Credential,
    /// The caller's network address, for throttling and the audit log.
    pub address: Option<String>,
}

impl Actor {
    pub fn anonymous(address: Option<String>) -> Actor {
        Actor {
            user: None,
            credential: Credential::None,
            address,
        }
    }

    /// The operator of the instance, acting from its command line.
    pub fn operator() -> Actor {
        Actor {
            user: None,
            credential: Credential::Operator,
            address: None,
        }
    }

    pub fn is_site_admin(&self) -> bool {
        self.credential == Credential::Operator || self.user.as_ref().is_some_and(|u| u.site_admin)
    }

    pub fn user_id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }

    /// The name the audit log records.
    pub fn name(&self) -> &str {
        match (&self.user, &self.credential) {
            (Some(user), _) => user.username.as_str(),
            (None, Credential::Operator) => "operator (command line)",
            (None, _) => "anonymous",
        }
    }

    /// Which repositories this caller may see.
    pub fn viewer(&self) -> Viewer {
        if self.credential == Credential::Operator {
            return Viewer::All;
        }
        match &self.user {
            Some(user) if user.site_admin => Viewer::All,
            Some(user) => Viewer::User(user.id),
            None => Viewer::Anonymous,
        }
    }
}

/// A credential as presented in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// `token <t>` or `Bearer <t>`.
    Token(String),
    /// `token-sudo user="<name>",token="<t>"`: a site admin's token acting as another user.
    Sudo { user: String, token: String },
}

/// Reads an `Authorization` header value; `None` when it is not one of Quarry's user schemes
/// (executors' `token-executor` is not). Basic credentials (what git sends) carry the token as
/// the password.
pub fn parse_authorization(value: &str) -> Option<Presented> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "token" | "bearer" if !rest.is_empty() => Some(Presented::Token(rest.to_string())),
        "token-sudo" => {
            let mut user = None;
            let mut token = None;
            for part in rest.split(',') {
                let (key, quoted) = part.trim().split_once('=')?;
                let unquoted = quoted.trim().strip_prefix('"')?.strip_suffix('"')?;
                match key.trim() {
                    "user" => user = Some(unquoted.to_string()),
                    "token" => token = Some(unquoted.to_string()),
                    _ => return None,
                }
            }
            Some(Presented::Sudo {
                user: user?,
                token: token?,
            })
        }
        "basic" => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, password) = text.split_once(':')?;
            (!password.is_empty()).then(|| Presented::Token(password.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_schemes() {
        assert_eq!(
            parse_authorization("token sgp_abc"),
            Some(Presented::Token("sgp_abc".into()))
        );
        assert_eq!(
            parse_authorization("Bearer sgp_abc"),
            Some(Presented::Token("sgp_abc".into()))
        );
        assert_eq!(
            parse_authorization(r#"token-sudo user="bob",token="sgp_x""#),
            Some(Presented::Sudo {
                user: "bob".into(),
                token: "sgp_x".into()
            })
        );
        // "git:sgp_abc"
        assert_eq!(
            parse_authorization("Basic Z2l0OnNncF9hYmM="),
            Some(Presented::Token("sgp_abc".into()))
        );
        assert_eq!(parse_authorization("token-executor s3cret"), None);
        assert_eq!(parse_authorization("token "), None);
        assert_eq!(parse_authorization(r#"token-sudo user="bob""#), None);
    }
}
