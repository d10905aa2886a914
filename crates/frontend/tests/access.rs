//! Until accounts exist, only loopback callers reach anything but the health checks.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use quarry_config::SiteConfigManager;
use quarry_frontend::{AppState, router};
use quarry_gitserver::LocalGitService;
use quarry_repos::RepoUpdater;
use quarry_store::Store;
use tower::ServiceExt;

async fn state(dir: &std::path::Path) -> AppState {
    let store = Store::open_sqlite(&dir.join("quarry.db")).await.unwrap();
    let site = Arc::new(SiteConfigManager::load(store.clone(), None).await.unwrap());
    let git = Arc::new(LocalGitService::open(&dir.join("repos")).unwrap());
    let updater = Arc::new(RepoUpdater::new(store.clone(), git.clone(), site.live()));
    AppState {
        searcher: quarry_search::Searcher::new(store.clone(), git.clone()),
        store,
        git,
        site,
        updater,
    }
}

async fn status_from(peer: &str, method: &str, path: &str, state: &AppState) -> StatusCode {
    let peer: SocketAddr = peer.parse().unwrap();
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"query": "{ site { id } }"}"#))
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    router(state.clone())
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn remote_callers_are_refused_except_for_health() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    for peer in ["10.1.2.3:4000", "[2001:db8::1]:4000", "192.168.1.1:80"] {
        assert_eq!(
            status_from(peer, "POST", "/.api/graphql", &state).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_from(peer, "GET", "/metrics", &state).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_from(
                peer,
                "GET",
                "/.internal/git/x/info/refs?service=git-upload-pack",
                &state
            )
            .await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_from(peer, "GET", "/-/healthz", &state).await,
            StatusCode::OK
        );
    }
    for peer in ["127.0.0.1:4000", "[::1]:4000", "[::ffff:127.0.0.1]:4000"] {
        assert_eq!(
            status_from(peer, "POST", "/.api/graphql", &state).await,
            StatusCode::OK
        );
        assert_eq!(
            status_from(peer, "GET", "/metrics", &state).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        status_from(
            "127.0.0.1:1",
            "GET",
            "/.internal/git/unknown/info/refs?service=git-upload-pack",
            &state
        )
        .await,
        StatusCode::NOT_FOUND,
        "repositories the instance does not know are not served"
    );
}
