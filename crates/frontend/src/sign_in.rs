//! Sign-in routes under `/-/` (Sourcegraph's paths): site initialisation, sign-up, sign-in with a
//! password or a one-time link, password reset, sign-out, and the current session.

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use quarry_auth::{AccountForm, Actor, AuthError, Credential, SESSION_COOKIE};
use quarry_store::{Session, User};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::access::{actor, auth_error_response};

/// Routes that take credentials rather than a session: a browser's existing session does not
/// have to prove them with its CSRF token; they check the request's origin instead.
pub const CREDENTIAL_ROUTES: &[&str] = &[
    "/-/sign-in",
    "/-/sign-up",
    "/-/site-init",
    "/-/reset-password",
    "/sign-in",
    "/sign-up",
    "/password-reset",
];

#[derive(Deserialize)]
pub struct NewAccount {
    username: String,
    email: String,
    password: String,
}

impl From<NewAccount> for AccountForm {
    fn from(form: NewAccount) -> Self {
        AccountForm {
            username: form.username,
            email: Some(form.email),
            password: Some(form.password),
        }
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    /// A username or an email address (Sourcegraph's form calls it `email`).
    #[serde(alias = "username")]
    email: String,
    password: String,
}

#[derive(Deserialize)]
pub struct LinkParams {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordReset {
    token: String,
    password: String,
}

/// Refuses a request whose `Origin` is another site's, so that no other page can sign a browser
/// in or up behind its user's back.
fn foreign_origin(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let external = state
        .site
        .live()
        .current()
        .external_url()
        .map(|u| u.trim_end_matches('/').to_string());
    let same_host = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host);
    if same_host || external.as_deref() == Some(origin) {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            format!("requests from {origin} may not sign in here\n"),
        )
            .into_response(),
    )
}

/// The caller and the form of a request to a credential route from this site.
pub(crate) async fn credential_form<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request,
) -> Result<(Actor, T), Response> {
    if let Some(refused) = foreign_origin(state, request.headers()) {
        return Err(refused);
    }
    let actor = actor(&request);
    Ok((actor, read_json(request).await?))
}

/// The session cookie for a token; `Secure` when users reach the instance over https.
fn session_cookie(state: &AppState, token: &str, max_age: u64) -> String {
    let secure = if state.site.live().current().served_over_https() {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// A `Set-Cookie` value that removes the session cookie.
pub(crate) fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

fn user_json(user: &User) -> serde_json::Value {
    json!({
        "id": crate::graphql::encode_id("User", user.id).to_string(),
        "username": user.username,
        "email": user.email,
        "siteAdmin": user.site_admin,
    })
}

/// Starts a session for a user and answers with it (cookie and CSRF token).
async fn signed_in(state: &AppState, user: &User, status: StatusCode) -> Response {
    let (cookie, session) = match start_session(state, user).await {
        Ok(started) => started,
        Err(response) => return response,
    };
    let body = json!({ "user": user_json(user), "csrfToken": session.csrf_token });
    (status, [(header::SET_COOKIE, cookie)], Json(body)).into_response()
}

/// Starts a session for a user: the `Set-Cookie` value that carries it, and the session.
pub(crate) async fn start_session(
    state: &AppState,
    user: &User,
) -> Result<(String, Session), Response> {
    let (token, session) = state
        .accounts
        .start_session(user)
        .await
        .map_err(|e| auth_error_response(&e))?;
    let max_age = state.site.live().current().session_expiry().as_secs();
    Ok((session_cookie(state, &token, max_age), session))
}

/// A JSON body, or an HTML form's fields.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request,
) -> Result<T, Response> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let refused = |status: StatusCode, text: String| (status, format!("{text}\n")).into_response();
    if is_form {
        return match <Form<T> as FromRequest<()>>::from_request(request, &()).await {
            Ok(Form(value)) => Ok(value),
            Err(rejection) => Err(refused(rejection.status(), rejection.body_text())),
        };
    }
    match <Json<T> as FromRequest<()>>::from_request(request, &()).await {
        Ok(Json(value)) => Ok(value),
        Err(rejection) => Err(refused(rejection.status(), rejection.body_text())),
    }
}

/// `POST /-/site-init`: creates the first account, a site admin, and signs it in.
pub async fn site_init(State(state): State<AppState>, request: Request) -> Response {
    let (actor, form): (Actor, NewAccount) = match credential_form(&state, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match state.accounts.site_init(form.into(), &actor).await {
        Ok(user) => signed_in(&state, &user, StatusCode::CREATED).await,
        Err(e) => auth_error_response(&e),
    }
}

/// `POST /-/sign-up`: creates an account when sign-up is allowed, and signs it in.
pub async fn sign_up(State(state): State<AppState>, request: Request) -> Response {
    let (actor, form): (Actor, NewAccount) = match credential_form(&state, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match state.accounts.sign_up(form.into(), &actor).await {
        Ok(user) => signed_in(&state, &user, StatusCode::CREATED).await,
        Err(e) => auth_error_response(&e),
    }
}

/// `POST /-/sign-in`: a username (or email) and password.
pub async fn sign_in(State(state): State<AppState>, request: Request) -> Response {
    let (actor, credentials): (Actor, Credentials) = match credential_form(&state, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match state
        .accounts
        .sign_in(&credentials.email, &credentials.password, &actor)
        .await
    {
        Ok(user) => signed_in(&state, &user, StatusCode::OK).await,
        Err(e) => auth_error_response(&e),
    }
}

/// `GET /-/sign-in/link?token=...`: a one-time link (such as the one `quarry serve` prints);
/// signs in and goes to the home page.
pub async fn sign_in_link(
    State(state): State<AppState>,
    Query(params): Query<LinkParams>,
    request: Request,
) -> Response {
    let Some(token) = params.token.filter(|t| !t.is_empty()) else {
        return auth_error_response(&AuthError::InvalidLink);
    };
    let user = match state
        .accounts
        .use_sign_in_link(&token, &actor(&request))
        .await
    {
        Ok(user) => user,
        Err(e) => return auth_error_response(&e),
    };
    match start_session(&state, &user).await {
        Ok((cookie, _)) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_string()),
                (header::REFERRER_POLICY, "no-referrer".to_string()),
            ],
        )
            .into_response(),
        Err(response) => response,
    }
}

/// `POST /-/reset-password`: sets a new password with a reset link's token and signs in.
pub async fn reset_password(State(state): State<AppState>, request: Request) -> Response {
    let (actor, reset): (Actor, PasswordReset) = match credential_form(&state, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match state
        .accounts
        .reset_password(&reset.token, &reset.password, &actor)
        .await
    {
        Ok(user) => signed_in(&state, &user, StatusCode::OK).await,
        Err(e) => auth_error_response(&e),
    }
}

/// `POST /-/sign-out`: ends the caller's session.
pub async fn sign_out(State(state): State<AppState>, request: Request) -> Response {
    let actor = actor(&request);
    if let Err(e) = state.accounts.end_session(&actor).await {
        return auth_error_response(&e);
    }
    (
        StatusCode::OK,
        [(header::SET_COOKIE, cleared_session_cookie())],
        "signed out\n",
    )
        .into_response()
}

/// `GET /-/session`: who the caller is and, for a browser session, its CSRF token.
pub async fn current_session(request: Request) -> Response {
    let actor = actor(&request);
    let Some(user) = &actor.user else {
        return auth_error_response(&AuthError::Unauthenticated);
    };
    let csrf = match &actor.credential {
        Credential::Session { csrf_token, .. } => Some(csrf_token.clone()),
        _ => None,
    };
    Json(json!({ "user": user_json(user), "csrfToken": csrf })).into_response()
}
