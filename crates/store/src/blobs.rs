//! Blob storage for large artifacts (SCIP uploads), by key. This is the seam where object storage
//! (S3, GCS) goes for a cluster; one process uses a directory.
//!
//! Invariant: a blob at its key is complete (written aside, flushed, renamed into place).

use std::path::{Path, PathBuf};

use crate::StoreError;

pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Blobs in this directory (created when missing).
    pub fn open(root: &Path) -> Result<BlobStore, StoreError> {
        std::fs::create_dir_all(root.join(".partial"))
            .map_err(|e| StoreError::Backend(format!("{}: {e}", root.display())))?;
        Ok(BlobStore {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || key.starts_with('.')
        {
            return Err(StoreError::Backend(format!("{key:?} is not a blob key")));
        }
        Ok(self.root.join(key))
    }

    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        use tokio::io::AsyncWriteExt;
        let target = self.path(key)?;
        let partial = self
            .root
            .join(".partial")
            .join(format!("{key}.{}", fastrand::u64(..)));
        let failed = |e: std::io::Error| StoreError::Backend(format!("blob {key}: {e}"));
        let mut file = tokio::fs::File::create(&partial).await.map_err(failed)?;
        file.write_all(bytes).await.map_err(failed)?;
        file.sync_all().await.map_err(failed)?;
        tokio::fs::rename(&partial, &target).await.map_err(failed)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Backend(format!("blob {key}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_keys_stay_inside() {
        let dir = tempfile::tempdir().expect("dir");
        let blobs = BlobStore::open(dir.path()).expect("open");
        blobs.put("upload-1.scip.gz", b"abc").await.expect("put");
        assert_eq!(
            blobs.get("upload-1.scip.gz").await.expect("get"),
            Some(b"abc".to_vec())
        );
        assert_eq!(blobs.get("upload-2.scip.gz").await.expect("get"), None);
        for bad in ["../x", "a/b", "", ".partial"] {
            assert!(blobs.put(bad, b"x").await.is_err(), "{bad}");
        }
    }
}
