//! Precise code intelligence uploads: one row per SCIP index received. The index itself lives in
//! blob storage; a row is `uploading` until its blob is stored, then `queued` for processing.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, now};

/// An upload being received.
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    pub repository_id: i64,
    pub commit: &'a str,
    pub root: &'a str,
    pub indexer: &'a str,
    pub indexer_version: &'a str,
    /// The index job that produced it, for uploads from executors.
    pub associated_index_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: i64,
    pub repository_id: i64,
    pub commit: String,
    pub root: String,
    pub indexer: String,
    pub indexer_version: String,
    pub associated_index_id: Option<i64>,
    /// `uploading`, `queued` or `failed`.
    pub state: String,
    pub upload_size: Option<i64>,
    pub uncompressed_size: Option<i64>,
    pub uploaded_at: i64,
    pub failure_message: Option<String>,
}

const COLUMNS: &str = "id, repository_id, commit_oid, root, indexer, indexer_version, \
    associated_index_id, state, upload_size, uncompressed_size, uploaded_at, failure_message";

fn upload(row: &AnyRow) -> Result<Upload> {
    Ok(Upload {
        id: row.try_get("id")?,
        repository_id: row.try_get("repository_id")?,
        commit: row.try_get("commit_oid")?,
        root: row.try_get("root")?,
        indexer: row.try_get("indexer")?,
        indexer_version: row.try_get("indexer_version")?,
        associated_index_id: row.try_get("associated_index_id")?,
        state: row.try_get("state")?,
        upload_size: row.try_get("upload_size")?,
        uncompressed_size: row.try_get("uncompressed_size")?,
        uploaded_at: row.try_get("uploaded_at")?,
        failure_message: row.try_get("failure_message")?,
    })
}

impl Store {
    /// Records an upload as `uploading`; its blob is stored next, under the returned id.
    pub async fn begin_upload(&self, new: &NewUpload<'_>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO uploads (repository_id, commit_oid, root, indexer, indexer_version, \
             associated_index_id, state, uploaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'uploading', $7) RETURNING id",
        )
        .bind(new.repository_id)
        .bind(new.commit)
        .bind(new.root)
        .bind(new.indexer)
        .bind(new.indexer_version)
        .bind(new.associated_index_id)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The upload's blob is stored: it waits for processing.
    pub async fn finish_upload(&self, id: i64, size: i64, uncompressed: i64) -> Result<()> {
        sqlx::query(
            "UPDATE uploads SET state = 'queued', upload_size = $2, uncompressed_size = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(size)
        .bind(uncompressed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn fail_upload(&self, id: i64, message: &str) -> Result<()> {
        sqlx::query("UPDATE uploads SET state = 'failed', failure_message = $2 WHERE id = $1")
            .bind(id)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest upload an index job produced.
    pub async fn upload_of_index(&self, job_id: i64) -> Result<Option<Upload>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM uploads WHERE associated_index_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(upload).transpose()
    }

    /// The state of the newest upload of each of these index jobs that produced one.
    pub async fn upload_states_of_indexes(
        &self,
        job_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, String>> {
        let mut states = std::collections::HashMap::new();
        for chunk in job_ids.chunks(1000) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT associated_index_id, state FROM uploads WHERE associated_index_id IN ({}) \
                 ORDER BY id",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                // Rows come oldest first, so the newest upload's state stays.
                states.insert(row.try_get("associated_index_id")?, row.try_get("state")?);
            }
        }
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_each_store;

    #[tokio::test]
    async fn uploads_are_recorded_then_stored() {
        with_each_store(|store| async move {
            let id = store
                .begin_upload(&NewUpload {
                    repository_id: 1,
                    commit: "abc",
                    root: "",
                    indexer: "scip-typescript",
                    indexer_version: "0.3",
                    associated_index_id: Some(7),
                })
                .await
                .expect("begin");
            let started = store
                .upload_of_index(7)
                .await
                .expect("read")
                .expect("exists");
            assert_eq!(started.state, "uploading");
            store.finish_upload(id, 10, 40).await.expect("finish");
            let stored = store
                .upload_of_index(7)
                .await
                .expect("read")
                .expect("exists");
            assert_eq!(
                (stored.state.as_str(), stored.upload_size),
                ("queued", Some(10))
            );
            assert!(store.upload_of_index(8).await.expect("read").is_none());
            let states = store
                .upload_states_of_indexes(&[7, 8])
                .await
                .expect("states");
            assert_eq!(states.len(), 1);
            assert_eq!(states[&7], "queued");
        })
        .await;
    }
}
