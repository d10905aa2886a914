//! The events a search produces, in the names and JSON shapes of Sourcegraph's stream API.

use serde::{Deserialize, Serialize};

/// A position in a file or path: byte offset, 0-based line, column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: Location,
    pub end: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkMatch {
    pub content: String,
    pub content_start: Location,
    pub ranges: Vec<Range>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Match {
    #[serde(rename_all = "camelCase")]
    Content {
        repository: String,
        #[serde(rename = "repositoryID")]
        repository_id: i64,
        commit: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        branches: Vec<String>,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        chunk_matches: Vec<ChunkMatch>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        path_matches: Vec<Range>,
    },
    #[serde(rename_all = "camelCase")]
    Path {
        repository: String,
        #[serde(rename = "repositoryID")]
        repository_id: i64,
        commit: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        branches: Vec<String>,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        path_matches: Vec<Range>,
    },
    #[serde(rename_all = "camelCase")]
    Repo {
        repository: String,
        #[serde(rename = "repositoryID")]
        repository_id: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        repository_matches: Vec<Range>,
    },
}

impl Match {
    pub fn repository(&self) -> &str {
        match self {
            Match::Content { repository, .. }
            | Match::Path { repository, .. }
            | Match::Repo { repository, .. } => repository,
        }
    }

    pub fn language(&self) -> Option<&str> {
        match self {
            Match::Content { language, .. } | Match::Path { language, .. } => language.as_deref(),
            Match::Repo { .. } => None,
        }
    }

    pub fn path(&self) -> Option<&str> {
        match self {
            Match::Content { path, .. } | Match::Path { path, .. } => Some(path),
            Match::Repo { .. } => None,
        }
    }

    /// Drops highlighted ranges beyond `budget` matches (at least one chunk is kept).
    pub fn truncate(&mut self, budget: usize) {
        if let Match::Content { chunk_matches, .. } = self {
            let mut left = budget.max(1);
            chunk_matches.retain_mut(|chunk| {
                if left == 0 {
                    return false;
                }
                let keep = chunk.ranges.len().max(1).min(left);
                chunk.ranges.truncate(keep);
                left -= keep;
                true
            });
        }
    }

    /// How many matches this counts as: each highlighted range, or one.
    pub fn count(&self) -> usize {
        match self {
            Match::Content { chunk_matches, .. } => chunk_matches
                .iter()
                .map(|c| c.ranges.len().max(1))
                .sum::<usize>()
                .max(1),
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestedQuery {
    pub title: String,
    pub query_expression: String,
}

/// Something the search left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub reason: String,
    pub title: String,
    pub message: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested: Option<SuggestedQuery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub done: bool,
    pub repositories_count: usize,
    pub match_count: usize,
    pub duration_ms: u64,
    pub skipped: Vec<Skipped>,
}

/// A facet for narrowing the search (the sidebar's filters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facet {
    pub value: String,
    pub label: String,
    pub count: usize,
    pub limit_hit: bool,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedQuery {
    pub description: String,
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub title: String,
    pub description: String,
    pub kind: String,
    pub proposed_queries: Vec<ProposedQuery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub message: String,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchEvent {
    Matches(Vec<Match>),
    Progress(Progress),
    Filters(Vec<Facet>),
    Alert(Alert),
    Error(ErrorMessage),
    Done,
}

impl SearchEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            SearchEvent::Matches(_) => "matches",
            SearchEvent::Progress(_) => "progress",
            SearchEvent::Filters(_) => "filters",
            SearchEvent::Alert(_) => "alert",
            SearchEvent::Error(_) => "error",
            SearchEvent::Done => "done",
        }
    }

    /// Reads an event as the stream carries it (name and JSON data).
    pub fn parse(name: &str, data: &str) -> Result<SearchEvent, serde_json::Error> {
        Ok(match name {
            "matches" => SearchEvent::Matches(serde_json::from_str(data)?),
            "progress" => SearchEvent::Progress(serde_json::from_str(data)?),
            "filters" => SearchEvent::Filters(serde_json::from_str(data)?),
            "alert" => SearchEvent::Alert(serde_json::from_str(data)?),
            "error" => SearchEvent::Error(serde_json::from_str(data)?),
            _ => SearchEvent::Done,
        })
    }

    /// The event framed for a server-sent event stream, its data encoded straight into the
    /// frame (a matches event may be megabytes).
    pub fn frame(&self) -> Vec<u8> {
        let mut frame = format!("event: {}\ndata: ", self.name()).into_bytes();
        let data_start = frame.len();
        if let Err(e) = self.write_data(&mut frame) {
            frame.truncate(data_start);
            frame.extend_from_slice(
                format!("{{\"message\":\"cannot encode event: {e}\"}}").as_bytes(),
            );
        }
        frame.extend_from_slice(b"\n\n");
        frame
    }

    /// Writes the event's data as one line of JSON.
    fn write_data(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            SearchEvent::Matches(m) => serde_json::to_writer(out, m),
            SearchEvent::Progress(p) => serde_json::to_writer(out, p),
            SearchEvent::Filters(f) => serde_json::to_writer(out, f),
            SearchEvent::Alert(a) => serde_json::to_writer(out, a),
            SearchEvent::Error(e) => serde_json::to_writer(out, e),
            SearchEvent::Done => {
                out.extend_from_slice(b"{}");
                Ok(())
            }
        }
    }
}
