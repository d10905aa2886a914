//! Several gitservers, each owning the repositories that rendezvous hashing of the name assigns to
//! it: adding a shard moves only the repositories the new shard wins (about 1/N of them).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::service::{Commit, GitRef, SyncResult, TreeEntry};
use crate::{ByteStream, GitError, GitService};

/// The shard (an index into `shards`) that owns a repository.
pub fn rendezvous_owner<S: AsRef<str>>(shards: &[S], repo: &str) -> Option<usize> {
    shards
        .iter()
        .enumerate()
        .max_by_key(|(_, shard)| score(shard.as_ref(), repo))
        .map(|(i, _)| i)
}

/// A stable 64-bit score for a (shard, repository) pair: FNV-1a then a SplitMix64 finaliser, so
/// that every process, of any version, computes the same owner.
fn score(shard: &str, repo: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in shard.bytes().chain([0u8]).chain(repo.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Routes each call to the shard that owns the repository.
pub struct ShardedGitService {
    names: Vec<String>,
    shards: Vec<Box<dyn GitService>>,
}

impl ShardedGitService {
    /// `shards` pairs each shard's stable name (its address) with its client.
    pub fn new(shards: Vec<(String, Box<dyn GitService>)>) -> Result<Self, GitError> {
        if shards.is_empty() {
            return Err(GitError::InvalidArgument(
                "at least one gitserver is needed".into(),
            ));
        }
        let (names, shards) = shards.into_iter().unzip();
        Ok(ShardedGitService { names, shards })
    }

    fn owner(&self, repo: &str) -> &dyn GitService {
        let i = rendezvous_owner(&self.names, repo).unwrap_or(0);
        self.shards[i].as_ref()
    }

    /// The address of the shard that owns a repository.
    pub fn owner_name(&self, repo: &str) -> &str {
        let i = rendezvous_owner(&self.names, repo).unwrap_or(0);
        &self.names[i]
    }
}

#[async_trait]
impl GitService for ShardedGitService {
    async fn sync(
        &self,
        repo: &str,
        remote_url: &str,
        timeout: Duration,
    ) -> Result<SyncResult, GitError> {
        self.owner(repo).sync(repo, remote_url, timeout).await
    }

    async fn is_cloned(&self, repo: &str) -> Result<bool, GitError> {
        self.owner(repo).is_cloned(repo).await
    }

    async fn remove(&self, repo: &str) -> Result<(), GitError> {
        self.owner(repo).remove(repo).await
    }

    async fn resolve_revision(&self, repo: &str, rev: &str) -> Result<String, GitError> {
        self.owner(repo).resolve_revision(repo, rev).await
    }

    async fn commit(&self, repo: &str, rev: &str) -> Result<Commit, GitError> {
        self.owner(repo).commit(repo, rev).await
    }

    async fn list_refs(&self, repo: &str) -> Result<Vec<GitRef>, GitError> {
        self.owner(repo).list_refs(repo).await
    }

    async fn commit_log(
        &self,
        repo: &str,
        rev: &str,
        limit: usize,
    ) -> Result<Vec<Commit>, GitError> {
        self.owner(repo).commit_log(repo, rev, limit).await
    }

    async fn list_tree(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
    ) -> Result<Vec<TreeEntry>, GitError> {
        self.owner(repo).list_tree(repo, commit, path).await
    }

    async fn read_file(&self, repo: &str, commit: &str, path: &str) -> Result<Bytes, GitError> {
        self.owner(repo).read_file(repo, commit, path).await
    }

    async fn list_files(&self, repo: &str, commit: &str) -> Result<Vec<TreeEntry>, GitError> {
        self.owner(repo).list_files(repo, commit).await
    }

    async fn read_blobs(&self, repo: &str, oids: Vec<String>) -> Result<ByteStream, GitError> {
        self.owner(repo).read_blobs(repo, oids).await
    }

    async fn archive(&self, repo: &str, commit: &str) -> Result<ByteStream, GitError> {
        self.owner(repo).archive(repo, commit).await
    }

    async fn diff(&self, repo: &str, base: &str, head: &str) -> Result<String, GitError> {
        self.owner(repo).diff(repo, base, head).await
    }

    async fn upload_pack_advertisement(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
    ) -> Result<Bytes, GitError> {
        self.owner(repo)
            .upload_pack_advertisement(repo, git_protocol)
            .await
    }

    async fn upload_pack(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
        request: Bytes,
    ) -> Result<ByteStream, GitError> {
        self.owner(repo)
            .upload_pack(repo, git_protocol, request)
            .await
    }

    async fn ping(&self) -> Result<(), GitError> {
        for (name, shard) in self.names.iter().zip(&self.shards) {
            shard
                .ping()
                .await
                .map_err(|e| GitError::Unavailable(format!("gitserver {name}: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("gitserver-{i}:3178")).collect()
    }

    #[test]
    fn owners_spread_evenly_and_adding_a_shard_moves_about_one_in_n() {
        let repos: Vec<String> = (0..20_000)
            .map(|i| format!("github.com/org/repo-{i}"))
            .collect();
        let three = names(3);
        let four = names(4);
        let mut per_shard = [0usize; 3];
        let mut moved = 0;
        for repo in &repos {
            let before = rendezvous_owner(&three, repo).unwrap();
            per_shard[before] += 1;
            let after = rendezvous_owner(&four, repo).unwrap();
            if after != before {
                // A repository only ever moves to the new shard.
                assert_eq!(after, 3, "{repo}");
                moved += 1;
            }
        }
        for count in per_shard {
            let share = count as f64 / repos.len() as f64;
            assert!((0.30..0.37).contains(&share), "{per_shard:?}");
        }
        let moved_share = moved as f64 / repos.len() as f64;
        assert!((0.22..0.28).contains(&moved_share), "moved {moved_share}");
    }

    #[test]
    fn owner_is_stable_for_a_given_name() {
        let shards = names(5);
        assert_eq!(
            rendezvous_owner(&shards, "a/b"),
            rendezvous_owner(&shards, "a/b")
        );
        assert_eq!(rendezvous_owner::<String>(&[], "a/b"), None);
    }
}
