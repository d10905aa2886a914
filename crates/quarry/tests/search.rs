//! Search end to end: the query language, the stream API, rg parity, updates and the CLI.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Instance, matched_lines, matches, stream, wait_indexed};
use quarry_gitserver::testing::TestRepo;
use serde_json::Value;

/// A small corpus with the shapes that trip searchers up: Unicode, CRLF, no final newline, tabs,
/// long lines, nested directories, a binary file and a second branch.
fn corpus(root: &Path) -> Vec<TestRepo> {
    let alpha = TestRepo::init(&root.join("alpha")).unwrap();
    let long_line = format!("{}needle{}\n", "x".repeat(5000), "y".repeat(3000));
    // Large enough to be indexed in many parts: every line matches some queries, and words
    // only on its first and last lines sit in different parts.
    let mut large: String = (0..20_000)
        .map(|i| format!("row {i:05} lorem ipsum dolor sit amet\tx\n"))
        .collect();
    large.insert_str(0, "alphastart ");
    large.push_str("omegaend\n");
    alpha
        .commit(
            &[
                ("src/lib.rs", "pub fn parse(input: &str) -> u32 {\n    let needle = 42;\n    needle + 100\n}\n\nfn helper() {}\n"),
                ("src/main.rs", "fn main() {\n\tprintln!(\"hello world\");\n    parse(\"a.b\");\n}\n"),
                ("tests/parse_test.rs", "#[test]\nfn parses() { assert_eq!(parse(\"1\"), 1); }\n"),
                ("docs/ünïcödé.md", "# Ünïcödé\nCafé needle crème brûlée\nNEEDLE in caps\n"),
                ("crlf.txt", "first line\r\nneedle here\r\nlast x\r\n"),
                ("no-newline.txt", "tail needle"),
                ("long.txt", &long_line),
                ("data/large.txt", &large),
            ],
            "alpha",
        )
        .unwrap();
    std::fs::write(alpha.path.join("image.bin"), b"needle\0\x01\x02binary").unwrap();
    alpha.commit(&[], "binary").unwrap();
    alpha
        .git(&["checkout", "--quiet", "-b", "feature"])
        .unwrap();
    alpha
        .commit(&[("src/feature.rs", "fn feature_only() {}\n")], "feature")
        .unwrap();
    alpha.git(&["checkout", "--quiet", "main"]).unwrap();

    let beta = TestRepo::init(&root.join("group/beta")).unwrap();
    beta.commit(
        &[
            ("main.go", "package main\n\nfunc main() {\n\tfmt.Println(\"hello\")\n}\n"),
            ("util/strings.go", "package util\n\n// Needle finds a needle.\nfunc Needle(hay string) int { return 123456 }\n"),
            ("vendor/lib/x.go", "package lib // needle\n"),
            ("README.md", "Beta: a|b and (parens) and a.b\n"),
        ],
        "beta",
    )
    .unwrap();
    vec![alpha, beta]
}

/// Serves the corpus with the index on (and waits until every repository is indexed) or off.
async fn start_with(work: &Path, indexed: bool) -> (Instance, Vec<TestRepo>) {
    let repos = corpus(&work.join("code"));
    let mut args = vec![work.join("code").display().to_string()];
    if !indexed {
        let config = work.join("site.json");
        std::fs::write(&config, r#"{"search.index.enabled": false}"#).unwrap();
        args.extend(["--site-config".to_string(), config.display().to_string()]);
    }
    let instance = Instance::serve(&work.join("data"), &args, &[]).await;
    instance.wait_settled(2).await;
    if indexed {
        wait_indexed(&instance).await;
    }
    (instance, repos)
}

async fn start(work: &Path) -> (Instance, Vec<TestRepo>) {
    start_with(work, true).await
}

/// What `rg -uu` reports for a pattern across the corpus, as (repository, path, 0-based line).
fn rg(root: &Path, args: &[&str], pattern: &str) -> Option<BTreeSet<(String, String, u64)>> {
    let output = std::process::Command::new("rg")
        .args([
            "-uu",
            "--glob",
            "!.git",
            "--no-heading",
            "--line-number",
            "--with-filename",
            "--no-messages",
        ])
        .args(args)
        .arg("-e")
        .arg(pattern)
        .arg(".")
        .current_dir(root)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            assert!(
                std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
                "rg is required here: {e}"
            );
            return None;
        }
    };
    let mut lines = BTreeSet::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(file), Some(number)) = (parts.next(), parts.next()) else {
            continue;
        };
        let file = file.trim_start_matches("./");
        let (repo, path) = if let Some(rest) = file.strip_prefix("group/beta/") {
            ("group/beta", rest)
        } else if let Some(rest) = file.strip_prefix("alpha/") {
            ("alpha", rest)
        } else {
            continue;
        };
        let number: u64 = number.parse().expect("rg line number");
        lines.insert((repo.to_string(), path.to_string(), number - 1));
    }
    Some(lines)
}

#[tokio::test]
async fn content_matches_equal_ripgreps_with_and_without_the_index() {
    for indexed in [true, false] {
        let work = tempfile::tempdir().unwrap();
        let (instance, _) = start_with(work.path(), indexed).await;
        ripgrep_parity(&instance, &work.path().join("code"), indexed).await;
    }
}

async fn ripgrep_parity(instance: &Instance, code: &Path, indexed: bool) {
    let literals = [
        "needle",
        "fn",
        "a.b",
        "(parens)",
        "hello world",
        "Ünïcödé",
        "crème",
        "x",
        "\t",
        "NEEDLE",
        "a|b",
        "lorem ipsum",
        "omegaend",
        "row 1",
    ];
    let regexps = [
        r"^\s*fn\s+\w+",
        r"[0-9]{3,}",
        r"\bneedle\b",
        r"x\r?$",
        r"(?i)needle",
        r"a|b",
        r"é+",
        r"^$",
        r"needle.*y{10}",
        r"\p{Lu}\p{Ll}+",
        r"ro[uw] 0[0-9]",
        r"(?i)ne[Ee]dle",
        r"(needle|NEEDLE)",
        r"(pa|fo)rse?\(",
        // No literal prefix, a literal suffix: searched from the suffix.
        r"[a-z]+\(",
        r"\w+\)",
        r"(?i)[a-z]+ 1",
    ];
    let mut compared = 0;
    for literal in literals {
        let query = format!(
            "case:yes type:file count:all content:\"{}\"",
            literal.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let ours = matched_lines(&matches(instance, &query).await);
        let Some(theirs) = rg(code, &["--fixed-strings", "--case-sensitive"], literal) else {
            return;
        };
        assert_eq!(ours, theirs, "literal {literal:?}, indexed: {indexed}");
        compared += 1;
    }
    for regexp in regexps {
        let query = format!("case:yes type:file count:all /{regexp}/");
        let ours = matched_lines(&matches(instance, &query).await);
        let theirs = rg(code, &["--case-sensitive"], regexp).unwrap_or_default();
        assert_eq!(ours, theirs, "regexp {regexp:?}, indexed: {indexed}");
        compared += 1;
    }
    assert_eq!(compared, literals.len() + regexps.len());
}

fn paths(found: &[Value]) -> BTreeSet<String> {
    found
        .iter()
        .map(|m| match m["path"].as_str() {
            Some(path) => format!("{}:{path}", m["repository"].as_str().unwrap_or("")),
            None => m["repository"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn every_construct_of_the_query_language_with_and_without_the_index() {
    for indexed in [true, false] {
        let work = tempfile::tempdir().unwrap();
        let (instance, _) = start_with(work.path(), indexed).await;
        query_language(&instance, indexed).await;
    }
}

async fn query_language(instance: &Instance, indexed: bool) {
    let cases: &[(&str, &[&str])] = &[
        (
            "needle repo:^alpha$ -file:docs",
            &[
                "alpha:crlf.txt",
                "alpha:long.txt",
                "alpha:no-newline.txt",
                "alpha:src/lib.rs",
            ],
        ),
        (
            "needle -repo:alpha",
            &["group/beta:util/strings.go", "group/beta:vendor/lib/x.go"],
        ),
        (
            "needle lang:go -file:vendor",
            &["group/beta:util/strings.go"],
        ),
        ("needle -lang:go repo:beta", &[]),
        ("func main", &["group/beta:main.go"]),
        ("\"hello world\"", &["alpha:src/main.rs"]),
        ("parse and helper", &["alpha:src/lib.rs"]),
        ("alphastart and omegaend", &["alpha:data/large.txt"]),
        ("alphastart not omegaend", &[]),
        ("alphastart or omegaend", &["alpha:data/large.txt"]),
        (
            "helper or println",
            &[
                "alpha:src/lib.rs",
                "alpha:src/main.rs",
                "group/beta:main.go",
            ],
        ),
        (
            "fn not needle",
            &["alpha:src/main.rs", "alpha:tests/parse_test.rs"],
        ),
        ("(Println or helper) -file:\\.rs$", &["group/beta:main.go"]),
        ("type:path parse", &["alpha:tests/parse_test.rs"]),
        ("type:repo beta", &["group/beta"]),
        ("repo:alpha", &["alpha"]),
        ("needle select:repo", &["alpha", "group/beta"]),
        ("123456 select:file", &["group/beta:util/strings.go"]),
        (
            "file:\\.md$",
            &["alpha:docs/ünïcödé.md", "group/beta:README.md"],
        ),
        ("patterntype:standard Beta: a|b", &["group/beta:README.md"]),
        ("patterntype:standard \"Beta: a|b\"", &[]),
        ("patterntype:regexp fn.*main", &["alpha:src/main.rs"]),
        ("patterntype:literal /a|b/", &[]),
        ("case:yes Needle", &["group/beta:util/strings.go"]),
        ("feature_only", &[]),
        ("feature_only repo:alpha@feature", &["alpha:src/feature.rs"]),
        (
            "feature_only repo:alpha@main:feature",
            &["alpha:src/feature.rs"],
        ),
        ("fork:only needle", &[]),
        ("content:\"a|b\" file:README", &["group/beta:README.md"]),
        ("-content:needle file:\\.go$", &["group/beta:main.go"]),
    ];
    for (query, expected) in cases {
        let found = matches(instance, query).await;
        assert_eq!(paths(&found), set(expected), "{query}, indexed: {indexed}");
    }

    // The first line of the large file's second part (parts of 32 KiB end at a line's end):
    // numbered and placed as in the whole file, with its context line from the part before.
    let query = "case:yes \"row 00840\"";
    let found = matches(instance, query).await;
    let chunk = &found[0]["chunkMatches"][0];
    assert_eq!(chunk["contentStart"]["line"], 840, "{indexed}");
    assert_eq!(chunk["contentStart"]["offset"], 11 + 39 * 840, "{indexed}");
    let with_context =
        common::stream_with_context(instance.client(), &instance.url, query, "1").await;
    assert!(
        with_context.contains(r#""content":"row 00839 lorem ipsum dolor sit amet\tx\nrow 00840"#),
        "{with_context}"
    );

    // A path match carries path ranges; a repo match is typed as such.
    let found = matches(instance, "type:path parse_test").await;
    assert_eq!(found[0]["type"], "path");
    assert_eq!(found[0]["pathMatches"][0]["start"]["offset"], 6);
    assert_eq!(matches(instance, "type:repo beta").await[0]["type"], "repo");
    let branch = matches(instance, "feature_only repo:alpha@feature").await;
    assert_eq!(branch[0]["branches"][0], "feature");
}

#[tokio::test]
async fn the_stream_follows_sourcegraphs_event_names_and_shapes() {
    let work = tempfile::tempdir().unwrap();
    let (instance, _) = start(work.path()).await;
    let response = instance
        .client()
        .get(format!("{}/.api/search/stream?q=needle", instance.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");

    let events = stream(&instance, "needle count:3").await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"done"));
    assert!(
        names.contains(&"matches") && names.contains(&"filters"),
        "{names:?}"
    );
    let (_, done_progress) = events.iter().rev().find(|(n, _)| n == "progress").unwrap();
    assert_eq!(done_progress["done"], true);
    assert_eq!(done_progress["matchCount"], 3);
    assert!(done_progress["durationMs"].is_u64());
    let limit = done_progress["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["reason"] == "document-match-limit")
        .expect("the limit is reported");
    assert_eq!(limit["suggested"]["queryExpression"], "count:all");
    let binary = done_progress["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["reason"] == "excluded-binary");
    assert!(
        binary.is_none()
            || binary.unwrap()["message"]
                .as_str()
                .unwrap()
                .contains("image.bin")
    );

    let all = stream(&instance, "needle count:all").await;
    let (_, progress) = all.iter().rev().find(|(n, _)| n == "progress").unwrap();
    let skipped = progress["skipped"].as_array().unwrap();
    let binary = skipped
        .iter()
        .find(|s| s["reason"] == "excluded-binary")
        .expect("binary files are reported");
    assert!(binary["message"].as_str().unwrap().contains("image.bin"));
    let first = all.iter().find(|(n, _)| n == "matches").unwrap().1[0].clone();
    for key in [
        "type",
        "repository",
        "repositoryID",
        "commit",
        "path",
        "chunkMatches",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    let chunk = &first["chunkMatches"][0];
    for key in ["offset", "line", "column"] {
        assert!(chunk["contentStart"][key].is_u64(), "{chunk}");
        assert!(chunk["ranges"][0]["start"][key].is_u64(), "{chunk}");
        assert!(chunk["ranges"][0]["end"][key].is_u64(), "{chunk}");
    }
    let (_, filters) = all.iter().find(|(n, _)| n == "filters").unwrap();
    let kinds: BTreeSet<&str> = filters
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["file", "lang", "repo"]));
    assert!(
        filters
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["value"] == "repo:^group/beta$")
    );

    // Ranges are exact: the Unicode line's match starts at the right column and byte offset.
    let unicode = matches(&instance, "case:yes crème").await;
    let range = &unicode[0]["chunkMatches"][0]["ranges"][0];
    assert_eq!(range["start"]["column"], 12);
    assert_eq!(range["start"]["offset"], "# Ünïcödé\nCafé needle ".len());
    assert_eq!(range["end"]["column"], 17);

    // A pattern the index cannot narrow says that every file was scanned.
    let scanned = stream(&instance, "/[0-9]{3}/").await;
    let (_, progress) = scanned.iter().rev().find(|(n, _)| n == "progress").unwrap();
    assert!(
        progress["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["reason"] == "unindexed-pattern"),
        "{progress}"
    );
    let narrowed = stream(&instance, "needle").await;
    let (_, progress) = narrowed
        .iter()
        .rev()
        .find(|(n, _)| n == "progress")
        .unwrap();
    assert!(
        !progress["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["reason"] == "unindexed-pattern")
    );

    let alert = stream(&instance, "type:symbol parse").await;
    let (_, body) = alert
        .iter()
        .find(|(n, _)| n == "alert")
        .expect("an alert for what is not supported yet");
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("not supported yet")
    );
}

#[tokio::test]
async fn bad_queries_get_clear_errors_and_the_server_stays_responsive() {
    let work = tempfile::tempdir().unwrap();
    let (instance, _) = start(work.path()).await;
    let client = instance.client();
    for (query, expected) in [
        ("(needle or", "column 9: expected a term after `or`"),
        ("(needle", "column 1: unbalanced parentheses"),
        ("needle or x)", "no matching `(`"),
        ("/(unclosed/", "invalid regexp"),
        ("bogus:thing needle", "unknown filter `bogus:`"),
        ("count:-1 needle", "count:"),
        ("timeout:5m needle", "at most 1m"),
    ] {
        let response = common::stream_response(client, &instance.url, query).await;
        assert_eq!(response.status(), 400, "{query}");
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{text}");
    }
    let long = instance
        .graphql(
            "query($q: String!) { search(query: $q) { results { matchCount } } }",
            serde_json::json!({"q": "a".repeat(70 * 1024)}),
        )
        .await;
    assert!(
        long["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("longer than 64 KB")
    );
    // A regexp that matches everything is bounded by count:, and a client that walks away
    // mid-stream does not hold the server up.
    let everything = stream(&instance, "/.*/ count:5").await;
    let (_, progress) = everything
        .iter()
        .rev()
        .find(|(n, _)| n == "progress")
        .unwrap();
    assert_eq!(progress["matchCount"], 5);
    let mut abandoned = client
        .get(format!("{}/.api/search/stream", instance.url))
        .query(&[("q", "/.*/ count:all")])
        .send()
        .await
        .unwrap();
    let _ = abandoned.chunk().await;
    drop(abandoned);
    assert_eq!(matches(&instance, "helper").await.len(), 1);
}

#[tokio::test]
async fn new_commits_are_searched_after_a_fetch() {
    let work = tempfile::tempdir().unwrap();
    let (instance, repos) = start(work.path()).await;
    assert!(matches(&instance, "freshly_added").await.is_empty());
    repos[1]
        .commit(
            &[
                ("new.go", "package main // freshly_added\n"),
                ("README.md", "gone\n"),
            ],
            "update",
        )
        .unwrap();
    let id = instance
        .data(
            "{ repository(name: \"group/beta\") { id } }",
            serde_json::json!({}),
        )
        .await["repository"]["id"]
        .clone();
    instance
        .data(
            "mutation($id: ID!) { updateMirrorRepository(repository: $id) { alwaysNil } }",
            serde_json::json!({"id": id}),
        )
        .await;
    let head = repos[1].head().unwrap();
    instance
        .wait_for(
            "{ repository(name: \"group/beta\") { defaultBranch { target { oid } } } }",
            serde_json::json!({}),
            |d| d["repository"]["defaultBranch"]["target"]["oid"] == head.as_str(),
        )
        .await;
    // Searches read the repository list at most half a second late, then the new index.
    let started = std::time::Instant::now();
    while paths(&matches(&instance, "freshly_added").await) != set(&["group/beta:new.go"]) {
        assert!(
            started.elapsed() < common::DEADLINE,
            "the new commit was never searched"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    wait_indexed(&instance).await;
    assert!(
        matches(&instance, "parens").await.is_empty(),
        "removed content is gone"
    );
}

#[tokio::test]
async fn the_cli_prints_grep_style_and_json_lines() {
    let work = tempfile::tempdir().unwrap();
    let (instance, _) = start(work.path()).await;
    let run = |args: &[&str]| {
        std::process::Command::new(common::binary())
            .arg("search")
            .args(args)
            .env("SRC_ENDPOINT", &instance.url)
            .env("SRC_ACCESS_TOKEN", &instance.token)
            .output()
            .unwrap()
    };
    let output = run(&["helper", "lang:rust"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "alpha:src/lib.rs:6:fn helper() {}\n"
    );
    let output = run(&["--json", "needle", "repo:beta", "-file:vendor"]);
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["path"], "util/strings.go");
    let none = run(&["nothing_matches_this_at_all"]);
    assert_eq!(none.status.code(), Some(1));
    let bad = run(&["(oops"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("never closed"));
}

#[tokio::test]
async fn files_over_the_size_limit_are_searched_by_path_and_reported() {
    let work = tempfile::tempdir().unwrap();
    let origin = TestRepo::init(&work.path().join("code/sizes")).unwrap();
    let big = format!("needle\n{}", "x".repeat(300));
    origin
        .commit(
            &[("small.txt", "needle\n"), ("big_needle.txt", &big)],
            "sizes",
        )
        .unwrap();
    let instance = Instance::serve(
        &work.path().join("data"),
        &[
            work.path().join("code").display().to_string(),
            "--search-max-file-size".into(),
            "100".into(),
        ],
        &[],
    )
    .await;
    instance.wait_settled(1).await;
    wait_indexed(&instance).await;
    let events = stream(&instance, "needle count:all").await;
    let found: Vec<Value> = events
        .iter()
        .filter(|(n, _)| n == "matches")
        .flat_map(|(_, d)| d.as_array().cloned().unwrap_or_default())
        .collect();
    let kinds: BTreeSet<(String, String)> = found
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("big_needle.txt".to_string(), "path".to_string()),
            ("small.txt".to_string(), "content".to_string())
        ])
    );
    let (_, progress) = events.iter().rev().find(|(n, _)| n == "progress").unwrap();
    let large = progress["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["reason"] == "excluded-large")
        .expect("large files are reported");
    assert!(
        large["message"]
            .as_str()
            .unwrap()
            .contains("big_needle.txt")
    );
}
