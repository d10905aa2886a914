//! The style sheet and script, embedded in the binary and served at `/.assets/<name>?v=<hash>`:
//! a URL names one version, so browsers may keep it for a year.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const SCRIPT: &str = include_str!("../../assets/quarry.js");
const APP_STYLE: &str = include_str!("../../assets/quarry.css");

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: String,
    version: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let style = format!("{APP_STYLE}{}", quarry_highlight::CSS);
    [
        ("quarry.css", "text/css; charset=utf-8", style),
        (
            "quarry.js",
            "text/javascript; charset=utf-8",
            SCRIPT.to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, body)| Asset {
        name,
        content_type,
        version: fingerprint(&body),
        body,
    })
    .collect()
});

/// A short hash of the content (FNV-1a), enough to tell versions apart in a URL.
fn fingerprint(body: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}

/// The URL of an asset, naming its current version.
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => format!("/.assets/{name}?v={}", asset.version),
        None => format!("/.assets/{name}"),
    }
}

/// `GET /.assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let mut response = asset.body.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
