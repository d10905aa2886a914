//! Searching a repository's index: candidates from the trigram index, verified against the
//! stored texts with the same matcher as every other search.

use super::IndexError;
use super::candidates::{DocSet, candidates};
use std::collections::HashSet;

use super::format::Shard;
use super::repo::RepoIndex;
use crate::archive::ScanStats;
use crate::matcher::{FileMatch, match_file};
use crate::query::BasicQuery;

/// Searches every live document of the index that may match, its shards in parallel (a large
/// repository is several shards, so it is not one thread's work). Stops early when `on_match`
/// returns false or `stop` says so.
pub fn search(
    index: &RepoIndex,
    query: &BasicQuery,
    case_sensitive: bool,
    stop: &(dyn Fn() -> bool + Sync),
    on_match: &(dyn Fn(FileMatch, &[u8]) -> bool + Sync),
) -> Result<ScanStats, IndexError> {
    if let [(shard, tombstones)] = index.shards.as_slice() {
        return search_shard(shard, tombstones, query, case_sensitive, stop, on_match);
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = index
            .shards
            .iter()
            .map(|(shard, tombstones)| {
                scope.spawn(move || {
                    search_shard(shard, tombstones, query, case_sensitive, stop, on_match)
                })
            })
            .collect();
        let mut stats = ScanStats::default();
        for handle in running {
            let shard_stats = handle
                .join()
                .map_err(|_| IndexError::Io("a shard search stopped unexpectedly".into()))??;
            stats.merge(&shard_stats);
        }
        Ok(stats)
    })
}

fn search_shard(
    shard: &Shard,
    tombstones: &HashSet<u32>,
    query: &BasicQuery,
    case_sensitive: bool,
    stop: &(dyn Fn() -> bool + Sync),
    on_match: &(dyn Fn(FileMatch, &[u8]) -> bool + Sync),
) -> Result<ScanStats, IndexError> {
    let mut stats = ScanStats::default();
    {
        // Files whose contents were not indexed are reported whether or not they are candidates.
        for (doc, meta) in shard.docs().iter().enumerate() {
            if meta.flags != 0
                && !tombstones.contains(&(doc as u32))
                && query.scopes.path_matches(&meta.path)
            {
                if meta.flags & super::format::FLAG_BINARY != 0 {
                    stats.binary.add(&meta.path);
                } else {
                    stats.too_large.add(&meta.path);
                }
            }
        }
        let docs: Vec<u32> = match candidates(shard, query.pattern.as_ref(), case_sensitive)? {
            DocSet::All => (0..shard.docs().len() as u32).collect(),
            DocSet::Some(docs) => docs,
        };
        let mut cached: Option<(u32, Vec<u8>)> = None;
        for doc in docs {
            if stop() {
                return Ok(stats);
            }
            if tombstones.contains(&doc) {
                continue;
            }
            let meta = &shard.docs()[doc as usize];
            if !query.scopes.path_matches(&meta.path) {
                continue;
            }
            let (found, text): (_, &[u8]) = if meta.flags != 0 {
                (match_file(query.pattern.as_ref(), &meta.path, b""), b"")
            } else {
                let (block, offset, len) = shard.locate(doc);
                if cached.as_ref().map(|(b, _)| *b) != Some(block) {
                    cached = Some((block, shard.block_text(block)?));
                }
                let text = cached
                    .as_ref()
                    .and_then(|(_, text)| text.get(offset..offset + len))
                    .ok_or_else(|| {
                        IndexError::Corrupt(format!("document {} outside its block", meta.path))
                    })?;
                stats.files_searched += 1;
                (match_file(query.pattern.as_ref(), &meta.path, text), text)
            };
            if let Some(found) = found
                && !on_match(found, text)
            {
                return Ok(stats);
            }
        }
    }
    Ok(stats)
}
