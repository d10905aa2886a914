//! Writing OCI image layouts, for tests that need a real image without a registry: gzip
//! layers, an image configuration, a manifest and `index.json` with the tag annotation, as
//! `skopeo copy ... oci:dir:tag` would leave them.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One entry of a layer.
pub enum Entry {
    Dir(String),
    File(String, Vec<u8>, u32),
    Symlink(String, String),
    /// Deletes a lower layer's entry.
    Whiteout(String),
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn write_blob(dir: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let digest = digest(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes)?;
    Ok(digest)
}

fn layer_tar(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty())?;
            }
            Entry::File(path, content, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, content.as_slice())?;
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
            Entry::Whiteout(path) => {
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                let marker = if parent.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{parent}/.wh.{name}")
                };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_data(&mut header, marker, std::io::empty())?;
            }
        }
    }
    builder.into_inner()
}

/// Adds an image tagged `tag` to the OCI layout at `dir` (made when missing); answers the
/// manifest's digest.
pub fn add_image(
    dir: &Path,
    tag: &str,
    layers: &[Vec<Entry>],
    env: &[&str],
) -> std::io::Result<String> {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for entries in layers {
        let tar = layer_tar(entries)?;
        diff_ids.push(digest(&tar));
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&tar)?;
        let compressed = gzip.finish()?;
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": write_blob(dir, &compressed)?,
            "size": compressed.len(),
        }));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "os": "linux",
        "config": { "Env": env },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": write_blob(dir, &config)?,
            "size": config.len(),
        },
        "layers": descriptors,
    }))?;
    let manifest_digest = write_blob(dir, &manifest)?;
    let index_path = dir.join("index.json");
    let mut index: Value = std::fs::read(&index_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| json!({ "schemaVersion": 2, "manifests": [] }));
    if let Some(manifests) = index["manifests"].as_array_mut() {
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }));
    }
    std::fs::write(&index_path, serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(manifest_digest)
}

/// Debian's static busybox (package `busybox-static`), the smallest real userland to put in
/// an image; None when it is not installed.
pub fn static_busybox() -> Option<Vec<u8>> {
    let bytes = std::fs::read("/bin/busybox").ok()?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]).into_owned();
    // A dynamically linked busybox would need the host's libraries inside the image.
    (!text.contains("ld-linux")).then_some(bytes)
}

/// A two-layer busybox image (`/bin/sh` and the usual tools, `/etc/image-release`), whose
/// second layer deletes `/etc/removed`; its environment sets `PATH` and `IMAGE_GREETING`.
pub fn add_busybox_image(dir: &Path, tag: &str, busybox: &[u8]) -> std::io::Result<String> {
    let mut base = vec![
        Entry::Dir("bin".into()),
        Entry::Dir("etc".into()),
        Entry::File("bin/busybox".into(), busybox.to_vec(), 0o755),
        Entry::File(
            "etc/image-release".into(),
            b"quarry test image\n".to_vec(),
            0o644,
        ),
        Entry::File("etc/removed".into(), b"lower layer\n".to_vec(), 0o644),
    ];
    let tools = [
        "sh", "cat", "echo", "id", "ls", "touch", "test", "env", "wc", "sleep",
    ];
    for tool in tools {
        base.push(Entry::Symlink(format!("bin/{tool}"), "busybox".into()));
    }
    let upper = vec![Entry::Whiteout("etc/removed".into())];
    add_image(
        dir,
        tag,
        &[base, upper],
        &["PATH=/bin", "IMAGE_GREETING=from the image"],
    )
}
