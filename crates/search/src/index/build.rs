//! Building and updating a repository's index from git: list the commit's files, read only the
//! blobs that are new since the indexed commit, and write them as a shard.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_gitserver::{GitService, TreeEntry};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::IndexError;
use super::format::{FLAG_BINARY, FLAG_TOO_LARGE, ShardBuilder};
use super::repo::{IndexCatalog, RepoIndex, commit_manifest};

/// A shard holds at most about this much text; larger repositories get several, which are
/// searched in parallel.
const SHARD_TEXT_LIMIT: u64 = 64 * 1024 * 1024;
/// More shards than this, or more changed than unchanged documents, means a rebuild.
const MAX_SHARDS: usize = 8;
/// How much of a file decides whether it is binary.
const BINARY_PROBE: usize = 8 * 1024;

/// What one indexing run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Documents written to new shards.
    pub documents: usize,
    /// Documents of older shards marked as gone.
    pub tombstoned: usize,
    /// Bytes of text indexed by this run.
    pub text_bytes: u64,
    /// Whether the whole repository was indexed anew.
    pub full: bool,
    pub duration: Duration,
}

/// Builds indexes from a gitserver.
pub struct IndexBuilder {
    git: Arc<dyn GitService>,
    catalog: Arc<IndexCatalog>,
    max_file_size: u64,
}

impl IndexBuilder {
    pub fn new(git: Arc<dyn GitService>, catalog: Arc<IndexCatalog>, max_file_size: u64) -> Self {
        IndexBuilder {
            git,
            catalog,
            max_file_size,
        }
    }

    pub fn catalog(&self) -> &Arc<IndexCatalog> {
        &self.catalog
    }

    /// Brings a repository's index to `commit`, reading only what changed since the last one.
    pub async fn index(
        &self,
        repo_id: i64,
        repo: &str,
        commit: &str,
    ) -> Result<BuildStats, IndexError> {
        let started = Instant::now();
        let current = self.catalog.get(repo_id);
        if current.as_ref().is_some_and(|c| c.commit == commit) {
            return Ok(BuildStats::default());
        }
        let files = self
            .git
            .list_files(repo, commit)
            .await
            .map_err(|e| IndexError::Git(e.to_string()))?;
        let dir = self.catalog.dir(repo_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| IndexError::Io(format!("{}: {e}", dir.display())))?;

        // Which documents are new, and which of the indexed ones are gone or changed.
        let mut kept: Vec<(String, Vec<u32>)> = Vec::new();
        let mut tombstoned = 0;
        let mut added: Vec<&TreeEntry> = files.iter().collect();
        let mut full = true;
        if let Some(current) = &current {
            let live = current.live();
            let wanted: HashMap<&str, &str> = files
                .iter()
                .map(|f| (f.path.as_str(), f.oid.as_str()))
                .collect();
            let new: Vec<&TreeEntry> = files
                .iter()
                .filter(|f| {
                    live.get(f.path.as_str()).map(|(oid, _, _)| *oid) != Some(f.oid.as_str())
                })
                .collect();
            let mut tombstones: Vec<Vec<u32>> = current
                .shards
                .iter()
                .map(|(_, t)| t.iter().copied().collect())
                .collect();
            for (path, (oid, shard, doc)) in &live {
                if wanted.get(path) != Some(oid) {
                    tombstones[*shard].push(*doc);
                    tombstoned += 1;
                }
            }
            let incremental = current.shards.len() < MAX_SHARDS
                && (new.len() + tombstoned) * 2 <= live.len().max(1);
            if incremental {
                full = false;
                added = new;
                kept = current
                    .shard_files()
                    .iter()
                    .cloned()
                    .zip(tombstones.into_iter().map(|mut t| {
                        t.sort_unstable();
                        t
                    }))
                    .collect();
            } else {
                tombstoned = 0;
            }
        }

        let max_file_size = self.max_file_size;
        let wanted: Vec<&TreeEntry> = added
            .iter()
            .copied()
            .filter(|f| f.size.unwrap_or(0) <= max_file_size)
            .collect();
        let oids: Vec<String> = wanted.iter().map(|f| f.oid.clone()).collect();
        let stream = if oids.is_empty() {
            None
        } else {
            Some(
                self.git
                    .read_blobs(repo, oids)
                    .await
                    .map_err(|e| IndexError::Git(e.to_string()))?,
            )
        };
        let added: Vec<TreeEntry> = added.into_iter().cloned().collect();
        let prefix: String = commit.chars().take(12).collect();
        let dir_for_build = dir.clone();
        let reader = stream.map(|s| SyncIoBridge::new(StreamReader::new(s)));
        let (new_files, documents, text_bytes) = tokio::task::spawn_blocking(move || {
            write_shards(&dir_for_build, &prefix, &added, reader, max_file_size)
        })
        .await
        .map_err(|e| IndexError::Io(format!("index build stopped: {e}")))??;

        let mut shards = kept;
        shards.extend(new_files.into_iter().map(|file| (file, Vec::new())));
        commit_manifest(&dir, commit, shards)?;
        let index = RepoIndex::open_reusing(&dir, current.as_deref())?
            .ok_or_else(|| IndexError::Corrupt("manifest vanished after writing".into()))?;
        self.catalog.replace(repo_id, index);
        Ok(BuildStats {
            documents,
            tombstoned,
            text_bytes,
            full,
            duration: started.elapsed(),
        })
    }
}

/// Reads `git cat-file --batch` output for the files small enough to index (in order) and
/// writes the shards; returns their file names, the document count and the text indexed.
fn write_shards<R: Read>(
    dir: &std::path::Path,
    prefix: &str,
    files: &[TreeEntry],
    reader: Option<R>,
    max_file_size: u64,
) -> Result<(Vec<String>, usize, u64), IndexError> {
    let mut reader = reader.map(BufReader::new);
    let mut written = Vec::new();
    let mut builder = ShardBuilder::default();
    let mut text_bytes = 0u64;
    let mut header = Vec::new();
    let mut content = Vec::new();
    let flush = |builder: ShardBuilder, written: &mut Vec<String>| -> Result<(), IndexError> {
        let name = format!("{prefix}-{}-{:08x}.qix", written.len(), fastrand::u32(..));
        builder.write(&dir.join(&name))?;
        written.push(name);
        Ok(())
    };
    for file in files {
        let size = file.size.unwrap_or(0);
        let (flags, text): (u8, &[u8]) = if size > max_file_size {
            (FLAG_TOO_LARGE, &[])
        } else {
            let reader = reader
                .as_mut()
                .ok_or_else(|| IndexError::Git("no blob stream".into()))?;
            header.clear();
            reader
                .read_until(b'\n', &mut header)
                .map_err(|e| IndexError::Git(format!("reading blobs: {e}")))?;
            let line = String::from_utf8_lossy(&header);
            let mut parts = line.split_whitespace();
            let (oid, kind, length) = (parts.next(), parts.next(), parts.next());
            if oid != Some(file.oid.as_str()) || kind != Some("blob") {
                return Err(IndexError::Git(format!(
                    "unexpected blob header {:?} for {}",
                    line.trim(),
                    file.path
                )));
            }
            let length: usize = length
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| IndexError::Git(format!("bad blob size in {:?}", line.trim())))?;
            content.resize(length + 1, 0);
            reader
                .read_exact(&mut content)
                .map_err(|e| IndexError::Git(format!("reading {}: {e}", file.path)))?;
            content.truncate(length);
            if content[..content.len().min(BINARY_PROBE)].contains(&0) {
                (FLAG_BINARY, &[])
            } else {
                (0, &content[..])
            }
        };
        text_bytes += text.len() as u64;
        // A full builder is written before the next is made, so the next reuses its memory.
        if !builder.is_empty() && builder.is_full(text.len()) {
            flush(builder, &mut written)?;
            builder = ShardBuilder::default();
        }
        builder.add(file.path.clone(), file.oid.clone(), size, flags, text)?;
        if builder.text_bytes() >= SHARD_TEXT_LIMIT {
            flush(builder, &mut written)?;
            builder = ShardBuilder::default();
        }
    }
    if !builder.is_empty() || written.is_empty() {
        flush(builder, &mut written)?;
    }
    Ok((written, files.len(), text_bytes))
}
