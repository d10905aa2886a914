//! Searching a tree as git hands it over: a tar stream of a commit, read once, no checkout.

use std::io::Read;

use crate::matcher::{FileMatch, match_file};
use crate::query::BasicQuery;

/// How much of a file is looked at to decide that it is binary (as git and rg do).
const BINARY_PROBE: usize = 8 * 1024;
/// How many example paths a skip reason keeps.
const EXAMPLES: usize = 5;

/// Files left out of a content search, by reason, with a few examples each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkippedFiles {
    pub count: usize,
    pub examples: Vec<String>,
}

impl SkippedFiles {
    pub(crate) fn add(&mut self, path: &str) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(path.to_string());
        }
    }

    pub fn merge(&mut self, other: &SkippedFiles) {
        self.count += other.count;
        for example in &other.examples {
            if self.examples.len() < EXAMPLES {
                self.examples.push(example.clone());
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub files_searched: usize,
    pub binary: SkippedFiles,
    pub too_large: SkippedFiles,
}

impl ScanStats {
    pub fn merge(&mut self, other: &ScanStats) {
        self.files_searched += other.files_searched;
        self.binary.merge(&other.binary);
        self.too_large.merge(&other.too_large);
    }
}

/// Searches every file of a tar stream that passes the query's file filters. Binary files (a NUL
/// byte in the first 8 KB) and files over `max_file_size` have their contents skipped (their
/// paths can still match) and are counted. Stops early when `on_match` returns false or `stop`
/// says so.
pub fn scan<R: Read>(
    reader: R,
    query: &BasicQuery,
    max_file_size: u64,
    stop: &dyn Fn() -> bool,
    on_match: &mut dyn FnMut(FileMatch, &[u8]) -> bool,
) -> std::io::Result<ScanStats> {
    let mut stats = ScanStats::default();
    let mut archive = tar::Archive::new(reader);
    let mut content = Vec::new();
    for entry in archive.entries()? {
        if stop() {
            break;
        }
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        if !query.scopes.path_matches(&path) {
            continue;
        }
        content.clear();
        let size = entry.size();
        let searchable = if size > max_file_size {
            stats.too_large.add(&path);
            false
        } else {
            entry.read_to_end(&mut content)?;
            if content[..content.len().min(BINARY_PROBE)].contains(&0) {
                stats.binary.add(&path);
                false
            } else {
                true
            }
        };
        let text: &[u8] = if searchable { &content } else { &[] };
        stats.files_searched += usize::from(searchable);
        if let Some(found) = match_file(query.pattern.as_ref(), &path, text)
            && !on_match(found, text)
        {
            break;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{PatternType, plan};

    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn filters_binary_and_large_files() {
        let archive = tarball(&[
            ("src/a.rs", b"fn needle() {}\n"),
            ("src/b.go", b"needle\n"),
            ("blob.bin", b"needle\0\0"),
            ("big.rs", &[b'n'; 100]),
        ]);
        let plan = plan("needle -file:\\.go$", PatternType::Keyword).unwrap();
        let mut found = Vec::new();
        let stats = scan(&archive[..], &plan.basics[0], 50, &|| false, &mut |m, _| {
            found.push(m.path);
            true
        })
        .unwrap();
        assert_eq!(found, ["src/a.rs"]);
        assert_eq!(stats.files_searched, 1);
        assert_eq!(stats.binary.examples, ["blob.bin"]);
        assert_eq!(stats.too_large.examples, ["big.rs"]);
    }

    #[test]
    fn paths_of_skipped_files_still_match() {
        let archive = tarball(&[("needle.bin", b"\0\0")]);
        let plan = plan("type:path needle", PatternType::Keyword).unwrap();
        let mut found = Vec::new();
        scan(
            &archive[..],
            &plan.basics[0],
            1 << 20,
            &|| false,
            &mut |m, _| {
                found.push(m.path);
                true
            },
        )
        .unwrap();
        assert_eq!(found, ["needle.bin"]);
    }
}
