//! Container images for the executors' sandbox: a step's `image` names an OCI image, pulled from
//! a registry (Docker's names, Docker Hub by default, through mirrors when configured) or read
//! from an OCI layout directory (`oci:/dir[:tag]`), and unpacked into a root file system that
//! the sandbox mounts read-only.
//!
//! Owns: image references, the read side of the distribution protocol with token
//! authentication, OCI layouts, choosing the host's platform from a multi-platform index,
//! applying layers with their whiteouts, and the cache of unpacked images.
//!
//! Invariants: every manifest, configuration and layer is checked against its SHA-256 digest
//! before it is used; an image is unpacked once per manifest digest, into a directory that
//! appears whole (renamed into place) or not at all, so a crash mid-unpack leaves nothing a step
//! could run on; no layer writes outside its image's root (`unpack.rs`).

pub mod reference;
mod registry;
#[cfg(feature = "testing")]
pub mod testing;
mod unpack;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use reference::{Reference, Version};
pub use unpack::{LayerStats, apply_layer, resolve_in_root};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image reference {0}")]
    Reference(String),
    #[error("registry: {0}")]
    Registry(String),
    #[error("OCI layout {0}")]
    Layout(String),
    #[error("image: {0}")]
    Manifest(String),
    #[error("layer: {0}")]
    Layer(String),
    #[error("image cache: {0}")]
    Cache(String),
}

/// Where images come from and where they are kept.
#[derive(Debug, Clone)]
pub struct Options {
    pub cache_dir: PathBuf,
    /// Registry mirrors tried first for Docker Hub images (`EXECUTOR_DOCKER_REGISTRY_MIRROR_URL`).
    pub mirrors: Vec<String>,
    /// A Docker config whose `auths` hold registry credentials (`EXECUTOR_DOCKER_AUTH_CONFIG`).
    pub auth_config: Option<String>,
    /// The most bytes of file contents one image may unpack to (`EXECUTOR_IMAGE_MAX_SIZE`).
    pub max_unpacked_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_dir: PathBuf::new(),
            mirrors: Vec::new(),
            auth_config: None,
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
        }
    }
}

/// The default allowance of an unpacked image: large toolchains fit, a decompression bomb does
/// not fill the disk.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 32 << 30;

/// An unpacked image, ready to be a step's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The manifest's digest.
    pub digest: String,
    pub rootfs: PathBuf,
    /// The image configuration's `Env` (`KEY=value`).
    pub env: Vec<String>,
}

/// How an image was got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Cached,
    Unpacked { layers: usize, bytes: u64 },
}

/// A content descriptor of OCI's image specification.
#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

/// A manifest or an index (a multi-platform list), told apart by their fields.
#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Debug, Deserialize)]
struct RunConfig {
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
}

/// The annotation that names a manifest's tag in an OCI layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The host's architecture as OCI names it.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Where an image's blobs are read from.
enum Source<'a> {
    Layout(&'a Path),
    Registry { base: String, repository: &'a str },
}

pub struct ImageStore {
    cache: PathBuf,
    max_unpacked_bytes: u64,
    mirrors: Vec<String>,
    registry: registry::Client,
    /// One unpack per digest at a time within this process (across processes the rename decides).
    unpacking: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn cache_error(path: &Path, e: impl std::fmt::Display) -> ImageError {
    ImageError::Cache(format!("{}: {e}", path.display()))
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl ImageStore {
    pub fn new(options: Options) -> Result<ImageStore, ImageError> {
        let credentials = match &options.auth_config {
            Some(text) => registry::parse_auth_config(text)?,
            None => HashMap::new(),
        };
        for dir in ["images", "tmp"] {
            let path = options.cache_dir.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| cache_error(&path, e))?;
        }
        let store = ImageStore {
            cache: options.cache_dir,
            max_unpacked_bytes: options.max_unpacked_bytes,
            mirrors: options
                .mirrors
                .iter()
                .map(|m| m.trim_end_matches('/').to_string())
                .collect(),
            registry: registry::Client::new(credentials)?,
            unpacking: Mutex::new(HashMap::new()),
        };
        store.remove_abandoned_work();
        Ok(store)
    }

    /// Unpacks left by a process that died mid-way (older than an hour, so none in progress).
    fn remove_abandoned_work(&self) {
        let Ok(entries) = std::fs::read_dir(self.cache.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if old {
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn unpacked_dir(&self, digest: &str) -> PathBuf {
        self.cache
            .join("images")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// The image a step names, unpacked (from the cache when it was before).
    pub async fn get(&self, text: &str) -> Result<(Image, Provenance), ImageError> {
        match Reference::parse(text)? {
            Reference::Layout { dir, version } => {
                let (manifest, digest) = layout_manifest(&dir, version.as_ref())?;
                self.materialize(&Source::Layout(&dir), &manifest, &digest)
                    .await
            }
            Reference::Registry {
                registry,
                repository,
                version,
            } => {
                let mut bases = Vec::new();
                if registry == reference::DOCKER_HUB {
                    bases.extend(self.mirrors.iter().cloned());
                }
                bases.push(Reference::registry_url(&registry));
                let mut failures = Vec::new();
                for base in bases {
                    let source = Source::Registry {
                        base: base.clone(),
                        repository: &repository,
                    };
                    let attempt = async {
                        let (manifest, digest) =
                            self.registry_manifest(&base, &repository, &version).await?;
                        self.materialize(&source, &manifest, &digest).await
                    };
                    match attempt.await {
                        Ok(image) => return Ok(image),
                        Err(e) => {
                            tracing::warn!(image = text, registry = %base, error = %e, "cannot pull from this registry");
                            failures.push(e.to_string());
                        }
                    }
                }
                // Every place tried says why, the mirrors' answers first.
                Err(ImageError::Registry(format!(
                    "cannot pull {text}: {}",
                    failures.join("; ")
                )))
            }
        }
    }

    /// The platform manifest for a registry reference, and its digest.
    async fn registry_manifest(
        &self,
        base: &str,
        repository: &str,
        version: &Version,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let wanted = match version {
            Version::Tag(tag) => tag.as_str(),
            Version::Digest(digest) => digest.as_str(),
        };
        let (body, digest) = self.registry.manifest(base, repository, wanted).await?;
        if let Version::Digest(expected) = version
            && &digest != expected
        {
            return Err(ImageError::Registry(format!(
                "{repository}@{expected}: the registry sent a manifest whose digest is {digest}"
            )));
        }
        match choose_platform(&body)? {
            None => Ok((body, digest)),
            Some(descriptor) => {
                let (body, digest) = self
                    .registry
                    .manifest(base, repository, &descriptor.digest)
                    .await?;
                if digest != descriptor.digest {
                    return Err(ImageError::Registry(format!(
                        "{repository}@{}: the registry sent a manifest whose digest is {digest}",
                        descriptor.digest
                    )));
                }
                Ok((body, digest))
            }
        }
    }

    /// The unpacked image of a manifest, unpacking it first when it is not in the cache.
    async fn materialize(
        &self,
        source: &Source<'_>,
        manifest: &[u8],
        digest: &str,
    ) -> Result<(Image, Provenance), ImageError> {
        let target = self.unpacked_dir(digest);
        if let Some(image) = read_unpacked(&target) {
            return Ok((image, Provenance::Cached));
        }
        let lock = self
            .unpacking
            .lock()
            .map(|mut locks| locks.entry(digest.to_string()).or_default().clone())
            .map_err(|_| ImageError::Cache("the unpack lock is poisoned".into()))?;
        let _held = lock.lock().await;
        if let Some(image) = read_unpacked(&target) {
            return Ok((image, Provenance::Cached));
        }
        let document: Document = serde_json::from_slice(manifest)
            .map_err(|e| ImageError::Manifest(format!("{digest}: {e}")))?;
        let (Some(config), Some(layers)) = (document.config, document.layers) else {
            return Err(ImageError::Manifest(format!(
                "{digest}: not an image manifest (schema 2 or OCI) with a config and layers"
            )));
        };
        let mut suffix = [0u8; 6];
        let _ = getrandom::fill(&mut suffix);
        let work = self.cache.join("tmp").join(format!(
            "{}-{}",
            digest.trim_start_matches("sha256:"),
            hex::encode(suffix)
        ));
        let outcome = self
            .unpack_into(source, digest, &config, &layers, &work)
            .await;
        match outcome {
            Ok((image, bytes)) => {
                if let Err(e) = std::fs::rename(&work, &target) {
                    // Another executor sharing the cache may have finished first.
                    let _ = std::fs::remove_dir_all(&work);
                    if read_unpacked(&target).is_none() {
                        return Err(cache_error(&target, e));
                    }
                }
                let image = Image {
                    rootfs: target.join("rootfs"),
                    ..image
                };
                Ok((
                    image,
                    Provenance::Unpacked {
                        layers: layers.len(),
                        bytes,
                    },
                ))
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&work);
                Err(e)
            }
        }
    }

    async fn unpack_into(
        &self,
        source: &Source<'_>,
        digest: &str,
        config: &Descriptor,
        layers: &[Descriptor],
        work: &Path,
    ) -> Result<(Image, u64), ImageError> {
        let rootfs = work.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| cache_error(&rootfs, e))?;
        let config_file = work.join("config.blob");
        self.fetch_blob(source, config, &config_file).await?;
        let config_bytes = std::fs::read(&config_file).map_err(|e| cache_error(&config_file, e))?;
        let _ = std::fs::remove_file(&config_file);
        let parsed: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::Manifest(format!("{}: configuration: {e}", config.digest)))?;
        let mut bytes = 0u64;
        for (index, layer) in layers.iter().enumerate() {
            let file = match source {
                Source::Layout(dir) => blob_path(dir, &layer.digest)?,
                Source::Registry { .. } => {
                    let file = work.join(format!("layer-{index}"));
                    self.fetch_blob(source, layer, &file).await?;
                    file
                }
            };
            let (root, path, expected) = (rootfs.clone(), file.clone(), layer.digest.clone());
            let budget = self.max_unpacked_bytes.saturating_sub(bytes);
            let stats = tokio::task::spawn_blocking(move || {
                unpack_layer_file(&root, &path, &expected, budget)
            })
            .await
            .map_err(|e| ImageError::Layer(e.to_string()))??;
            bytes += stats.bytes;
            if matches!(source, Source::Registry { .. }) {
                let _ = std::fs::remove_file(&file);
            }
        }
        let image = Image {
            digest: digest.to_string(),
            rootfs: rootfs.clone(),
            env: parsed.config.and_then(|c| c.env).unwrap_or_default(),
        };
        let record = serde_json::to_vec(&image).map_err(|e| cache_error(work, e))?;
        std::fs::write(work.join("image.json"), record).map_err(|e| cache_error(work, e))?;
        Ok((image, bytes))
    }

    /// A blob into `target`, checked against its digest (layouts are read in place otherwise).
    async fn fetch_blob(
        &self,
        source: &Source<'_>,
        descriptor: &Descriptor,
        target: &Path,
    ) -> Result<(), ImageError> {
        match source {
            Source::Layout(dir) => {
                let path = blob_path(dir, &descriptor.digest)?;
                let bytes = std::fs::read(&path)
                    .map_err(|e| ImageError::Layout(format!("{}: {e}", path.display())))?;
                if digest_of(&bytes) != descriptor.digest {
                    return Err(ImageError::Layout(format!(
                        "{}: the blob does not match its digest",
                        path.display()
                    )));
                }
                std::fs::write(target, bytes).map_err(|e| cache_error(target, e))
            }
            Source::Registry { base, repository } => {
                self.registry
                    .blob(
                        base,
                        repository,
                        &descriptor.digest,
                        descriptor.size,
                        target,
                    )
                    .await
            }
        }
    }
}

/// An image unpacked before, if its directory is complete.
fn read_unpacked(dir: &Path) -> Option<Image> {
    let record = std::fs::read(dir.join("image.json")).ok()?;
    let image: Image = serde_json::from_slice(&record).ok()?;
    Some(Image {
        rootfs: dir.join("rootfs"),
        ..image
    })
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let hex = reference::check_digest(digest)
        .map_err(|why| ImageError::Layout(format!("{}: {why}", layout.display())))?;
    Ok(layout
        .join("blobs/sha256")
        .join(hex.trim_start_matches("sha256:")))
}

/// Reads a layer file (plain or gzip-compressed tar), checks its digest as it goes, applies it.
fn unpack_layer_file(
    root: &Path,
    path: &Path,
    digest: &str,
    budget: u64,
) -> Result<LayerStats, ImageError> {
    struct Hashing<R> {
        inner: R,
        hasher: Sha256,
    }
    impl<R: Read> Read for Hashing<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hasher.update(&buf[..n]);
            Ok(n)
        }
    }
    let open = || {
        std::fs::File::open(path).map_err(|e| ImageError::Layer(format!("{}: {e}", path.display())))
    };
    let mut magic = [0u8; 4];
    let read = open()?.read(&mut magic).unwrap_or(0);
    let mut reader = Hashing {
        inner: std::io::BufReader::new(open()?),
        hasher: Sha256::new(),
    };
    let stats = match &magic[..read.min(4)] {
        [0x1f, 0x8b, ..] => {
            apply_layer(root, flate2::read::MultiGzDecoder::new(&mut reader), budget)?
        }
        [0x28, 0xb5, 0x2f, 0xfd] => {
            return Err(ImageError::Layer(format!(
                "{digest}: zstd-compressed layers are not supported; use gzip"
            )));
        }
        _ => apply_layer(root, &mut reader, budget)?,
    };
    // Whatever the tar reader left unread (padding) still counts towards the digest.
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|e| ImageError::Layer(format!("{}: {e}", path.display())))?;
    let actual = format!("sha256:{}", hex::encode(reader.hasher.finalize()));
    if actual != digest {
        return Err(ImageError::Layer(format!(
            "{digest}: the layer's content has digest {actual}"
        )));
    }
    Ok(stats)
}

/// The manifest of the host's platform when `body` is an index; None when it is a manifest.
fn choose_platform(body: &[u8]) -> Result<Option<Descriptor>, ImageError> {
    let document: Document = serde_json::from_slice(body)
        .map_err(|e| ImageError::Manifest(format!("not a manifest or index: {e}")))?;
    let Some(manifests) = document.manifests else {
        return Ok(None);
    };
    let architecture = host_architecture();
    let matching = manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == architecture)
    });
    match matching {
        Some(descriptor) => Ok(Some(descriptor.clone())),
        // An index whose entries name no platform (an OCI layout's): the only entry.
        None if manifests.len() == 1 && manifests[0].platform.is_none() => {
            Ok(Some(manifests[0].clone()))
        }
        None => {
            let offered: Vec<String> = manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            Err(ImageError::Manifest(format!(
                "no linux/{architecture} image in the index (it has: {})",
                offered.join(", ")
            )))
        }
    }
}

/// The platform manifest an OCI layout names, and its digest.
fn layout_manifest(dir: &Path, version: Option<&Version>) -> Result<(Vec<u8>, String), ImageError> {
    let layout_error = |why: String| ImageError::Layout(format!("{}: {why}", dir.display()));
    let index_bytes = std::fs::read(dir.join("index.json"))
        .map_err(|e| layout_error(format!("index.json: {e}")))?;
    let index: Document = serde_json::from_slice(&index_bytes)
        .map_err(|e| layout_error(format!("index.json: {e}")))?;
    let manifests = index.manifests.unwrap_or_default();
    let chosen = match version {
        Some(Version::Tag(tag)) => manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME) == Some(tag)),
        Some(Version::Digest(digest)) => manifests.iter().find(|m| &m.digest == digest),
        None if manifests.len() == 1 => manifests.first(),
        None => {
            let tags: Vec<&str> = manifests
                .iter()
                .filter_map(|m| m.annotations.get(REF_NAME).map(String::as_str))
                .collect();
            return Err(layout_error(format!(
                "holds {} images; name one by tag ({})",
                manifests.len(),
                tags.join(", ")
            )));
        }
    };
    let Some(chosen) = chosen.cloned() else {
        return Err(layout_error(format!(
            "has no image {}",
            match version {
                Some(Version::Tag(tag)) => format!("tagged {tag:?}"),
                Some(Version::Digest(digest)) => digest.clone(),
                None => "at all".into(),
            }
        )));
    };
    let mut descriptor = chosen;
    // Nested indexes (multi-platform images in a layout) are followed to the host's manifest.
    for _ in 0..4 {
        let path = blob_path(dir, &descriptor.digest)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| layout_error(format!("{}: {e}", descriptor.digest)))?;
        if bytes.len() > registry::MAX_MANIFEST || digest_of(&bytes) != descriptor.digest {
            return Err(layout_error(format!(
                "{}: the blob does not match its digest",
                descriptor.digest
            )));
        }
        match choose_platform(&bytes)? {
            None => return Ok((bytes, descriptor.digest)),
            Some(next) => descriptor = next,
        }
    }
    Err(layout_error("indexes nested too deeply".into()))
}

/// Time spent, for the step's log.
pub fn describe(text: &str, image: &Image, provenance: Provenance, took: Instant) -> String {
    match provenance {
        Provenance::Cached => format!("quarry: image {text} ({}) from the cache\n", image.digest),
        Provenance::Unpacked { layers, bytes } => format!(
            "quarry: image {text} ({}): {layers} layers, {bytes} bytes unpacked in {} ms\n",
            image.digest,
            took.elapsed().as_millis()
        ),
    }
}
