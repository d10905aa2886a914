//! `quarry serve DIR` end to end: the real binary, real git repositories, SQLite and PostgreSQL.

mod common;

use common::{Database, Instance, git, repo};
use quarry_gitserver::testing::TestRepo;
use serde_json::json;

const HEAD_AND_FILE: &str = r#"query($name: String!) {
  repository(name: $name) {
    name
    commit(rev: "HEAD") {
      oid subject
      author { date person { email } }
      tree { entries { name isDirectory } }
      blob(path: "README.md") { content byteSize binary }
      missing: blob(path: "nope.txt") { content }
    }
    other: commit(rev: "no-such-branch") { oid }
  }
}"#;

#[tokio::test]
async fn mirrors_a_directory_of_repositories_on_each_database() {
    for database in Database::all().await {
        mirrors_a_directory_of_repositories(&database).await;
        database.cleanup().await;
    }
}

async fn mirrors_a_directory_of_repositories(database: &Database) {
    let work = tempfile::tempdir().unwrap();
    let code = work.path().join("code");
    let mut heads = Vec::new();
    for name in ["api", "web", "team/tools"] {
        let origin = TestRepo::init(&code.join(name)).unwrap();
        let head = origin
            .commit(
                &[
                    ("README.md", &format!("# {name}\n")),
                    ("src/main.rs", "fn main() {}\n"),
                ],
                &format!("start {name}"),
            )
            .unwrap();
        heads.push((name, origin, head));
    }
    let unreachable = format!("file://{}/missing/gone.git", work.path().display());
    let mut args = database.args();
    args.push(code.display().to_string());
    args.push(unreachable);
    let instance = Instance::serve(&work.path().join("data"), &args, &[]).await;

    let nodes = instance.wait_settled(4).await;
    for (name, _, head) in &heads {
        let node = repo(&nodes, name);
        assert_eq!(
            node["mirrorInfo"]["cloned"],
            true,
            "{} on {}",
            name,
            database.name()
        );
        assert_eq!(node["mirrorInfo"]["lastError"], serde_json::Value::Null);
        assert_eq!(node["defaultBranch"]["displayName"], "main");
        assert_eq!(node["defaultBranch"]["target"]["oid"], head.as_str());
        assert_eq!(node["url"], format!("/{name}"));
    }
    let failed = repo(&nodes, "gone");
    assert_eq!(failed["mirrorInfo"]["cloneStatus"], "FAILED");
    assert!(
        failed["mirrorInfo"]["lastError"]
            .as_str()
            .unwrap()
            .contains("does not appear to be a git repository"),
        "git's own message is shown: {failed}"
    );

    let data = instance
        .data(HEAD_AND_FILE, json!({"name": "team/tools"}))
        .await;
    let commit = &data["repository"]["commit"];
    assert_eq!(commit["oid"], heads[2].2.as_str());
    assert_eq!(commit["subject"], "start team/tools");
    assert_eq!(commit["author"]["person"]["email"], "test@quarry.invalid");
    assert_eq!(commit["blob"]["content"], "# team/tools\n");
    assert_eq!(commit["blob"]["binary"], false);
    assert_eq!(commit["missing"], serde_json::Value::Null);
    assert_eq!(
        commit["tree"]["entries"],
        json!([{"name": "README.md", "isDirectory": false}, {"name": "src", "isDirectory": true}])
    );
    assert_eq!(data["repository"]["other"], serde_json::Value::Null);
    let unknown = instance.data(HEAD_AND_FILE, json!({"name": "nope"})).await;
    assert_eq!(unknown["repository"], serde_json::Value::Null);

    // A commit pushed to an origin arrives after a triggered fetch.
    let (_, api_origin, _) = &heads[0];
    let pushed = api_origin
        .commit(&[("CHANGELOG.md", "new\n")], "a new commit")
        .unwrap();
    let api_id = repo(&nodes, "api")["id"].clone();
    instance
        .data(
            "mutation($id: ID!) { updateMirrorRepository(repository: $id) { alwaysNil } }",
            json!({"id": api_id}),
        )
        .await;
    instance
        .wait_for(HEAD_AND_FILE, json!({"name": "api"}), |d| {
            d["repository"]["commit"]["oid"] == pushed.as_str()
        })
        .await;

    // git clone through the smart HTTP route yields the same HEAD.
    let clone = work.path().join("clone");
    git(
        work.path(),
        &[
            "clone",
            "--quiet",
            &instance.git_url("team/tools"),
            &clone.display().to_string(),
        ],
    );
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), heads[2].2);

    let ready = instance.get("/-/readyz").await;
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_repository_that_cannot_be_named_safely_is_reported_and_others_clone() {
    let work = tempfile::tempdir().unwrap();
    let good = TestRepo::init(&work.path().join("good")).unwrap();
    good.commit(&[("a", "a")], "a").unwrap();
    let instance = Instance::serve(
        &work.path().join("data"),
        &[good.path.display().to_string()],
        &[],
    )
    .await;
    let added = instance
        .data(
            r#"mutation($config: String!) {
                addExternalService(input: {kind: OTHER, displayName: "hostile", config: $config}) {
                  id lastSyncError repoCount
                }
            }"#,
            json!({"config": r#"{"url": "https://example.invalid", "repos": ["../../etc", "ok/x.git/objects"]}"#}),
        )
        .await;
    let service = &added["addExternalService"];
    let error = service["lastSyncError"].as_str().unwrap();
    assert!(error.contains("`.` or `..`"), "{error}");
    assert!(error.contains("must not end in `.git`"), "{error}");
    assert_eq!(service["repoCount"], 0);
    let nodes = instance.wait_settled(1).await;
    assert_eq!(repo(&nodes, "good")["mirrorInfo"]["cloned"], true);
}
