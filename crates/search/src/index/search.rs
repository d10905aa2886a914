//! Searching a repository's index: candidates from the trigram index, verified against the
//! stored texts with the same matcher as every other search.

use super::IndexError;
use super::candidates::{CandidatePlan, PartSet, per_part, whole_docs};
use std::collections::HashSet;

use super::format::{Shard, Texts};
use crate::archive::ScanStats;
use crate::matcher::{FileMatch, match_file};
use crate::query::{BasicQuery, Expr};

/// Searches the live documents of one shard of a repository's index (those not in its
/// `tombstones`) that may match; a large repository is several shards, so that callers can
/// spread it over threads. Stops early when `on_match` returns false or `stop` says so.
/// `on_match` gets the file's whole text when `whole_texts` asks for it (for context lines);
/// otherwise a large file's text may be left out (empty).
pub fn search(
    shard: &Shard,
    tombstones: &HashSet<u32>,
    query: &BasicQuery,
    plan: &CandidatePlan,
    whole_texts: bool,
    stop: &(dyn Fn() -> bool + Sync),
    on_match: &(dyn Fn(FileMatch, &[u8]) -> bool + Sync),
) -> Result<ScanStats, IndexError> {
    let mut stats = ScanStats::default();
    // Files whose contents were not indexed are reported whether or not they are candidates.
    for &doc in shard.not_indexed() {
        let meta = &shard.docs()[doc as usize];
        if !tombstones.contains(&doc) && query.scopes.path_matches(&meta.path) {
            if meta.flags & super::format::FLAG_BINARY != 0 {
                stats.binary.add(&meta.path);
            } else {
                stats.too_large.add(&meta.path);
            }
        }
    }
    let pattern = query.pattern.as_ref();
    let mut found = plan.candidates(shard)?;
    // Only a pattern's matches can be gathered part by part; context lines need the whole text.
    let by_part = !whole_texts && pattern.is_some_and(per_part);
    if !by_part {
        found = whole_docs(shard, found);
    }
    let parts: Vec<u32> = match found {
        PartSet::All => (0..shard.parts().len() as u32).collect(),
        PartSet::Some(parts) => parts,
    };
    let mut texts = Texts::new(shard);
    let mut at = 0;
    while at < parts.len() {
        if stop() {
            return Ok(stats);
        }
        // The candidate parts of one document.
        let doc = shard.parts()[parts[at] as usize].doc;
        let group_end = at
            + parts[at..]
                .iter()
                .position(|&p| shard.parts()[p as usize].doc != doc)
                .unwrap_or(parts.len() - at);
        let group = &parts[at..group_end];
        at = group_end;
        let meta = &shard.docs()[doc as usize];
        if tombstones.contains(&doc) || !query.scopes.path_matches(&meta.path) {
            continue;
        }
        if meta.flags != 0 {
            if let Some(found) = match_file(pattern, &meta.path, b"")
                && !on_match(found, b"")
            {
                return Ok(stats);
            }
            continue;
        }
        stats.files_searched += 1;
        let keep_going = if by_part && shard.parts_of(doc).len() > 1 {
            match match_parts(shard, &mut texts, group, pattern, &meta.path)? {
                Some(found) => on_match(found, b""),
                None => true,
            }
        } else {
            let text = texts.doc(doc)?;
            match match_file(pattern, &meta.path, &text) {
                Some(found) => on_match(found, &text),
                None => true,
            }
        };
        if !keep_going {
            return Ok(stats);
        }
    }
    Ok(stats)
}

/// Matches some parts of one document, each alone, as one file match with the lines numbered
/// and placed as in the whole document.
fn match_parts(
    shard: &Shard,
    texts: &mut Texts,
    parts: &[u32],
    pattern: Option<&Expr>,
    path: &str,
) -> Result<Option<FileMatch>, IndexError> {
    let mut all: Option<FileMatch> = None;
    for &number in parts {
        let part = shard.parts()[number as usize];
        let Some(mut found) = match_file(pattern, path, texts.part(number)?) else {
            continue;
        };
        for line in &mut found.lines {
            line.line += part.first_line as usize;
            line.offset += part.start as usize;
        }
        match &mut all {
            // Every part reports the same path ranges.
            Some(all) => all.lines.append(&mut found.lines),
            None => all = Some(found),
        }
    }
    Ok(all)
}
