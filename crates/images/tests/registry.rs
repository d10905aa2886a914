//! Pulling images over the distribution protocol: a registry on a loopback port serves an OCI
//! layout the way registries do (token challenge, manifests by tag and digest, blobs), and the
//! store pulls, checks, unpacks and caches; mirrors stand in for Docker Hub; a blob that does
//! not match its digest leaves nothing behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quarry_images::{ImageStore, Options, Provenance, testing};

/// A registry serving one OCI layout under any repository name.
#[derive(Clone)]
struct Registry {
    layout: PathBuf,
    address: String,
    tokens_issued: Arc<AtomicUsize>,
    /// Flip a byte of every layer sent.
    corrupt: Arc<AtomicBool>,
}

fn blob(layout: &Path, digest: &str) -> Option<Vec<u8>> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:")?),
    )
    .ok()
}

async fn token(
    State(registry): State<Registry>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    registry.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let scope = query.get("scope").cloned().unwrap_or_default();
    axum::Json(serde_json::json!({ "token": format!("granted {scope}") })).into_response()
}

async fn v2(State(registry): State<Registry>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches("/v2/");
    let (repository, kind, reference) = if let Some((r, rest)) = path.split_once("/manifests/") {
        (r, "manifests", rest)
    } else if let Some((r, rest)) = path.split_once("/blobs/") {
        (r, "blobs", rest)
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let expected = format!("Bearer granted repository:{repository}:pull");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        let challenge = format!(
            "Bearer realm=\"http://{}/token\",service=\"test\",scope=\"repository:{repository}:pull\"",
            registry.address
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", challenge)],
            "authentication required",
        )
            .into_response();
    }
    let digest = if kind == "manifests" && !reference.starts_with("sha256:") {
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(registry.layout.join("index.json")).unwrap_or_default(),
        )
        .unwrap_or_default();
        let found = index["manifests"].as_array().and_then(|all| {
            all.iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
                .and_then(|m| m["digest"].as_str().map(str::to_string))
        });
        match found {
            Some(digest) => digest,
            None => return (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").into_response(),
        }
    } else {
        reference.to_string()
    };
    let Some(mut bytes) = blob(&registry.layout, &digest) else {
        return (StatusCode::NOT_FOUND, "BLOB_UNKNOWN").into_response();
    };
    if kind == "blobs" && registry.corrupt.load(Ordering::SeqCst) && bytes[..2] == [0x1f, 0x8b] {
        let last = bytes.len() - 9;
        bytes[last] ^= 0xff;
    }
    let media_type = if kind == "manifests" {
        "application/vnd.oci.image.manifest.v1+json"
    } else {
        "application/octet-stream"
    };
    ([("content-type", media_type)], bytes).into_response()
}

async fn start_registry(layout: PathBuf) -> Registry {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let registry = Registry {
        layout,
        address,
        tokens_issued: Arc::default(),
        corrupt: Arc::default(),
    };
    let app = Router::new()
        .route("/token", get(token))
        .fallback(get(v2))
        .with_state(registry.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    registry
}

/// Debian's static busybox; CI (`QUARRY_REQUIRE_TOOLS`) must have it.
fn busybox() -> Option<Vec<u8>> {
    let found = testing::static_busybox();
    assert!(
        found.is_some() || std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "the image tests need Debian's busybox-static; QUARRY_REQUIRE_TOOLS is set"
    );
    if found.is_none() {
        eprintln!("skipping: the image tests need Debian's busybox-static");
    }
    found
}

fn store(cache: &Path, mirrors: Vec<String>) -> ImageStore {
    ImageStore::new(Options {
        cache_dir: cache.to_path_buf(),
        mirrors,
        ..Options::default()
    })
    .expect("store")
}

#[tokio::test]
async fn images_are_pulled_checked_unpacked_and_cached() {
    let Some(busybox) = busybox() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let digest = testing::add_busybox_image(&layout, "v1", &busybox).expect("layout");
    let registry = start_registry(layout).await;
    let cache = work.path().join("cache");
    let images = store(&cache, Vec::new());

    let name = format!("{}/tools/busybox:v1", registry.address);
    let (image, provenance) = images.get(&name).await.expect("pull");
    assert_eq!(image.digest, digest);
    assert!(
        matches!(provenance, Provenance::Unpacked { layers: 2, bytes } if bytes as usize > busybox.len()),
        "{provenance:?}"
    );
    assert!(image.rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(image.rootfs.join("bin/sh")).expect("link"),
        Path::new("busybox")
    );
    assert!(
        !image.rootfs.join("etc/removed").exists(),
        "the upper layer's whiteout applies"
    );
    assert!(
        image
            .env
            .contains(&"IMAGE_GREETING=from the image".to_string())
    );
    assert_eq!(registry.tokens_issued.load(Ordering::SeqCst), 1);

    // Again, and by digest: from the cache, one unpacked copy.
    let (again, provenance) = images.get(&name).await.expect("again");
    assert_eq!((again, provenance), (image.clone(), Provenance::Cached));
    let by_digest = format!("{}/tools/busybox@{digest}", registry.address);
    assert_eq!(
        images.get(&by_digest).await.expect("digest").1,
        Provenance::Cached
    );
    assert_eq!(
        std::fs::read_dir(cache.join("images"))
            .expect("cache")
            .count(),
        1
    );

    // A digest the registry does not have, and a tag it does not have.
    let missing = format!(
        "{}/tools/busybox@sha256:{}",
        registry.address,
        "0".repeat(64)
    );
    let error = images.get(&missing).await.expect_err("missing").to_string();
    assert!(error.contains("404"), "{error}");
    let error = images
        .get(&format!("{}/tools/busybox:nope", registry.address))
        .await
        .expect_err("no tag")
        .to_string();
    assert!(
        error.contains("404") && error.contains("MANIFEST_UNKNOWN"),
        "{error}"
    );

    // The same image from an OCI layout directory is the same digest, so the same cache entry.
    let from_layout = format!("oci:{}:v1", registry.layout.display());
    assert_eq!(
        images.get(&from_layout).await.expect("layout").1,
        Provenance::Cached
    );
}

#[tokio::test]
async fn docker_hub_names_go_through_the_mirror() {
    let Some(busybox) = busybox() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    testing::add_busybox_image(&layout, "stable", &busybox).expect("layout");
    let registry = start_registry(layout).await;
    let images = store(
        &work.path().join("cache"),
        vec![format!("http://{}", registry.address)],
    );
    let (image, _) = images
        .get("busybox:stable")
        .await
        .expect("through the mirror");
    assert!(image.rootfs.join("bin/busybox").is_file());
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_leaves_nothing() {
    let Some(busybox) = busybox() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    testing::add_busybox_image(&layout, "v1", &busybox).expect("layout");
    let registry = start_registry(layout).await;
    registry.corrupt.store(true, Ordering::SeqCst);
    let cache = work.path().join("cache");
    let images = store(&cache, Vec::new());
    let error = images
        .get(&format!("{}/tools/busybox:v1", registry.address))
        .await
        .expect_err("corrupt")
        .to_string();
    assert!(error.contains("digest"), "{error}");
    for dir in ["images", "tmp"] {
        assert_eq!(
            std::fs::read_dir(cache.join(dir)).expect("dir").count(),
            0,
            "{dir} is empty"
        );
    }
}
