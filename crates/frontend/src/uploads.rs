//! `POST /.executors/scip/upload`: SCIP indexes from executors (the route and parameters of
//! Sourcegraph's `src code-intel upload`: `repository`, `commit`, `root`, `indexerName`,
//! `indexerVersion`, `associatedIndexId`; the body is the gzipped index). The index is checked to
//! be SCIP, stored in blob storage as `upload-<id>.scip.gz`, and recorded for processing.

use std::io::Read;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quarry_store::NewUpload;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

/// The largest gzipped index accepted in one request.
pub const MAX_UPLOAD: usize = 100 * 1024 * 1024;

/// The largest index once decompressed.
const MAX_UNCOMPRESSED: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadParams {
    repository: String,
    commit: String,
    #[serde(default)]
    root: String,
    #[serde(default)]
    indexer_name: String,
    #[serde(default)]
    indexer_version: String,
    associated_index_id: Option<i64>,
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Reads a protobuf varint.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a protobuf message: (number, wire type, bytes for length-delimited fields).
fn fields(bytes: &[u8]) -> Option<Vec<(u64, u64, &[u8])>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(bytes, &mut at)?;
                out.push((number, wire, &bytes[at..at]));
            }
            1 => at = at.checked_add(8).filter(|end| *end <= bytes.len())?,
            2 => {
                let length = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let end = at.checked_add(length).filter(|end| *end <= bytes.len())?;
                out.push((number, wire, &bytes[at..end]));
                at = end;
            }
            5 => at = at.checked_add(4).filter(|end| *end <= bytes.len())?,
            _ => return None,
        }
    }
    Some(out)
}

/// Checks that bytes are a SCIP index (metadata first, then documents and external symbols, all
/// well formed) and answers its tool's name and version.
pub fn scip_tool(bytes: &[u8]) -> Result<(String, String), String> {
    let top = fields(bytes).ok_or("not a SCIP index: the protobuf encoding is broken")?;
    let Some(&(1, 2, metadata)) = top.first() else {
        return Err("not a SCIP index: it does not start with its metadata".into());
    };
    if top
        .iter()
        .skip(1)
        .any(|(n, w, _)| !matches!((n, w), (2 | 3, 2)))
    {
        return Err("not a SCIP index: unexpected fields after the metadata".into());
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let tool = fields(metadata)
        .ok_or("not a SCIP index: broken metadata")?
        .into_iter()
        .find(|(n, w, _)| (*n, *w) == (2, 2))
        .and_then(|(_, _, info)| fields(info));
    let mut name = String::new();
    let mut version = String::new();
    for (number, wire, value) in tool.unwrap_or_default() {
        match (number, wire) {
            (1, 2) => name = text(value),
            (2, 2) => version = text(value),
            _ => {}
        }
    }
    Ok((name, version))
}

pub async fn upload(
    State(state): State<AppState>,
    Query(params): Query<UploadParams>,
    body: Bytes,
) -> Response {
    if !(params.commit.len() == 40 && params.commit.bytes().all(|b| b.is_ascii_hexdigit())) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "commit: must be a full 40-character commit id",
        );
    }
    if params.root.starts_with('/') || params.root.split('/').any(|c| c == "..") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "root: must be a path inside the repository",
        );
    }
    let repo = match state.store.repo_by_name(&params.repository).await {
        Ok(Some(repo)) => repo,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "repository: not found"),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if let Some(job_id) = params.associated_index_id {
        match state.store.job(job_id).await {
            Ok(Some(job)) if job.queue == "codeintel" && job.repository_id == Some(repo.id) => {}
            Ok(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "associatedIndexId: not an index job of this repository",
                );
            }
            Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    let mut index = Vec::new();
    let read = flate2::read::GzDecoder::new(&body[..])
        .take(MAX_UNCOMPRESSED + 1)
        .read_to_end(&mut index);
    if read.is_err() {
        return refuse(StatusCode::BAD_REQUEST, "the body is not a gzipped index");
    }
    if index.len() as u64 > MAX_UNCOMPRESSED {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the index is larger than 2 GiB",
        );
    }
    let (tool, tool_version) = match scip_tool(&index) {
        Ok(tool) => tool,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let indexer = if params.indexer_name.is_empty() {
        tool
    } else {
        params.indexer_name.clone()
    };
    if indexer.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "indexerName: required, as the index names no tool",
        );
    }
    let version = if params.indexer_version.is_empty() {
        tool_version
    } else {
        params.indexer_version.clone()
    };
    let id = match state
        .store
        .begin_upload(&NewUpload {
            repository_id: repo.id,
            commit: &params.commit,
            root: &params.root,
            indexer: &indexer,
            indexer_version: &version,
            associated_index_id: params.associated_index_id,
        })
        .await
    {
        Ok(id) => id,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if let Err(e) = state
        .blobs
        .put(&format!("upload-{id}.scip.gz"), &body)
        .await
    {
        let _ = state.store.fail_upload(id, &e.to_string()).await;
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    if let Err(e) = state
        .store
        .finish_upload(id, body.len() as i64, index.len() as i64)
        .await
    {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    Json(json!({ "id": id.to_string() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scip_indexes_are_told_from_other_bytes() {
        // metadata { tool_info { name: "t", version: "1" } }, then one document.
        let index = [
            0x0a, 0x08, 0x12, 0x06, 0x0a, 0x01, b't', 0x12, 0x01, b'1', 0x12, 0x00,
        ];
        assert_eq!(scip_tool(&index), Ok(("t".into(), "1".into())));
        assert!(scip_tool(b"{\"name\": \"json\"}").is_err());
        assert!(
            scip_tool(&[0x12, 0x00]).is_err(),
            "documents before metadata"
        );
        assert!(scip_tool(&[0x0a, 0x09, 0x00]).is_err(), "truncated");
    }
}
