//! Pages for accounts, at Sourcegraph's URLs: sign-in, sign-up, password reset, the home page,
//! and a user's access tokens (`/users/<name>/settings/tokens`). Forms post back to the page, with
//! the session's CSRF token as a field.

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use quarry_auth::{AccountForm, Actor, AuthError, SCOPE_SITE_ADMIN_SUDO, SCOPE_USER_ALL};
use quarry_store::{AccessToken, User};
use serde::Deserialize;

use super::{csrf_field, error_page, local_path, page, render, sign_in_first};
use crate::AppState;
use crate::access::actor;
use crate::graphql::rfc3339;
use crate::sign_in::{credential_form, start_session};

/// After a form that signs someone in: the session and a redirect on success, else the form
/// again with the error, under the status the error calls for.
async fn signed_in_or_form(
    state: &AppState,
    outcome: Result<User, AuthError>,
    to: &str,
    form_again: impl FnOnce(&str) -> Markup,
) -> Response {
    let user = match outcome {
        Ok(user) => user,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return render(status, form_again(&e.to_string()));
        }
    };
    match start_session(state, &user).await {
        Ok((cookie, _)) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, to.to_string()),
            ],
        )
            .into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize, Default)]
pub struct ReturnTo {
    #[serde(rename = "returnTo")]
    return_to: Option<String>,
}

/// `GET /`: who is signed in and where to go next.
pub async fn home(State(state): State<AppState>, request: Request) -> Response {
    let actor = actor(&request);
    let Some(user) = &actor.user else {
        return sign_in_first(request.uri());
    };
    let repositories = state
        .store
        .count_repos(&quarry_store::RepoFilter {
            viewer: actor.viewer(),
            ..Default::default()
        })
        .await
        .unwrap_or(0);
    render(
        StatusCode::OK,
        page(
            "Home",
            &actor,
            html! {
                h1 { "Quarry" }
                (super::search::search_form(""))
                p { "Signed in as " strong { (user.username) } @if user.site_admin { " (site admin)" } "." }
                p { (repositories) @if repositories == 1 { " repository is" } @else { " repositories are" }
                    " searchable through " code { "/.api/search/stream" } " and "
                    code { "quarry search" } "." }
                p { a href={ "/users/" (user.username) "/settings/tokens" } { "Access tokens" } }
            },
        ),
    )
}

fn sign_in_form(actor: &Actor, return_to: &str, error: Option<&str>, allow_signup: bool) -> Markup {
    page(
        "Sign in",
        actor,
        html! {
            h1 { "Sign in to Quarry" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/sign-in" {
                input type="hidden" name="returnTo" value=(return_to);
                label for="email" { "Username or email" }
                input #email type="text" name="email" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            @if allow_signup { p { "No account? " a href="/sign-up" { "Sign up" } } }
        },
    )
}

/// `GET /sign-in`.
pub async fn sign_in_page(
    State(state): State<AppState>,
    Query(params): Query<ReturnTo>,
    request: Request,
) -> Response {
    let return_to = local_path(params.return_to.as_deref());
    let form = sign_in_form(
        &actor(&request),
        return_to,
        None,
        state.accounts.signup_allowed(),
    );
    render(StatusCode::OK, form)
}

#[derive(Deserialize)]
pub struct SignInFields {
    email: String,
    password: String,
    #[serde(rename = "returnTo")]
    return_to: Option<String>,
}

/// `POST /sign-in`: the form's fields; back to where the visitor came from.
pub async fn sign_in_submit(State(state): State<AppState>, request: Request) -> Response {
    let (actor, fields): (Actor, SignInFields) = match credential_form(&state, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let return_to = local_path(fields.return_to.as_deref());
    let outcome = state
        .accounts
        .sign_in(&fields.email, &fields.password, &actor)
        .await;
    signed_in_or_form(&state, outcome, return_to, |error| {
        sign_in_form(
            &actor,
            return_to,
            Some(error),
            state.accounts.signup_allowed(),
        )
    })
    .await
}

fn sign_up_form(actor: &Actor, error: Option<&str>) -> Markup {
    page(
        "Sign up",
        actor,
        html! {
            h1 { "Create an account" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/sign-up" {
                label for="username" { "Username" }
                input #username type="text" name="username" autocomplete="username" required autofocus;
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="email" required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="new-password" required;
                button type="submit" { "Sign up" }
            }
            p { "Have an account? " a href="/sign-in" { "Sign in" } }
        },
    )
}

/// `GET /sign-up`: the form, or why there is none.
pub async fn sign_up_page(State(state): State<AppState>, request: Request) -> Response {
    let actor = actor(&request);
    if !state.accounts.signup_allowed() {
        return error_page(&actor, &AuthError::SignupDisabled);
    }
    render(StatusCode::OK, sign_up_form(&actor, None))
}

#[derive(Deserialize)]
pub struct SignUpFields {
    username: String,
    email: String,
    password: String,
}

/// `POST /sign-up`.
pub async fn sign_up_submit(State(state): State<AppState>, request: Request) -> Response {
    let (actor, fields): (Actor, SignUpFields) = match credential_form(&state, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let form = AccountForm {
        username: fields.username,
        email: Some(fields.email),
        password: Some(fields.password),
    };
    let outcome = state.accounts.sign_up(form, &actor).await;
    signed_in_or_form(&state, outcome, "/", |error| {
        sign_up_form(&actor, Some(error))
    })
    .await
}

/// `POST /sign-out`: ends the session and goes to the sign-in page.
pub async fn sign_out_submit(State(state): State<AppState>, request: Request) -> Response {
    let actor = actor(&request);
    if let Err(e) = state.accounts.end_session(&actor).await {
        return error_page(&actor, &e);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, crate::sign_in::cleared_session_cookie()),
            (header::LOCATION, "/sign-in".to_string()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LinkToken {
    token: Option<String>,
}

/// `GET /password-reset?token=...`: the form a reset link opens.
pub async fn password_reset_page(Query(params): Query<LinkToken>, request: Request) -> Response {
    let token = params.token.unwrap_or_default();
    render(
        StatusCode::OK,
        password_reset_form(&actor(&request), &token, None),
    )
}

fn password_reset_form(actor: &Actor, token: &str, error: Option<&str>) -> Markup {
    page(
        "Set a password",
        actor,
        html! {
            h1 { "Set a password" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/password-reset" {
                input type="hidden" name="token" value=(token);
                label for="password" { "New password" }
                input #password type="password" name="password" autocomplete="new-password" required;
                button type="submit" { "Set password" }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct PasswordResetFields {
    token: String,
    password: String,
}

/// `POST /password-reset`: sets the password and signs in.
pub async fn password_reset_submit(State(state): State<AppState>, request: Request) -> Response {
    let (actor, fields): (Actor, PasswordResetFields) = match credential_form(&state, request).await
    {
        Ok(read) => read,
        Err(response) => return response,
    };
    let outcome = state
        .accounts
        .reset_password(&fields.token, &fields.password, &actor)
        .await;
    signed_in_or_form(&state, outcome, "/", |error| {
        password_reset_form(&actor, &fields.token, Some(error))
    })
    .await
}

/// The user whose settings a page shows, if the caller may see them (themself or a site admin;
/// to anyone else the user is as absent as one that does not exist).
async fn settings_owner(
    state: &AppState,
    actor: &Actor,
    username: &str,
) -> Result<User, AuthError> {
    let user = state.accounts.user_named(username).await?;
    quarry_auth::require_self_or_admin(actor, user.id)
        .map_err(|_| AuthError::NotFound(format!("user {username:?}")))?;
    Ok(user)
}

/// What the tokens page shows besides the list: a token just created, or an error.
enum TokensNotice {
    None,
    Created(String),
    Error(String),
}

async fn tokens_page(
    state: &AppState,
    actor: &Actor,
    owner: &User,
    notice: TokensNotice,
) -> Response {
    let tokens: Vec<AccessToken> = match state.store.access_tokens_of(owner.id).await {
        Ok(tokens) => tokens,
        Err(e) => return error_page(actor, &AuthError::from(e)),
    };
    let action = format!("/users/{}/settings/tokens", owner.username);
    let status = match notice {
        TokensNotice::Error(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = html! {
        h1 { "Access tokens" }
        p.muted { "Send a token as " code { "Authorization: token …" } " or set "
            code { "SRC_ACCESS_TOKEN" } " for " code { "quarry search" } "." }
        @match &notice {
            TokensNotice::Created(token) => div.notice role="status" {
                p { strong { "Copy this token now: it will not be shown again." } }
                p { code #new-token { (token) } }
            },
            TokensNotice::Error(message) => p.error role="alert" { (message) },
            TokensNotice::None => {},
        }
        h2 { "New token" }
        form method="post" action=(action) {
            (csrf_field(actor))
            label for="note" { "What is it for?" }
            input #note type="text" name="note" required maxlength="1000";
            @if owner.site_admin {
                label { input type="checkbox" name="sudo" value="on"; " also " code { (SCOPE_SITE_ADMIN_SUDO) } }
            }
            button type="submit" { "Create token" }
        }
        h2 { "Tokens" }
        @if tokens.is_empty() {
            p.muted { "No tokens yet." }
        } @else {
            table {
                thead { tr { th { "Note" } th { "Scopes" } th { "Created" } th { "Last used" } th {} } }
                tbody {
                    @for token in &tokens {
                        tr {
                            td { (token.note) }
                            td { (token.scopes.join(", ")) }
                            td { (rfc3339(token.created_at)) }
                            td { (token.last_used_at.map_or_else(|| "never".to_string(), rfc3339)) }
                            td {
                                form method="post" action={ (action) "/" (token.id) "/delete" } {
                                    (csrf_field(actor))
                                    button type="submit" aria-label={ "Revoke " (token.note) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    render(status, page("Access tokens", actor, body))
}

/// `GET /users/<name>/settings/tokens`.
pub async fn tokens(
    State(state): State<AppState>,
    Path(username): Path<String>,
    request: Request,
) -> Response {
    let actor = actor(&request);
    if actor.user.is_none() {
        return sign_in_first(request.uri());
    }
    match settings_owner(&state, &actor, &username).await {
        Ok(owner) => tokens_page(&state, &actor, &owner, TokensNotice::None).await,
        Err(e) => error_page(&actor, &e),
    }
}

#[derive(Deserialize)]
pub struct NewTokenFields {
    note: String,
    sudo: Option<String>,
}

/// `POST /users/<name>/settings/tokens`: creates a token and shows it once.
pub async fn create_token(
    State(state): State<AppState>,
    Path(username): Path<String>,
    request: Request,
) -> Response {
    let actor = actor(&request);
    if actor.user.is_none() {
        return sign_in_first(request.uri());
    }
    let fields: NewTokenFields = match crate::sign_in::read_json(request).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let owner = match settings_owner(&state, &actor, &username).await {
        Ok(owner) => owner,
        Err(e) => return error_page(&actor, &e),
    };
    let mut scopes = vec![SCOPE_USER_ALL.to_string()];
    if fields.sudo.is_some() {
        scopes.push(SCOPE_SITE_ADMIN_SUDO.to_string());
    }
    let notice = match state
        .accounts
        .create_access_token(&actor, owner.id, &scopes, &fields.note)
        .await
    {
        Ok((_, token)) => TokensNotice::Created(token),
        Err(e) => TokensNotice::Error(e.to_string()),
    };
    tokens_page(&state, &actor, &owner, notice).await
}

/// `POST /users/<name>/settings/tokens/<id>/delete`: revokes a token.
pub async fn delete_token(
    State(state): State<AppState>,
    Path((username, token_id)): Path<(String, i64)>,
    request: Request,
) -> Response {
    let actor = actor(&request);
    if actor.user.is_none() {
        return sign_in_first(request.uri());
    }
    let owner = match settings_owner(&state, &actor, &username).await {
        Ok(owner) => owner,
        Err(e) => return error_page(&actor, &e),
    };
    let owned = state
        .store
        .access_token_by_id(token_id)
        .await
        .map(|t| t.is_some_and(|t| t.user_id == owner.id));
    match owned {
        Ok(true) => {}
        Ok(false) => return error_page(&actor, &AuthError::NotFound("access token".into())),
        Err(e) => return error_page(&actor, &AuthError::from(e)),
    }
    match state.accounts.delete_access_token(&actor, token_id).await {
        Ok(()) => {
            Redirect::to(&format!("/users/{}/settings/tokens", owner.username)).into_response()
        }
        Err(e) => error_page(&actor, &e),
    }
}
