//! Site admin pages (`/site-admin/...`, site admins only): repositories with clone and index
//! status and a "fetch now" button, code host connections (add, edit, delete), the site
//! configuration editor with its version history, and executors. Forms post back with the
//! session's CSRF token; a refused edit shows why and keeps what was typed, and nothing stored
//! changes.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use quarry_auth::Actor;
use quarry_config::ConfigError;
use quarry_store::{ExternalService, ExternalServiceKind, RepoFilter};
use serde::Deserialize;

use super::{csrf_field, error_page, page, path_url, render, sign_in_first};
use crate::AppState;
use crate::executors::ACTIVE_WITHIN_SECS;
use crate::graphql::rfc3339;
use crate::operations::{self, OperationError};
use crate::sign_in::read_json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Repositories listed per page.
const REPOS_PAGE: i64 = 100;

/// Configuration versions listed in the history.
const HISTORY: i64 = 20;

/// The signed-in site admin a page is for: anyone else is sent to sign in, or refused.
pub struct SiteAdmin(Actor);

impl<S: Send + Sync> FromRequestParts<S> for SiteAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let actor = parts
            .extensions
            .get::<Actor>()
            .cloned()
            .unwrap_or_else(|| Actor::anonymous(None));
        if actor.user.is_none() {
            return Err(sign_in_first(&parts.uri));
        }
        match quarry_auth::require_site_admin(&actor) {
            Ok(()) => Ok(SiteAdmin(actor)),
            Err(e) => Err(error_page(&actor, &e)),
        }
    }
}

/// A site admin page with the section menu.
fn admin_page(title: &str, actor: &Actor, current: &str, body: Markup) -> Markup {
    let sections = [
        ("/site-admin/repositories", "Repositories"),
        ("/site-admin/external-services", "Code host connections"),
        ("/site-admin/configuration", "Site configuration"),
        ("/site-admin/executors", "Executors"),
    ];
    page(
        title,
        actor,
        html! {
            div.admin-layout {
                nav.admin-nav aria-label="Site admin" {
                    ul {
                        @for (href, label) in sections {
                            li {
                                @if href == current {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                    }
                }
                div.admin-body { (body) }
            }
        },
    )
}

fn operation_failure(actor: &Actor, error: &OperationError) -> Response {
    let status = match error {
        OperationError::BadInput(_) => StatusCode::BAD_REQUEST,
        OperationError::Store(quarry_store::StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
        OperationError::Store(quarry_store::StoreError::Conflict(_)) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    super::problem_page(status, actor, "Could not do that", html! { p { (error) } })
}

/// `GET /site-admin`.
pub async fn admin_index(_: SiteAdmin) -> Response {
    Redirect::to("/site-admin/repositories").into_response()
}

#[derive(Deserialize, Default)]
pub struct RepoListParams {
    query: Option<String>,
    after: Option<i64>,
}

/// `GET /site-admin/repositories`.
pub async fn admin_repositories(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    Query(params): Query<RepoListParams>,
) -> Response {
    let filter = RepoFilter {
        after_id: params.after,
        limit: Some(REPOS_PAGE + 1),
        name_contains: params.query.clone().filter(|q| !q.is_empty()),
        ..Default::default()
    };
    let all = RepoFilter {
        limit: None,
        after_id: None,
        ..filter.clone()
    };
    let (repos, total) = match tokio::try_join!(
        state.store.list_repos(&filter),
        state.store.count_repos(&all)
    ) {
        Ok(found) => found,
        Err(e) => {
            return operation_failure(&actor, &OperationError::Store(e));
        }
    };
    let more = repos.len() as i64 > REPOS_PAGE;
    let repos = &repos[..repos.len().min(REPOS_PAGE as usize)];
    let query = params.query.unwrap_or_default();
    let body = html! {
        h1 { "Repositories" }
        form.inline method="get" {
            label for="repo-query" { "Filter by name" }
            input #repo-query type="text" name="query" value=(query);
            button type="submit" { "Filter" }
        }
        p.muted { (total) " repositories" }
        table.admin-table {
            thead { tr { th { "Name" } th { "Clone" } th { "Index" } th { "Last fetched" } th { "Error" } th { span.visually-hidden { "Actions" } } } }
            tbody {
                @for repo in repos {
                    tr data-repo=(repo.name) {
                        td { a href={ "/" (path_url(&repo.name)) } { (repo.name) } }
                        td.status { (repo.clone_status.as_str()) }
                        td.index { (state.searcher.index_state(repo.id, repo.head_commit.as_deref()).label()) }
                        td { @if let Some(at) = repo.last_fetched_at { time datetime=(rfc3339(at)) { (rfc3339(at)) } } @else { span.muted { "never" } } }
                        td.error { @if let Some(error) = &repo.last_error { (error) } }
                        td {
                            form method="post" action={ "/site-admin/repositories/" (repo.id) "/fetch" } {
                                (csrf_field(&actor))
                                button type="submit" aria-label={ "Fetch " (repo.name) " now" } { "Fetch now" }
                            }
                        }
                    }
                }
            }
        }
        @if more {
            @if let Some(last) = repos.last() {
                p { a href={ "/site-admin/repositories?after=" (last.id) "&query=" (query) } { "Next page" } }
            }
        }
    };
    render(
        StatusCode::OK,
        admin_page("Repositories", &actor, "/site-admin/repositories", body),
    )
}

/// `POST /site-admin/repositories/{id}/fetch`.
pub async fn admin_fetch_repository(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Response {
    match operations::fetch_repository_now(&state, id).await {
        Ok(()) => Redirect::to("/site-admin/repositories").into_response(),
        Err(e) => operation_failure(&actor, &e),
    }
}

/// `GET /site-admin/external-services`.
pub async fn admin_external_services(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
) -> Response {
    let services = match state.store.list_external_services().await {
        Ok(services) => services,
        Err(e) => return operation_failure(&actor, &OperationError::Store(e)),
    };
    let body = html! {
        h1 { "Code host connections" }
        p { a href="/site-admin/external-services/new" { "Add a connection" } }
        table.admin-table {
            thead { tr { th { "Name" } th { "Kind" } th { "Last synced" } th { "Error" } } }
            tbody {
                @for service in &services {
                    tr {
                        td { a href={ "/site-admin/external-services/" (service.id) } { (service.display_name) } }
                        td { (service.kind.as_str()) }
                        td { @if let Some(at) = service.last_sync_at { (rfc3339(at)) } @else { span.muted { "never" } } }
                        td.error { @if let Some(error) = &service.last_sync_error { (error) } }
                    }
                }
            }
        }
    };
    render(
        StatusCode::OK,
        admin_page(
            "Code host connections",
            &actor,
            "/site-admin/external-services",
            body,
        ),
    )
}

/// The form for a new or existing connection, with an error when a save was refused.
fn service_form(
    actor: &Actor,
    existing: Option<&ExternalService>,
    fields: &ServiceFields,
    error: Option<&str>,
) -> Markup {
    let action = match existing {
        Some(service) => format!("/site-admin/external-services/{}", service.id),
        None => "/site-admin/external-services/new".to_string(),
    };
    let title = if existing.is_some() {
        "Edit connection"
    } else {
        "Add a connection"
    };
    admin_page(
        title,
        actor,
        "/site-admin/external-services",
        html! {
            h1 { (title) }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form.editor method="post" action=(action) {
                (csrf_field(actor))
                @if existing.is_none() {
                    label for="kind" { "Kind" }
                    select #kind name="kind" {
                        @for kind in ["LOCAL", "OTHER"] {
                            option value=(kind) selected[fields.kind.as_deref() == Some(kind)] { (kind) }
                        }
                    }
                }
                label for="display_name" { "Display name" }
                input #display_name type="text" name="display_name" value=(fields.display_name) required;
                label for="config" { "Configuration (JSON)" }
                textarea #config name="config" rows="14" spellcheck="false" { (fields.config) }
                p.muted {
                    "LOCAL: " code { "{\"root\": \"/srv/git\"}" } ". OTHER: "
                    code { "{\"url\": \"https://git.example.com\", \"repos\": [\"org/repo\"]}" } "."
                }
                button type="submit" { "Save" }
            }
            @if let Some(service) = existing {
                form method="post" action={ "/site-admin/external-services/" (service.id) "/delete" } {
                    (csrf_field(actor))
                    button.danger type="submit" { "Delete this connection and its repositories" }
                }
            }
        },
    )
}

#[derive(Deserialize, Default)]
pub struct ServiceFields {
    kind: Option<String>,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    config: String,
}

/// `GET /site-admin/external-services/{id}` (or `new`).
pub async fn admin_external_service(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    if id == "new" {
        let fields = ServiceFields {
            kind: Some("LOCAL".into()),
            display_name: String::new(),
            config: "{\n  \"root\": \"\"\n}".into(),
        };
        return render(StatusCode::OK, service_form(&actor, None, &fields, None));
    }
    let service = match parse_id(&id) {
        Some(id) => operations::external_service(&state, id).await,
        None => Err(OperationError::BadInput(format!(
            "{id:?} is not a connection id"
        ))),
    };
    match service {
        Ok(service) => {
            let fields = ServiceFields {
                kind: None,
                display_name: service.display_name.clone(),
                config: service.config.clone(),
            };
            render(
                StatusCode::OK,
                service_form(&actor, Some(&service), &fields, None),
            )
        }
        Err(e) => operation_failure(&actor, &e),
    }
}

fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok()
}

/// `POST /site-admin/external-services/{id}` (or `new`).
pub async fn admin_external_service_save(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let fields: ServiceFields = match read_json(request).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let (existing, outcome) = if id == "new" {
        let outcome = match fields.kind.as_deref().and_then(ExternalServiceKind::parse) {
            Some(kind) => {
                operations::add_external_service(&state, kind, &fields.display_name, &fields.config)
                    .await
            }
            None => Err(OperationError::BadInput(
                "kind: choose LOCAL or OTHER".into(),
            )),
        };
        (None, outcome)
    } else {
        let Some(id) = parse_id(&id) else {
            return operation_failure(
                &actor,
                &OperationError::BadInput(format!("{id:?} is not a connection id")),
            );
        };
        let existing = match operations::external_service(&state, id).await {
            Ok(existing) => existing,
            Err(e) => return operation_failure(&actor, &e),
        };
        let outcome = operations::update_external_service(
            &state,
            id,
            Some(&fields.display_name),
            Some(&fields.config),
        )
        .await;
        (Some(existing), outcome)
    };
    match outcome {
        Ok(saved) => {
            Redirect::to(&format!("/site-admin/external-services/{}", saved.id)).into_response()
        }
        Err(OperationError::BadInput(message)) => render(
            StatusCode::BAD_REQUEST,
            service_form(&actor, existing.as_ref(), &fields, Some(&message)),
        ),
        Err(e) => operation_failure(&actor, &e),
    }
}

/// `POST /site-admin/external-services/{id}/delete`.
pub async fn admin_external_service_delete(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Response {
    match operations::delete_external_service(&state, id).await {
        Ok(()) => Redirect::to("/site-admin/external-services").into_response(),
        Err(e) => operation_failure(&actor, &e),
    }
}

#[derive(Deserialize)]
pub struct ConfigParams {
    version: Option<i64>,
}

/// The configuration editor: the text, the version it edits, and what was wrong with it.
fn configuration_form(
    actor: &Actor,
    last_id: i64,
    text: &str,
    messages: &[String],
    saved: bool,
    history: &[quarry_store::SiteConfigVersion],
) -> Markup {
    admin_page(
        "Site configuration",
        actor,
        "/site-admin/configuration",
        html! {
            h1 { "Site configuration" }
            @if saved { p.success role="status" { "Saved. The new configuration is in force." } }
            @if !messages.is_empty() {
                div.error role="alert" {
                    p { "The configuration was not saved; the one in force is unchanged." }
                    ul.validation { @for message in messages { li { (message) } } }
                }
            }
            form.editor method="post" action="/site-admin/configuration" {
                (csrf_field(actor))
                input type="hidden" name="last_id" value=(last_id);
                label for="site-config" { "JSON with comments" }
                textarea #site-config name="contents" rows="24" spellcheck="false" { (text) }
                button type="submit" { "Save" }
            }
            h2 { "History" }
            ol.history {
                @for version in history {
                    li {
                        a href={ "/site-admin/configuration?version=" (version.id) } { "Version " (version.id) }
                        " · " time datetime=(rfc3339(version.created_at)) { (rfc3339(version.created_at)) }
                    }
                }
            }
        },
    )
}

/// `GET /site-admin/configuration` (`?version=N` shows an older version in the editor).
pub async fn admin_configuration(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    Query(params): Query<ConfigParams>,
    request: Request,
) -> Response {
    let (current, history) =
        match tokio::try_join!(state.site.current(), state.site.history(HISTORY)) {
            Ok(found) => found,
            Err(e) => return config_failure(&actor, e),
        };
    let text = match params.version {
        Some(id) => match history.iter().find(|v| v.id == id) {
            Some(version) => version.contents.clone(),
            None => {
                return super::problem_page(
                    StatusCode::NOT_FOUND,
                    &actor,
                    "Version not found",
                    html! { p { "Site configuration version " (id) " was not found." } },
                );
            }
        },
        None => current.contents.clone(),
    };
    let saved = request.uri().query().is_some_and(|q| q.contains("saved=1"));
    render(
        StatusCode::OK,
        configuration_form(&actor, current.id, &text, &[], saved, &history),
    )
}

fn config_failure(actor: &Actor, error: ConfigError) -> Response {
    operation_failure(actor, &OperationError::Failed(error.to_string()))
}

#[derive(Deserialize)]
struct ConfigFields {
    last_id: String,
    #[serde(default)]
    contents: String,
}

/// `POST /site-admin/configuration`.
pub async fn admin_configuration_save(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
    request: Request,
) -> Response {
    let fields: ConfigFields = match read_json(request).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let Ok(last_id) = fields.last_id.parse::<i64>() else {
        return operation_failure(
            &actor,
            &OperationError::BadInput("last_id: not a version number".into()),
        );
    };
    let outcome =
        operations::save_site_configuration(&state, &actor, last_id, &fields.contents).await;
    let messages = match outcome {
        Ok(_) => return Redirect::to("/site-admin/configuration?saved=1").into_response(),
        Err(ConfigError::Invalid(invalid)) => invalid.messages(),
        Err(ConfigError::Store(quarry_store::StoreError::Conflict(_))) => vec![
            "someone else saved the configuration since this page was loaded; reload to edit the newer version".into(),
        ],
        Err(e) => return config_failure(&actor, e),
    };
    let history = state.site.history(HISTORY).await.unwrap_or_default();
    render(
        StatusCode::BAD_REQUEST,
        configuration_form(
            &actor,
            last_id,
            &fields.contents,
            &messages,
            false,
            &history,
        ),
    )
}

/// `GET /site-admin/executors`.
pub async fn admin_executors(
    SiteAdmin(actor): SiteAdmin,
    State(state): State<AppState>,
) -> Response {
    let executors = match state.store.list_executors(None, None, 500).await {
        Ok(executors) => executors,
        Err(e) => return operation_failure(&actor, &OperationError::Store(e)),
    };
    let configured = state
        .site
        .live()
        .current()
        .executors_access_token()
        .is_some();
    let now = quarry_store::now();
    let body = html! {
        h1 { "Executors" }
        @if !configured {
            p.notice role="note" {
                "Executors are not configured: set " code { "executors.accessToken" }
                " in the " a href="/site-admin/configuration" { "site configuration" } "."
            }
        }
        @if executors.is_empty() {
            p.muted { "No executor has sent a heartbeat yet." }
        }
        ul.executors {
            @for executor in &executors {
                @let active = now - executor.last_seen_at <= ACTIVE_WITHIN_SECS;
                li.executor data-hostname=(executor.heartbeat.hostname) data-active=(active) {
                    span class={ "dot " @if active { "active" } @else { "inactive" } }
                        role="img" aria-label=(if active { "active" } else { "inactive" }) {}
                    strong { (executor.heartbeat.hostname) }
                    span.muted {
                        " · queues: " (executor.heartbeat.queue_names.join(", "))
                        " · " (executor.heartbeat.os) "/" (executor.heartbeat.architecture)
                        " · executor " (executor.heartbeat.executor_version)
                        " · git " (executor.heartbeat.git_version)
                    }
                    div.muted {
                        "First seen " (rfc3339(executor.first_seen_at))
                        ", last seen " (rfc3339(executor.last_seen_at))
                    }
                }
            }
        }
    };
    render(
        StatusCode::OK,
        admin_page("Executors", &actor, "/site-admin/executors", body),
    )
}
