//! A repository's index on disk (manifest and shards), and the catalogue of open indexes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::IndexError;
use super::format::{FORMAT_VERSION, Shard, write_atomically};

const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardEntry {
    file: String,
    #[serde(default)]
    tombstones: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    commit: String,
    shards: Vec<ShardEntry>,
}

/// The open index of one repository at one commit.
#[derive(Debug)]
pub struct RepoIndex {
    pub commit: String,
    pub shards: Vec<(Arc<Shard>, HashSet<u32>)>,
    dir: PathBuf,
    files: Vec<String>,
}

impl RepoIndex {
    /// Opens the index in `dir`, or `None` when there is none. Shard files the manifest does not
    /// name (left by an interrupted build) are deleted.
    pub fn open(dir: &Path) -> Result<Option<RepoIndex>, IndexError> {
        Self::open_reusing(dir, None)
    }

    /// Opens the index in `dir`, taking shards that `previous` already has open from it rather
    /// than reading them again (an update keeps most of them).
    pub fn open_reusing(
        dir: &Path,
        previous: Option<&RepoIndex>,
    ) -> Result<Option<RepoIndex>, IndexError> {
        let manifest_path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IndexError::Io(format!("{}: {e}", manifest_path.display()))),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| IndexError::Corrupt(format!("{}: {e}", manifest_path.display())))?;
        if !(1..=FORMAT_VERSION).contains(&manifest.version) {
            return Err(IndexError::Version(manifest.version));
        }
        let mut shards = Vec::new();
        let mut files = Vec::new();
        for entry in &manifest.shards {
            let reused = previous.and_then(|p| {
                p.files
                    .iter()
                    .position(|f| f == &entry.file)
                    .map(|i| p.shards[i].0.clone())
            });
            let shard = match reused {
                Some(shard) => shard,
                None => Arc::new(Shard::open(&dir.join(&entry.file))?),
            };
            shards.push((shard, entry.tombstones.iter().copied().collect()));
            files.push(entry.file.clone());
        }
        remove_unlisted(dir, &files);
        Ok(Some(RepoIndex {
            commit: manifest.commit,
            shards,
            dir: dir.to_path_buf(),
            files,
        }))
    }

    /// The live documents: path → (object id, shard, document).
    pub fn live(&self) -> HashMap<&str, (&str, usize, u32)> {
        let mut live = HashMap::new();
        for (i, (shard, tombstones)) in self.shards.iter().enumerate() {
            for (doc, d) in shard.docs().iter().enumerate() {
                if !tombstones.contains(&(doc as u32)) {
                    live.insert(d.path.as_str(), (d.oid.as_str(), i, doc as u32));
                }
            }
        }
        live
    }

    /// Bytes of text indexed, tombstoned documents included.
    pub fn text_bytes(&self) -> u64 {
        self.shards.iter().map(|(s, _)| s.text_bytes()).sum()
    }

    pub fn shard_files(&self) -> &[String] {
        &self.files
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes a manifest naming `shards` (file name and tombstones) at `commit`, then deletes shard
/// files it no longer names.
pub(super) fn commit_manifest(
    dir: &Path,
    commit: &str,
    shards: Vec<(String, Vec<u32>)>,
) -> Result<(), IndexError> {
    let manifest = Manifest {
        version: FORMAT_VERSION,
        commit: commit.to_string(),
        shards: shards
            .iter()
            .map(|(file, tombstones)| ShardEntry {
                file: file.clone(),
                tombstones: tombstones.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| IndexError::Io(format!("encoding manifest: {e}")))?;
    write_atomically(&dir.join(MANIFEST), &[&text])?;
    let files: Vec<String> = shards.into_iter().map(|(file, _)| file).collect();
    remove_unlisted(dir, &files);
    Ok(())
}

fn remove_unlisted(dir: &Path, keep: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && !keep.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The indexes of all repositories, opened on first use and replaced when rebuilt.
pub struct IndexCatalog {
    root: PathBuf,
    open: Mutex<HashMap<i64, Arc<RepoIndex>>>,
    failed: Mutex<HashMap<i64, String>>,
    /// Changes whenever an index is opened, replaced or removed (see [`IndexCatalog::generation`]).
    generation: AtomicU64,
}

impl IndexCatalog {
    pub fn new(root: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(root)
            .map_err(|e| IndexError::Io(format!("{}: {e}", root.display())))?;
        Ok(IndexCatalog {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        })
    }

    /// Where a repository's index lives.
    pub fn dir(&self, repo_id: i64) -> PathBuf {
        self.root.join(repo_id.to_string())
    }

    /// A number that changes whenever what [`IndexCatalog::get`] answers for some repository
    /// may have changed, so that callers can keep what they worked out from it until then.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The repository's index, if one is on disk and readable.
    pub fn get(&self, repo_id: i64) -> Option<Arc<RepoIndex>> {
        if let Some(index) = lock(&self.open).get(&repo_id) {
            return Some(index.clone());
        }
        if lock(&self.failed).contains_key(&repo_id) {
            return None;
        }
        match RepoIndex::open(&self.dir(repo_id)) {
            Ok(Some(index)) => {
                let index = Arc::new(index);
                lock(&self.open).insert(repo_id, index.clone());
                self.changed();
                Some(index)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(repo_id, error = %e, "index not usable; it will be rebuilt");
                lock(&self.failed).insert(repo_id, e.to_string());
                self.changed();
                None
            }
        }
    }

    /// Puts a freshly written index in force.
    pub fn replace(&self, repo_id: i64, index: RepoIndex) {
        lock(&self.failed).remove(&repo_id);
        lock(&self.open).insert(repo_id, Arc::new(index));
        self.changed();
    }

    /// Deletes the indexes of repositories not in `repo_ids` (deleted repositories).
    pub fn retain(&self, repo_ids: &[i64]) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().parse::<i64>();
            if let Ok(id) = id
                && !repo_ids.contains(&id)
            {
                self.remove(id);
            }
        }
    }

    /// Forgets a repository's index and deletes it.
    pub fn remove(&self, repo_id: i64) {
        lock(&self.open).remove(&repo_id);
        lock(&self.failed).remove(&repo_id);
        self.changed();
        let _ = std::fs::remove_dir_all(self.dir(repo_id));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
