//! Bad input to the binary and the API gets a clear error and changes nothing stored.

mod common;

use common::Instance;
use quarry_gitserver::testing::TestRepo;
use serde_json::json;

fn serve_output(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(common::binary())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_target_that_does_not_exist_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let output = serve_output(&["/no/such/directory"], &work.path().join("data"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/no/such/directory"), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn an_unusable_database_url_is_a_clear_error_without_the_password() {
    let work = tempfile::tempdir().unwrap();
    let output = serve_output(
        &["--database-url", "mysql://me:hunter2@localhost/x", "."],
        &work.path().join("data"),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn every_subcommand_has_help_naming_its_environment_variables() {
    for (subcommand, variables) in [
        (
            "serve",
            &[
                "QUARRY_DATA_DIR",
                "QUARRY_DATABASE_URL",
                "QUARRY_SITE_CONFIG_FILE",
                "QUARRY_LOG_FORMAT",
            ][..],
        ),
        (
            "gitserver",
            &["QUARRY_DATA_DIR", "QUARRY_INTERNAL_SECRET"][..],
        ),
    ] {
        let output = std::process::Command::new(common::binary())
            .args([subcommand, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        for variable in variables {
            assert!(
                help.contains(variable),
                "{subcommand} --help lacks {variable}:\n{help}"
            );
        }
    }
}

#[test]
fn a_gitserver_refuses_to_serve_beyond_loopback_without_a_secret() {
    let output = std::process::Command::new(common::binary())
        .args(["gitserver", "--listen", "0.0.0.0:0"])
        .env_remove("QUARRY_INTERNAL_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("QUARRY_INTERNAL_SECRET"));
}

#[tokio::test]
async fn the_api_refuses_bad_connections_and_ids_and_keeps_what_it_has() {
    let work = tempfile::tempdir().unwrap();
    let origin = TestRepo::init(&work.path().join("solo")).unwrap();
    origin.commit(&[("f", "1")], "one").unwrap();
    let instance = Instance::serve(
        &work.path().join("data"),
        &[origin.path.display().to_string()],
        &[],
    )
    .await;
    instance.wait_settled(1).await;

    let add = "mutation($kind: ExternalServiceKind!, $config: String!) { addExternalService(input: {kind: $kind, displayName: \"x\", config: $config}) { id } }";
    for (kind, config, expected) in [
        (
            "LOCAL",
            r#"{"root": "/no/such/dir"}"#,
            "cannot read /no/such/dir",
        ),
        ("LOCAL", r#"{"root": "relative"}"#, "absolute"),
        (
            "OTHER",
            r#"{"url": "ftp://x", "repos": ["a"]}"#,
            "not a URL git understands",
        ),
        ("OTHER", "not json", "invalid code host connection"),
    ] {
        let answer = instance
            .graphql(add, json!({"kind": kind, "config": config}))
            .await;
        let message = answer["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(expected), "{config}: {answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{answer}"
        );
    }
    let bad_id = instance
        .graphql(
            "mutation { deleteExternalService(externalService: \"garbage\") { alwaysNil } }",
            json!({}),
        )
        .await;
    assert_eq!(
        bad_id["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad_id}"
    );
    let gone = instance
        .graphql(
            "mutation($id: ID!) { updateMirrorRepository(repository: $id) { alwaysNil } }",
            json!({"id": "UmVwb3NpdG9yeTo5OTk="}),
        )
        .await;
    assert_eq!(
        gone["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{gone}"
    );
    let too_many = instance
        .graphql("{ repositories(first: 100000) { totalCount } }", json!({}))
        .await;
    assert!(
        too_many["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("first")
    );
    let injection = instance
        .graphql(
            "{ repository(name: \"solo\") { commit(rev: \"--output=/tmp/x\") { oid } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        injection["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{injection}"
    );
    let malformed = instance
        .client()
        .post(format!("{}/.api/graphql", instance.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let services = instance
        .data("{ externalServices { totalCount } }", json!({}))
        .await;
    assert_eq!(
        services["externalServices"]["totalCount"], 1,
        "nothing was added"
    );
    assert_eq!(instance.repositories().await.len(), 1);
}
