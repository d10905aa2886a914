//! `search(query)`: the whole result of a search at once, for scripts (Sourcegraph's shape).

use async_graphql::{Context, Object, SimpleObject, Union};
use quarry_search::events::{Match, SearchEvent};

use super::bad_input;
use super::repos::Repository;
use super::store_error;
use crate::AppState;
use crate::search_stream::search_options;

#[derive(SimpleObject)]
pub struct LineMatch {
    preview: String,
    /// 0-based.
    line_number: i64,
    /// `[offset, length]` pairs in characters of the preview.
    offset_and_lengths: Vec<Vec<i64>>,
}

#[derive(SimpleObject)]
pub struct SearchFile {
    path: String,
    url: String,
}

pub struct FileMatch {
    repository: quarry_store::Repo,
    commit: String,
    path: String,
    line_matches: Vec<LineMatch>,
}

#[Object]
impl FileMatch {
    async fn repository(&self) -> Repository {
        Repository(self.repository.clone())
    }

    async fn file(&self) -> SearchFile {
        SearchFile {
            path: self.path.clone(),
            url: format!(
                "/{}@{}/-/blob/{}",
                self.repository.name, self.commit, self.path
            ),
        }
    }

    /// The commit searched.
    async fn commit(&self) -> &str {
        &self.commit
    }

    async fn line_matches(&self) -> &[LineMatch] {
        &self.line_matches
    }
}

#[derive(Union)]
pub enum SearchResult {
    FileMatch(FileMatch),
    Repository(Repository),
}

#[derive(SimpleObject)]
pub struct SearchAlert {
    title: String,
    description: String,
}

#[derive(SimpleObject)]
pub struct SearchResults {
    match_count: i64,
    limit_hit: bool,
    results: Vec<SearchResult>,
    alert: Option<SearchAlert>,
    elapsed_milliseconds: i64,
}

pub struct Search {
    query: String,
    pattern_type: Option<String>,
}

#[Object]
impl Search {
    async fn results(&self, ctx: &Context<'_>) -> async_graphql::Result<SearchResults> {
        let state = ctx.data::<AppState>()?;
        let options =
            search_options(self.pattern_type.as_deref(), super::actor(ctx)?).map_err(bad_input)?;
        let mut events = state
            .searcher
            .search(&self.query, options)
            .map_err(|e| bad_input(format!("invalid query: {e}")))?;
        let mut results = SearchResults {
            match_count: 0,
            limit_hit: false,
            results: Vec::new(),
            alert: None,
            elapsed_milliseconds: 0,
        };
        while let Some(event) = events.recv().await {
            match event {
                SearchEvent::Matches(matches) => {
                    for found in matches {
                        if let Some(result) = to_result(state, found).await? {
                            results.results.push(result);
                        }
                    }
                }
                SearchEvent::Progress(progress) if progress.done => {
                    results.match_count = progress.match_count as i64;
                    results.elapsed_milliseconds = progress.duration_ms as i64;
                    results.limit_hit = progress
                        .skipped
                        .iter()
                        .any(|s| s.reason == "document-match-limit");
                }
                SearchEvent::Alert(alert) => {
                    results.alert = Some(SearchAlert {
                        title: alert.title,
                        description: alert.description,
                    })
                }
                SearchEvent::Error(e) => return Err(async_graphql::Error::new(e.message)),
                _ => {}
            }
        }
        Ok(results)
    }
}

async fn to_result(state: &AppState, found: Match) -> async_graphql::Result<Option<SearchResult>> {
    let (repository_id, commit, path, line_matches) = match found {
        Match::Repo { repository_id, .. } => {
            let repo = state
                .store
                .repo_by_id(repository_id)
                .await
                .map_err(store_error)?;
            return Ok(repo.map(|r| SearchResult::Repository(Repository(r))));
        }
        Match::Path {
            repository_id,
            commit,
            path,
            ..
        } => (repository_id, commit, path, Vec::new()),
        Match::Content {
            repository_id,
            commit,
            path,
            chunk_matches,
            ..
        } => {
            let lines = chunk_matches
                .into_iter()
                .map(|chunk| LineMatch {
                    line_number: chunk.content_start.line as i64,
                    offset_and_lengths: chunk
                        .ranges
                        .iter()
                        .map(|r| {
                            vec![
                                r.start.column as i64,
                                r.end.column.saturating_sub(r.start.column) as i64,
                            ]
                        })
                        .collect(),
                    preview: chunk.content,
                })
                .collect();
            (repository_id, commit, path, lines)
        }
    };
    let repo = state
        .store
        .repo_by_id(repository_id)
        .await
        .map_err(store_error)?;
    Ok(repo.map(|repository| {
        SearchResult::FileMatch(FileMatch {
            repository,
            commit,
            path,
            line_matches,
        })
    }))
}

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Runs a search to completion (use the stream API to see results as they are found).
    async fn search(&self, query: String, pattern_type: Option<String>) -> Search {
        Search {
            query,
            pattern_type,
        }
    }
}
