//! The site configuration through the GraphQL API of a running instance.

mod common;

use common::{Database, Instance};
use serde_json::{Value, json};

const CONFIG: &str = "{ site { configuration { id effectiveContents validationMessages history { id contents } } } }";
const UPDATE: &str = "mutation($lastID: Int!, $input: String!) { updateSiteConfiguration(lastID: $lastID, input: $input) }";

#[tokio::test]
async fn round_trip_validation_history_and_live_apply_on_each_database() {
    for database in Database::all().await {
        round_trip(&database).await;
        database.cleanup().await;
    }
}

async fn round_trip(database: &Database) {
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut args = database.args();
    args.push(empty.display().to_string());
    let instance = Instance::serve(&work.path().join("data"), &args, &[]).await;

    let first = instance.data(CONFIG, json!({})).await["site"]["configuration"].clone();
    let first_id = first["id"].as_i64().unwrap();
    assert_eq!(first["validationMessages"], json!([]));

    let text = "// edited\n{\n  \"externalURL\": \"https://quarry.example.com\",\n  \"executors.accessToken\": \"0123456789abcdefghijk\",\n}\n";
    let saved = instance
        .data(UPDATE, json!({"lastID": first_id, "input": text}))
        .await;
    assert_eq!(saved["updateSiteConfiguration"], false, "no restart needed");
    let second = instance.data(CONFIG, json!({})).await["site"]["configuration"].clone();
    assert_eq!(
        second["effectiveContents"], text,
        "comments are kept as written"
    );
    let second_id = second["id"].as_i64().unwrap();

    // Invalid values are refused with their key paths; the previous version stays in force.
    let refused = instance
        .graphql(
            UPDATE,
            json!({"lastID": second_id, "input": r#"{"externalURL": "/relative", "executors.accessToken": "short", "gitMaxConcurrentClones": -1, "bogus": true}"#}),
        )
        .await;
    let messages: Vec<String> = refused["errors"][0]["extensions"]["validationMessages"]
        .as_array()
        .unwrap_or_else(|| panic!("validation messages expected: {refused}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    for key in [
        "externalURL:",
        "executors.accessToken:",
        "gitMaxConcurrentClones:",
        "bogus:",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(key)),
            "{key} in {messages:?}"
        );
    }
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let syntax = instance
        .graphql(
            UPDATE,
            json!({"lastID": second_id, "input": "{\n  \"externalURL\": \n"}),
        )
        .await;
    assert!(
        syntax["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{syntax}"
    );
    // An edit of a stale version is refused rather than silently overwriting.
    let stale = instance
        .graphql(UPDATE, json!({"lastID": first_id, "input": "{}"}))
        .await;
    assert_eq!(
        stale["errors"][0]["extensions"]["code"], "CONFLICT",
        "{stale}"
    );

    let now = instance.data(CONFIG, json!({})).await["site"]["configuration"].clone();
    assert_eq!(now["id"], second_id);
    assert_eq!(now["effectiveContents"], text);
    let history: Vec<i64> = now["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v: &Value| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(history, [second_id, first_id]);

    // A change applies without restart: with repoListUpdateInterval 0 a connection is synced only
    // when it changes, so its next sync time disappears at the next sync.
    let services = "{ externalServices { nodes { id nextSyncAt } } }";
    let before = instance.data(services, json!({})).await;
    let service = &before["externalServices"]["nodes"][0];
    assert!(service["nextSyncAt"].is_string(), "{before}");
    instance
        .data(
            UPDATE,
            json!({"lastID": second_id, "input": "{\"repoListUpdateInterval\": 0}"}),
        )
        .await;
    instance
        .data(
            "mutation($id: ID!) { syncExternalService(id: $id) { alwaysNil } }",
            json!({"id": service["id"]}),
        )
        .await;
    let after = instance.data(services, json!({})).await;
    assert!(
        after["externalServices"]["nodes"][0]["nextSyncAt"].is_null(),
        "{after}"
    );
}

#[tokio::test]
async fn a_seed_file_is_applied_and_a_bad_one_refuses_to_start() {
    let work = tempfile::tempdir().unwrap();
    let seed = work.path().join("site.json");
    std::fs::write(&seed, "{ \"externalURL\": \"https://code.example.com\" }").unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let data_dir = work.path().join("data");
    let args = [
        "--site-config".to_string(),
        seed.display().to_string(),
        empty.display().to_string(),
    ];
    let mut instance = Instance::serve(&data_dir, &args, &[]).await;
    let config = instance.data(CONFIG, json!({})).await;
    assert!(
        config["site"]["configuration"]["effectiveContents"]
            .as_str()
            .unwrap()
            .contains("code.example.com")
    );
    assert!(instance.terminate(), "a SIGTERM stops the server cleanly");

    std::fs::write(&seed, "{ \"externalURL\": 42 }").unwrap();
    let output = std::process::Command::new(common::binary())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(&args)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("externalURL: must be a string"), "{stderr}");

    let instance = Instance::serve(&data_dir, &args[2..], &[]).await;
    let config = instance.data(CONFIG, json!({})).await;
    assert!(
        config["site"]["configuration"]["effectiveContents"]
            .as_str()
            .unwrap()
            .contains("code.example.com"),
        "the refused seed left the previous configuration in force"
    );
}
