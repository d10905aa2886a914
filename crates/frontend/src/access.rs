//! Who may call. Every request is identified first (access token, session cookie, or nobody);
//! routes then require what they need: a signed-in user (or anyone, for read-only routes when
//! `auth.public` is on), or a site admin. Browser sessions must prove state-changing requests
//! with their CSRF token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quarry_auth::{
    Actor, AuthError, Credential, Presented, SESSION_COOKIE, parse_authorization, secret,
};

use crate::AppState;

/// The header a browser session sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An error as an HTTP response: a status and a one-line message.
pub fn auth_error_response(error: &AuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %error, "account operation failed");
    }
    let mut response = (status, format!("{error}\n")).into_response();
    if let AuthError::Throttled(seconds) = error
        && let Ok(value) = seconds.to_string().parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The value of a cookie in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn peer_address(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical().to_string())
}

/// What a request presents to prove who it is.
struct Presentation {
    authorization: Option<Presented>,
    session_cookie: Option<String>,
    address: Option<String>,
}

impl Presentation {
    fn of(request: &Request) -> Self {
        let headers = request.headers();
        Presentation {
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_authorization),
            session_cookie: cookie(headers, SESSION_COOKIE).map(str::to_string),
            address: peer_address(request),
        }
    }
}

async fn actor_of(state: &AppState, presented: Presentation) -> Result<Actor, AuthError> {
    let Presentation {
        authorization,
        session_cookie,
        address,
    } = presented;
    if let Some(presented) = authorization {
        let (token, user) = state.accounts.authenticate(&presented).await?;
        return Ok(Actor {
            user: Some(user),
            credential: Credential::AccessToken { id: token.id },
            address,
        });
    }
    if let Some(value) = session_cookie
        && let Some((session, user)) = state.accounts.session(&value).await?
    {
        return Ok(Actor {
            user: Some(user),
            credential: Credential::Session {
                id: session.id,
                csrf_token: session.csrf_token,
            },
            address,
        });
    }
    Ok(Actor::anonymous(address))
}

/// Identifies the caller of every request (an invalid or revoked token is refused at once) and
/// checks the CSRF token of state-changing requests made with a session cookie.
pub async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // Executors present the executors' shared secret or a job token, checked by their routes.
    if request.uri().path().starts_with("/.executors/") {
        return next.run(request).await;
    }
    let actor = match actor_of(&state, Presentation::of(&request)).await {
        Ok(actor) => actor,
        Err(e) => return auth_error_response(&e),
    };
    if let Credential::Session { csrf_token, .. } = &actor.credential {
        // GraphQL can carry mutations in a GET, so it is checked whatever the method.
        let path = request.uri().path();
        let changes_state = (!matches!(*request.method(), Method::GET | Method::HEAD)
            || path == "/.api/graphql")
            && !crate::sign_in::CREDENTIAL_ROUTES.contains(&path);
        if changes_state {
            let header = request
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let presented = match header {
                Some(token) => Some(token),
                None => match csrf_form_field(request).await {
                    Ok((read, token)) => {
                        request = read;
                        token
                    }
                    Err(response) => return response,
                },
            };
            if !presented.is_some_and(|p| secret::equal(&p, csrf_token)) {
                return (
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: send the session's token in the X-Csrf-Token header or the csrf_token form field\n",
                )
                    .into_response();
            }
        }
    }
    request.extensions_mut().insert(actor);
    next.run(request).await
}

/// The largest HTML form read for its CSRF token.
pub(crate) const MAX_FORM: usize = 64 * 1024;

/// The CSRF token of an HTML form post (`csrf_token`); the body is read, bounded, and put back
/// for the handler.
async fn csrf_form_field(request: Request) -> Result<(Request, Option<String>), Response> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large\n").into_response())?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == crate::web::CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        token,
    ))
}

/// The caller identified by [`identify`].
pub fn actor(request: &Request) -> Actor {
    request
        .extensions()
        .get::<Actor>()
        .cloned()
        .unwrap_or_else(|| Actor::anonymous(None))
}

/// Lets through signed-in users, and anyone when `auth.public` allows read-only access.
pub async fn signed_in_or_public(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let actor = actor(&request);
    if actor.user.is_some() || state.site.live().current().auth_public() {
        return next.run(request).await;
    }
    let mut response = auth_error_response(&AuthError::Unauthenticated);
    // git asks its credential helpers for a username and password (an access token) on this.
    if request.uri().path().starts_with("/.internal/git/")
        && let Ok(value) = r#"Basic realm="Quarry""#.parse()
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Lets through site admins only.
pub async fn site_admin_only(request: Request, next: Next) -> Response {
    match quarry_auth::require_site_admin(&actor(&request)) {
        Ok(()) => next.run(request).await,
        Err(e) => auth_error_response(&e),
    }
}
