//! `/search?q=...`: the search page. The server renders the first results (so the page reads
//! without JavaScript); the script then streams the rest from `/.api/search/stream` and takes
//! over new queries without reloading. Both render results in the same markup.

use std::time::Instant;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use quarry_auth::Actor;
use quarry_search::SearchOptions;
use quarry_search::events::{ChunkMatch, Facet, Match, Progress, SearchEvent};
use serde::Deserialize;

use super::{may_read, page_with_query, path_url, render, search_url, sign_in_first};
use crate::AppState;
use crate::access::actor;
use crate::search_stream::search_options;

/// Result groups (files or repositories) rendered by the server unless the URL asks for more.
const FIRST_RESULTS: usize = 30;

/// The most result groups one page renders.
const MAX_DISPLAY: usize = 2_000;

/// Chunks (matching lines with their context) shown in a file before "show more".
const CHUNKS_SHOWN: usize = 2;

/// Lines of context around each matching line.
const CONTEXT_LINES: usize = 1;

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    /// Pattern type unless the query says one.
    t: Option<String>,
    /// How many result groups to render.
    display: Option<usize>,
}

/// What the server collected of a search before rendering.
struct Collected {
    results: Vec<Match>,
    progress: Option<Progress>,
    filters: Vec<Facet>,
    alerts: Vec<(String, String)>,
    errors: Vec<String>,
    /// Whether the search finished (otherwise the page shows its first results only).
    complete: bool,
}

pub async fn search_page(
    State(state): State<AppState>,
    Query(params): Query<SearchParams>,
    request: Request,
) -> Response {
    let actor = actor(&request);
    if !may_read(&state, &actor) {
        return sign_in_first(request.uri());
    }
    let query = params.q.unwrap_or_default();
    if query.trim().is_empty() {
        return render(StatusCode::OK, search_home(&actor));
    }
    let display = params
        .display
        .unwrap_or(FIRST_RESULTS)
        .clamp(1, MAX_DISPLAY);
    let options = match search_options(params.t.as_deref(), &actor) {
        Ok(options) => SearchOptions {
            context_lines: CONTEXT_LINES,
            ..options
        },
        Err(message) => {
            let body = search_body(&query, None, Some(query_error(&query, None, &message)));
            return render(
                StatusCode::BAD_REQUEST,
                page_with_query("Search", &actor, Some(&query), body),
            );
        }
    };
    let events = match state.searcher.search(&query, options) {
        Ok(events) => events,
        Err(e) => {
            let error = query_error(&query, Some(e.position), &e.message);
            let body = search_body(&query, None, Some(error));
            return render(
                StatusCode::BAD_REQUEST,
                page_with_query("Search", &actor, Some(&query), body),
            );
        }
    };
    let started = Instant::now();
    let collected = collect(events, display).await;
    let body = search_body(&query, Some((&collected, display, started)), None);
    render(
        StatusCode::OK,
        page_with_query(&format!("{query} - Search"), &actor, Some(&query), body),
    )
}

/// Reads a search's events until it ends or `display` result groups are in hand (then the
/// receiver is dropped, which stops the search).
async fn collect(
    mut events: tokio::sync::mpsc::Receiver<SearchEvent>,
    display: usize,
) -> Collected {
    let mut collected = Collected {
        results: Vec::new(),
        progress: None,
        filters: Vec::new(),
        alerts: Vec::new(),
        errors: Vec::new(),
        complete: false,
    };
    while let Some(event) = events.recv().await {
        match event {
            SearchEvent::Matches(matches) => {
                collected.results.extend(matches);
                if collected.results.len() >= display {
                    collected.results.truncate(display);
                    return collected;
                }
            }
            SearchEvent::Progress(progress) => collected.progress = Some(progress),
            SearchEvent::Filters(filters) => collected.filters = filters,
            SearchEvent::Alert(alert) => collected.alerts.push((alert.title, alert.description)),
            SearchEvent::Error(error) => collected.errors.push(error.message),
            SearchEvent::Done => {
                collected.complete = true;
                return collected;
            }
        }
    }
    collected
}

fn search_home(actor: &Actor) -> Markup {
    page_with_query(
        "Search",
        actor,
        None,
        html! {
            h1 { "Search code" }
            (search_form(""))
            section.examples {
                h2 { "Examples" }
                ul {
                    @for (example, what) in EXAMPLES {
                        li { a href=(search_url(example)) { code { (example) } } " " span.muted { (what) } }
                    }
                }
            }
        },
    )
}

const EXAMPLES: &[(&str, &str)] = &[
    ("\"fn main\" lang:rust", "an exact phrase in Rust files"),
    (
        "/err(or)?\\b/ file:\\.go$",
        "a regular expression in Go files",
    ),
    ("repo:^github\\.com/ type:repo", "repositories by name"),
    ("TODO -file:test count:all", "every TODO outside tests"),
];

/// The search box, with the overlay the script fills with the highlighted query.
pub(super) fn search_form(query: &str) -> Markup {
    html! {
        form.search-form role="search" action="/search" method="get" {
            label.visually-hidden for="q" { "Search query" }
            div.query-field {
                div.query-overlay aria-hidden="true" {}
                input #q .query-input type="search" name="q" value=(query) autofocus
                    autocomplete="off" spellcheck="false" aria-describedby="query-error";
            }
            button type="submit" { "Search" }
        }
    }
}

/// A query error shown under the query, with a caret at the position it names.
fn query_error(query: &str, position: Option<usize>, message: &str) -> Markup {
    let column = position.map(|p| query[..p.min(query.len())].chars().count());
    html! {
        div #query-error .query-error role="alert" {
            @if let Some(column) = column {
                pre { (query) "\n" (" ".repeat(column)) "^" }
            }
            p { (message) }
        }
    }
}

/// The page body: form, summary, sidebar and results.
fn search_body(
    query: &str,
    collected: Option<(&Collected, usize, Instant)>,
    error: Option<Markup>,
) -> Markup {
    html! {
        (search_form(query))
        @if let Some(error) = error { (error) }
        @if let Some((collected, display, started)) = collected {
            div.search-layout data-complete=(collected.complete) data-query=(query)
                data-display=(display) {
                aside.filters aria-label="Filters" {
                    (filters(query, &collected.filters))
                }
                section.search-results aria-label="Results" {
                    p.summary role="status" aria-live="polite" {
                        (summary(collected, display, started))
                    }
                    ul.alerts {
                        @for (title, description) in &collected.alerts {
                            li.alert { strong { (title) } ": " (description) }
                        }
                        @for message in &collected.errors {
                            li.alert.error { (message) }
                        }
                    }
                    ol.results {
                        @for found in &collected.results { (result(found)) }
                    }
                    @if !collected.complete {
                        p.more-results {
                            a href={ (search_url(query)) "&display=" (display * 4) } {
                                "Show more results"
                            }
                        }
                    }
                }
            }
        }
    }
}

fn summary(collected: &Collected, display: usize, started: Instant) -> Markup {
    let shown: usize = collected.results.iter().map(Match::count).sum();
    html! {
        @match (&collected.progress, collected.complete) {
            (Some(progress), true) => {
                span.count { (progress.match_count) " results" }
                " in " span.duration { (progress.duration_ms) " ms" }
                @if !progress.skipped.is_empty() {
                    ul.skipped {
                        @for skipped in &progress.skipped {
                            li data-reason=(skipped.reason) {
                                strong { (skipped.title) } ": " (skipped.message)
                            }
                        }
                    }
                }
            }
            _ => {
                span.count { (shown) " results" }
                " in the first " (display) " files, "
                span.duration { (started.elapsed().as_millis()) " ms" }
                "; more may follow."
            }
        }
    }
}

fn filters(query: &str, facets: &[Facet]) -> Markup {
    let kinds = [
        ("repo", "Repositories"),
        ("lang", "Languages"),
        ("file", "Paths"),
    ];
    html! {
        @for (kind, title) in kinds {
            @let of_kind: Vec<&Facet> = facets.iter().filter(|f| f.kind == kind).collect();
            @if !of_kind.is_empty() {
                h2 { (title) }
                ul data-kind=(kind) {
                    @for facet in of_kind {
                        li {
                            a href=(search_url(&format!("{query} {}", facet.value))) {
                                span.label { (facet.label) }
                                span.facet-count { (facet.count) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The link to a file of a result, at a line when given (1-based).
fn blob_url(repository: &str, branches: &[String], path: &str, line: Option<usize>) -> String {
    let revision = branches
        .first()
        .map(|b| format!("@{}", path_url(b)))
        .unwrap_or_default();
    let anchor = line.map(|l| format!("#L{l}")).unwrap_or_default();
    format!(
        "/{}{revision}/-/blob/{}{anchor}",
        path_url(repository),
        path_url(path)
    )
}

/// Text with some character ranges marked.
fn marked(text: &str, ranges: &[(usize, usize)]) -> Markup {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut at = 0;
    for &(start, end) in ranges {
        let (start, end) = (start.min(chars.len()).max(at), end.min(chars.len()));
        if start > at {
            pieces.push((chars[at..start].iter().collect(), false));
        }
        if end > start {
            pieces.push((chars[start..end].iter().collect(), true));
            at = end;
        }
    }
    if at < chars.len() {
        pieces.push((chars[at..].iter().collect(), false));
    }
    html! {
        @for (piece, is_match) in pieces {
            @if is_match { mark { (piece) } } @else { (piece) }
        }
    }
}

fn result(found: &Match) -> Markup {
    match found {
        Match::Content {
            repository,
            branches,
            path,
            language,
            chunk_matches,
            path_matches,
            ..
        } => {
            let path_ranges: Vec<(usize, usize)> = path_matches
                .iter()
                .map(|r| (r.start.column, r.end.column))
                .collect();
            let chunks: Vec<Markup> = chunk_matches
                .iter()
                .map(|chunk| chunk_rows(repository, branches, path, chunk))
                .collect();
            let (shown, more) = chunks.split_at(chunks.len().min(CHUNKS_SHOWN));
            html! {
                li.result data-key={ (repository) "\t" (path) } {
                    (result_header(repository, branches, path, &path_ranges, language.as_deref()))
                    table.chunks { @for chunk in shown { tbody { (chunk) } } }
                    @if !more.is_empty() {
                        details.more {
                            summary { "Show " (more.len()) " more matches" }
                            table.chunks { @for chunk in more { tbody { (chunk) } } }
                        }
                    }
                }
            }
        }
        Match::Path {
            repository,
            branches,
            path,
            language,
            path_matches,
            ..
        } => {
            let path_ranges: Vec<(usize, usize)> = path_matches
                .iter()
                .map(|r| (r.start.column, r.end.column))
                .collect();
            html! {
                li.result data-key={ (repository) "\t" (path) } {
                    (result_header(repository, branches, path, &path_ranges, language.as_deref()))
                }
            }
        }
        Match::Repo { repository, .. } => html! {
            li.result data-key=(repository) {
                h3 { a.repo href={ "/" (path_url(repository)) } { (repository) } }
            }
        },
    }
}

/// The rows of one chunk: each line numbered and linked, matched ranges marked.
fn chunk_rows(repository: &str, branches: &[String], path: &str, chunk: &ChunkMatch) -> Markup {
    html! {
        @for (i, text) in chunk.content.split('\n').enumerate() {
            @let number = chunk.content_start.line + i;
            @let ranges: Vec<(usize, usize)> = chunk
                .ranges
                .iter()
                .filter(|r| r.start.line == number)
                .map(|r| (r.start.column, r.end.column))
                .collect();
            tr class=(if ranges.is_empty() { "context" } else { "match" }) {
                td.line { a href=(blob_url(repository, branches, path, Some(number + 1))) { (number + 1) } }
                td.code { (marked(text, &ranges)) }
            }
        }
    }
}

fn result_header(
    repository: &str,
    branches: &[String],
    path: &str,
    path_ranges: &[(usize, usize)],
    language: Option<&str>,
) -> Markup {
    html! {
        h3 {
            a.repo href={ "/" (path_url(repository)) } { (repository) }
            @if let Some(branch) = branches.first() { span.muted { "@" (branch) } }
            " › "
            a.file href=(blob_url(repository, branches, path, None)) { (marked(path, path_ranges)) }
            @if let Some(language) = language { " " span.lang { (language) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_ranges_are_in_characters() {
        let html = marked("héllo wörld", &[(1, 2), (6, 11)]).into_string();
        assert_eq!(html, "h<mark>é</mark>llo <mark>wörld</mark>");
        let html = marked("<a>", &[(0, 9)]).into_string();
        assert_eq!(html, "<mark>&lt;a&gt;</mark>");
    }

    #[test]
    fn errors_point_at_their_column() {
        let html = query_error("repo:x (", Some(7), "expected )").into_string();
        assert!(html.contains("repo:x (\n       ^"), "{html}");
    }
}
