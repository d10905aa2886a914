//! The command-line client of Quarry's HTTP API, configured like Sourcegraph's src-cli
//! (`SRC_ENDPOINT`, `SRC_ACCESS_TOKEN`).
//!
//! Owns: reaching the endpoint with the token, reading the search event stream, and printing
//! results grep-style or as JSON lines.
//!
//! Invariants: the token is only ever sent in the `Authorization` header, never printed; a stream
//! that ends without `done` is an error, not a silent partial answer.

mod output;
mod sse;

pub use output::{Printer, Summary};
pub use sse::SseParser;

use futures_util::StreamExt;
use serde_json::Value;

/// Where the API is, and who is asking.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<String>,
}

/// The default endpoint, as in `quarry serve`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7080";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, String),
    #[error("{0}")]
    Refused(String),
    #[error("the search stream ended before it was done")]
    Truncated,
    #[error("malformed event from the server: {0}")]
    Malformed(String),
    #[error("cannot write results: {0}")]
    Output(#[from] std::io::Error),
}

impl Endpoint {
    pub fn new(url: &str, token: Option<String>) -> Self {
        Endpoint {
            url: url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Streams a search, handing each event (name, data) to `on_event` as it arrives.
    pub async fn search(
        &self,
        query: &str,
        on_event: &mut dyn FnMut(&str, Value) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let client = reqwest::Client::new();
        let mut request = client
            .get(format!("{}/.api/search/stream", self.url))
            .query(&[("q", query)])
            .header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("token {token}"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(self.url.clone(), e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Refused(format!("{} ({status})", body.trim())));
        }
        let mut parser = SseParser::default();
        let mut body = response.bytes_stream();
        let mut done = false;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ClientError::Unreachable(self.url.clone(), e.to_string()))?;
            for (name, data) in parser.push(&chunk) {
                let value: Value = serde_json::from_str(&data)
                    .map_err(|e| ClientError::Malformed(format!("{name}: {e}")))?;
                done |= name == "done";
                on_event(&name, value)?;
            }
        }
        if done {
            Ok(())
        } else {
            Err(ClientError::Truncated)
        }
    }
}
