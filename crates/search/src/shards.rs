//! Search split over index servers: each owns the repositories that rendezvous hashing of their
//! names assigns to it (the same hash as gitserver shards), and the frontend fans a query out to
//! all of them and merges what they stream back.

use std::sync::Arc;

use futures_util::StreamExt;
use quarry_client::SseParser;
use quarry_gitserver::rendezvous_owner;
use quarry_store::Viewer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::SearchOptions;
use crate::events::SearchEvent;

/// The repositories one index server is responsible for.
#[derive(Debug, Clone)]
pub struct Ownership {
    shards: Arc<Vec<String>>,
    me: usize,
}

impl Ownership {
    /// `me` must be one of `shards` (as the other processes list it).
    pub fn new(shards: Vec<String>, me: &str) -> Result<Self, String> {
        let position = shards.iter().position(|s| s == me).ok_or_else(|| {
            format!(
                "this index server ({me}) is not in the list of index servers ({})",
                shards.join(", ")
            )
        })?;
        Ok(Ownership {
            shards: Arc::new(shards),
            me: position,
        })
    }

    pub fn owns(&self, repo: &str) -> bool {
        rendezvous_owner(&self.shards, repo) == Some(self.me)
    }
}

/// An index server the frontend searches through.
#[derive(Debug, Clone)]
pub struct RemoteShard {
    pub address: String,
    client: reqwest::Client,
    secret: Option<String>,
}

impl RemoteShard {
    /// `address` is `host:port` or a full `http://` URL.
    pub fn new(address: &str, secret: Option<String>) -> Self {
        let address = quarry_gitserver::service_url(address);
        RemoteShard {
            address,
            client: reqwest::Client::new(),
            secret,
        }
    }

    /// Streams a shard's events for a query into `out`, tagged with `index`; a failure is sent as
    /// an `Err` with the reason. Stops when `cancel` fires.
    pub(crate) async fn stream(
        self,
        index: usize,
        query: String,
        options: SearchOptions,
        out: mpsc::Sender<(usize, Result<SearchEvent, String>)>,
        cancel: CancellationToken,
    ) {
        let work = async {
            let mut request = self
                .client
                .get(format!("{}/.internal/search/stream", self.address))
                .query(&[
                    ("q", query.as_str()),
                    ("t", options.pattern_type.name()),
                    ("viewer", &viewer_param(options.viewer)),
                    ("cl", &options.context_lines.to_string()),
                ]);
            if let Some(secret) = &self.secret {
                request = request.bearer_auth(secret);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return Err(format!("answered {status}: {}", body.trim()));
            }
            let mut parser = SseParser::default();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                for (name, data) in parser.push(&chunk) {
                    let event = SearchEvent::parse(&name, &data)
                        .map_err(|e| format!("bad {name} event: {e}"))?;
                    let done = event == SearchEvent::Done;
                    if out.send((index, Ok(event))).await.is_err() || done {
                        return Ok(());
                    }
                }
            }
            Err("the stream ended before it was done".to_string())
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = cancel.cancelled() => return,
        };
        if let Err(reason) = outcome {
            let _ = out.send((index, Err(reason))).await;
        }
    }
}

/// A viewer as the index servers' search stream takes it (`viewer=`).
pub(crate) fn viewer_param(viewer: Viewer) -> String {
    match viewer {
        Viewer::All => "all".into(),
        Viewer::Anonymous => "anonymous".into(),
        Viewer::User(id) => format!("user:{id}"),
    }
}

/// Reads `viewer=`; anything unreadable or missing is the narrowest view.
pub(crate) fn parse_viewer(param: Option<&str>) -> Viewer {
    match param {
        Some("all") => Viewer::All,
        Some(other) => other
            .strip_prefix("user:")
            .and_then(|id| id.parse().ok())
            .map_or(Viewer::Anonymous, Viewer::User),
        None => Viewer::Anonymous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_repository_has_exactly_one_owner() {
        let shards: Vec<String> = vec!["a:1".into(), "b:1".into(), "c:1".into()];
        let owners: Vec<Ownership> = shards
            .iter()
            .map(|me| Ownership::new(shards.clone(), me).unwrap())
            .collect();
        for i in 0..300 {
            let repo = format!("github.com/org/r{i}");
            assert_eq!(owners.iter().filter(|o| o.owns(&repo)).count(), 1, "{repo}");
        }
        assert!(Ownership::new(shards, "d:1").is_err());
    }

    #[test]
    fn viewers_round_trip_and_unknown_ones_see_least() {
        for viewer in [Viewer::All, Viewer::Anonymous, Viewer::User(42)] {
            assert_eq!(parse_viewer(Some(&viewer_param(viewer))), viewer);
        }
        assert_eq!(parse_viewer(None), Viewer::Anonymous);
        assert_eq!(parse_viewer(Some("user:x")), Viewer::Anonymous);
    }
}
