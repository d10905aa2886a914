//! Building, updating and recovering repository indexes against real git repositories.

use std::sync::Arc;
use std::time::Duration;

use quarry_gitserver::testing::TestRepo;
use quarry_gitserver::{GitService, LocalGitService};
use quarry_search::index::candidates::CandidatePlan;
use quarry_search::index::format::{Shard, Texts};
use quarry_search::index::trigram::{ANY_CASE, follower_bit, pack};
use quarry_search::index::{IndexBuilder, IndexCatalog, search};
use quarry_search::query::{PatternType, plan};

const LIMIT: u64 = 1024 * 1024;

fn found_paths(catalog: &IndexCatalog, query: &str) -> Vec<String> {
    let index = catalog.get(1).expect("an index");
    let plan = plan(query, PatternType::Keyword).unwrap();
    let paths = std::sync::Mutex::new(Vec::new());
    let candidates = CandidatePlan::new(plan.basics[0].pattern.as_ref(), plan.case_sensitive);
    for (shard, tombstones) in &index.shards {
        search(
            shard,
            tombstones,
            &plan.basics[0],
            &candidates,
            false,
            &|| false,
            &|m, _| {
                paths.lock().unwrap().push(m.path);
                true
            },
        )
        .unwrap();
    }
    let mut paths = paths.into_inner().unwrap();
    paths.sort();
    paths
}

#[tokio::test]
async fn incremental_updates_and_recovery_from_damage() {
    let work = tempfile::tempdir().unwrap();
    let origin = TestRepo::init(&work.path().join("origin")).unwrap();
    let mut files: Vec<(String, String)> = (0..20)
        .map(|i| {
            (
                format!("src/file{i}.rs"),
                format!("fn function_{i}() {{}}\n"),
            )
        })
        .collect();
    files.push(("big.txt".into(), "x".repeat(2 * LIMIT as usize)));
    files.push(("blob.bin".into(), "bin\0ary".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let first = origin.commit(&refs, "first").unwrap();
    let git = Arc::new(LocalGitService::open(&work.path().join("mirrors")).unwrap());
    git.sync(
        "r",
        &origin.path.display().to_string(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let index_root = work.path().join("index");
    let catalog = Arc::new(IndexCatalog::new(&index_root).unwrap());
    let builder = IndexBuilder::new(git.clone(), catalog.clone(), LIMIT);

    let stats = builder.index(1, "r", &first).await.unwrap();
    assert!(stats.full);
    assert_eq!(stats.documents, 22);
    assert_eq!(
        found_paths(&catalog, "case:yes function_7"),
        ["src/file7.rs"]
    );
    assert_eq!(found_paths(&catalog, "type:path big"), ["big.txt"]);
    assert!(
        builder.index(1, "r", &first).await.unwrap().documents == 0,
        "an index at the commit is left alone"
    );

    // Change one file, add one, delete one: only those are read, in a new shard.
    origin.git(&["rm", "--quiet", "src/file3.rs"]).unwrap();
    let second = origin
        .commit(
            &[
                ("src/file5.rs", "fn renamed_five() {}\n"),
                ("src/new.rs", "fn brand_new() {}\n"),
            ],
            "second",
        )
        .unwrap();
    git.sync(
        "r",
        &origin.path.display().to_string(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let stats = builder.index(1, "r", &second).await.unwrap();
    assert!(!stats.full, "{stats:?}");
    assert_eq!(stats.documents, 2);
    assert_eq!(stats.tombstoned, 2);
    let index = catalog.get(1).unwrap();
    assert_eq!(index.commit, second);
    assert_eq!(index.shards.len(), 2);
    assert_eq!(found_paths(&catalog, "brand_new"), ["src/new.rs"]);
    assert!(
        found_paths(&catalog, "function_5").is_empty(),
        "changed content is gone"
    );
    assert!(
        found_paths(&catalog, "function_3").is_empty(),
        "deleted content is gone"
    );
    assert_eq!(found_paths(&catalog, "renamed_five"), ["src/file5.rs"]);
    assert_eq!(
        found_paths(&catalog, "function_12 file:2\\.rs"),
        ["src/file12.rs"]
    );

    // Leftovers of an interrupted write are deleted when the index is opened again.
    let dir = catalog.dir(1);
    std::fs::write(dir.join("half-written.qix.tmp1234"), b"partial").unwrap();
    let reopened = IndexCatalog::new(&index_root).unwrap();
    assert!(reopened.get(1).is_some());
    assert!(!dir.join("half-written.qix.tmp1234").exists());

    // A damaged shard is refused, never served, and the next build starts over.
    let shard = dir.join(&index.shard_files()[0]);
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 10]).unwrap();
    let damaged = Arc::new(IndexCatalog::new(&index_root).unwrap());
    assert!(damaged.get(1).is_none());
    let rebuilt = IndexBuilder::new(git.clone(), damaged.clone(), LIMIT)
        .index(1, "r", &second)
        .await
        .unwrap();
    assert!(rebuilt.full);
    assert_eq!(rebuilt.documents, 22);
    assert_eq!(damaged.get(1).unwrap().shards.len(), 1);

    catalog.retain(&[]);
    assert!(
        !dir.exists(),
        "the index of a deleted repository is removed"
    );
}

/// A shard of `tests/data`, checked to hold the three documents both fixtures hold.
fn checked_in_shard(name: &str) -> Shard {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let shard = Shard::open(&path).unwrap();
    let paths: Vec<&str> = shard.docs().iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["README.md", "src/lib.rs", "logo.png"]);
    shard
}

/// (part, start mask, follower mask) of each posting of `qua`; and checks that the postings
/// say nothing of cases, as no version before 4 did.
fn qua_postings(shard: &Shard) -> Vec<(u32, u8, u8)> {
    let postings = shard.postings(pack(b'q', b'u', b'a')).unwrap();
    assert!(postings.iter().all(|p| p.masks.cases == ANY_CASE));
    postings
        .iter()
        .map(|p| (p.part, p.masks.starts, p.masks.followers))
        .collect()
}

/// Shards written by version 1 of the format stay readable: `tests/data/v1.qix` was written by
/// the first release of the format's `ShardBuilder` (three documents: two texts and a binary
/// file) and is never regenerated.
#[test]
fn reads_a_version_1_shard() {
    let shard = checked_in_shard("v1.qix");
    // Version 1 postings say nothing of positions: any start is allowed.
    assert_eq!(qua_postings(&shard), [(0, 0xff, 0xff), (1, 0xff, 0xff)]);
    let mut texts = Texts::new(&shard);
    assert_eq!(&*texts.doc(1).unwrap(), b"pub fn quarry() -> u32 { 42 }\n");
    assert_eq!(&*texts.doc(2).unwrap(), b"");
}

/// Version 2 shards (position masks, one part a document) stay readable: `tests/data/v2.qix`
/// was written by the last release of version 2's `ShardBuilder` and is never regenerated.
#[test]
fn reads_a_version_2_shard() {
    let shard = checked_in_shard("v2.qix");
    // `qua` starts at bytes 2 and 16 of the first text and 7 of the second; version 2 postings
    // say nothing of followers.
    assert_eq!(
        qua_postings(&shard),
        [(0, 0b101, 0xff), (1, 0b1000_0000, 0xff)]
    );
    let mut texts = Texts::new(&shard);
    assert_eq!(&*texts.doc(0).unwrap(), b"# Quarry\nSearch quarry code.\n");
    assert_eq!(&*texts.doc(1).unwrap(), b"pub fn quarry() -> u32 { 42 }\n");
    assert_eq!(&*texts.doc(2).unwrap(), b"");
}

/// Version 3 shards (parts, followers, no cases) stay readable: `tests/data/v3.qix` was written
/// by the last release of version 3's `ShardBuilder` from the documents of `v2.qix` and is never
/// regenerated.
#[test]
fn reads_a_version_3_shard() {
    let shard = checked_in_shard("v3.qix");
    assert_eq!(
        qua_postings(&shard),
        [
            (0, 0b101, follower_bit(b'r')),
            (1, 0b1000_0000, follower_bit(b'r'))
        ]
    );
    let mut texts = Texts::new(&shard);
    assert_eq!(&*texts.doc(0).unwrap(), b"# Quarry\nSearch quarry code.\n");
    assert_eq!(&*texts.doc(1).unwrap(), b"pub fn quarry() -> u32 { 42 }\n");
}
