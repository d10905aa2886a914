//! The web app: server-rendered pages at Sourcegraph's URLs, with one small JavaScript module and
//! one style sheet embedded in the binary.
//!
//! Every page reads correctly without JavaScript: pages are complete HTML and forms post back to
//! the server with the session's CSRF token as a field. With JavaScript, the search page streams
//! results from `/.api/search/stream`, links inside the app swap the page's main part without a
//! full reload, and line ranges can be selected in a file.

mod accounts;
mod admin;
mod assets;
mod browse;
mod search;

pub use accounts::{
    create_token, delete_token, home, password_reset_page, password_reset_submit, sign_in_page,
    sign_in_submit, sign_out_submit, sign_up_page, sign_up_submit, tokens,
};
pub use admin::{
    admin_configuration, admin_configuration_save, admin_executors, admin_external_service,
    admin_external_service_delete, admin_external_service_save, admin_external_services,
    admin_fetch_repository, admin_index, admin_repositories,
};
pub use assets::asset;
pub use browse::repository_page;
pub use search::search_page;

use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use quarry_auth::{Actor, AuthError, Credential};

use crate::AppState;

/// The name of the form field that carries a session's CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// A whole page: the shared head, the header (search box, who is signed in, sign-out), and the
/// body in `main`.
fn page(title: &str, actor: &Actor, body: Markup) -> Markup {
    page_with_query(title, actor, None, body)
}

/// A page whose header search box holds a query.
fn page_with_query(title: &str, actor: &Actor, query: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Quarry" }
                link rel="stylesheet" href=(assets::url("quarry.css"));
                script type="module" src=(assets::url("quarry.js")) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/" { strong { "Quarry" } }
                    @if actor.user.is_some() {
                        form.header-search role="search" action="/search" method="get" {
                            label.visually-hidden for="header-q" { "Search code" }
                            input #header-q .query-input type="search" name="q"
                                value=[query] placeholder="Search code… (press /)"
                                autocomplete="off" spellcheck="false";
                        }
                    }
                    span.spacer {}
                    @if let Some(user) = &actor.user {
                        @if user.site_admin {
                            a href="/site-admin" { "Site admin" }
                        }
                        a href={ "/users/" (user.username) "/settings/tokens" } { (user.username) }
                        form method="post" action="/sign-out" {
                            (csrf_field(actor))
                            button type="submit" { "Sign out" }
                        }
                    } @else {
                        a href="/sign-in" { "Sign in" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn csrf_field(actor: &Actor) -> Markup {
    match &actor.credential {
        Credential::Session { csrf_token, .. } => {
            html! { input type="hidden" name=(CSRF_FIELD) value=(csrf_token); }
        }
        _ => html! {},
    }
}

fn render(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            // Only the origin: a page URL may hold a one-time token, yet form posts must carry
            // an `Origin` (under `no-referrer` browsers send `Origin: null`).
            (header::REFERRER_POLICY, "strict-origin"),
        ],
        Html(markup.into_string()),
    )
        .into_response()
}

/// An error page with the status the error calls for.
fn error_page(actor: &Actor, error: &AuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    render(
        status,
        page(
            "Error",
            actor,
            html! { h1 { "Something went wrong" } p.error role="alert" { (error) } },
        ),
    )
}

/// A page saying what could not be found (or failed), under the given status.
fn problem_page(status: StatusCode, actor: &Actor, title: &str, message: Markup) -> Response {
    render(
        status,
        page(
            title,
            actor,
            html! { h1 { (title) } div.error role="alert" { (message) } },
        ),
    )
}

/// Where to go after signing in: a path on this site only (never another host).
fn local_path(return_to: Option<&str>) -> &str {
    match return_to {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

/// Sends a visitor who is not signed in to the sign-in page, to come back here after.
fn sign_in_first(uri: &Uri) -> Response {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("returnTo", here)
        .finish();
    Redirect::to(&format!("/sign-in?{query}")).into_response()
}

/// Whether this visitor may read code: signed in, or anyone when `auth.public` is on.
fn may_read(state: &AppState, actor: &Actor) -> bool {
    actor.user.is_some() || state.site.live().current().auth_public()
}

/// A URL path segment or path with every character that needs it percent-encoded (slashes
/// kept).
fn path_url(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'@'
            | b'+'
            | b'!'
            | b'$'
            | b','
            | b'='
            | b':' => out.push(char::from(byte)),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `/search?q=...` for a query.
fn search_url(query: &str) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", query)
        .finish();
    format!("/search?{encoded}")
}

/// A size for people.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_for_urls() {
        assert_eq!(path_url("src/a b#c?.rs"), "src/a%20b%23c%3F.rs");
        assert_eq!(path_url("github.com/o/r@v1"), "github.com/o/r@v1");
        assert_eq!(path_url("é"), "%C3%A9");
    }

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(local_path(Some("/search?q=a")), "/search?q=a");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil")), "/");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KB");
    }
}
