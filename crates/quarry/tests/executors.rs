//! An instance and a real `quarry executor run` beside it, on SQLite and PostgreSQL: index jobs
//! queued through GraphQL are taken, the repository is cloned through the executor's proxy, the
//! steps run in the sandbox with their logs uploaded (secrets redacted), failures are reported
//! with their reason, the executor shows as active, and SIGTERM drains it.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{DEADLINE, Database, Instance};
use quarry_gitserver::testing::TestRepo;
use serde_json::{Value, json};

const SECRET: &str = "the shared secret of the executors in tests";

/// Starts `quarry executor run` against an instance, with workspaces and logs under `work`,
/// serving its metrics at `metrics`, with `env` added to its environment; answers the process and
/// the path of its log.
fn start_executor(
    instance: &Instance,
    work: &std::path::Path,
    metrics: &str,
    env: &[(&str, &str)],
) -> (Child, std::path::PathBuf) {
    let log = work.join("executor.log");
    let executor = common::executor_command(&instance.url, SECRET, &work.join("workspaces"))
        .envs(env.iter().copied())
        .env("EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "60s")
        .env("SRC_PROF_HTTP", metrics)
        .stdout(std::fs::File::create(log.with_extension("out")).expect("log"))
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start quarry executor run");
    (executor, log)
}

/// Serves the repository under `code` with this site configuration; answers the instance and
/// the repository's GraphQL id once it is cloned.
async fn serve(
    work: &std::path::Path,
    code: &std::path::Path,
    site: &Value,
    database: &Database,
) -> (Instance, String) {
    let config = work.join("site.json");
    std::fs::write(&config, site.to_string()).expect("config");
    let mut args = vec![
        code.display().to_string(),
        "--site-config".into(),
        config.display().to_string(),
    ];
    args.extend(database.args());
    let instance = Instance::serve(&work.join("data"), &args, &[]).await;
    let repos = instance.wait_settled(1).await;
    let repo_id = repos[0]["id"].as_str().expect("id").to_string();
    (instance, repo_id)
}

/// Waits until every index job has ended (neither queued nor indexing).
async fn settled(instance: &Instance, expected: usize, log: &std::path::Path) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let nodes = common::precise_indexes(instance).await;
        let ended = nodes
            .iter()
            .filter(|n| {
                !matches!(
                    n["state"].as_str(),
                    Some("QUEUED_FOR_INDEXING" | "INDEXING")
                )
            })
            .count();
        if nodes.len() == expected && ended == expected {
            return nodes;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "jobs did not end: {nodes:?}\nexecutor log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The network interfaces a step's `cat /proc/net/dev` listed.
fn network_interfaces(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.trim_start().split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains(' ') && !name.contains('|'))
        .collect()
}

/// Whether scip-typescript (npm's `@sourcegraph/scip-typescript`) is installed; `.ci/run`
/// installs it and CI (`QUARRY_REQUIRE_TOOLS`) must have it.
fn scip_typescript_available() -> bool {
    let present = Command::new("scip-typescript")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present || std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "scip-typescript is required (QUARRY_REQUIRE_TOOLS is set)"
    );
    if !present {
        eprintln!(
            "skipping: install scip-typescript with npm install -g @sourcegraph/scip-typescript"
        );
    }
    present
}

#[tokio::test]
async fn an_executor_indexes_a_typescript_repository_and_uploads_the_index() {
    if !scip_typescript_available() {
        return;
    }
    for database in Database::all().await {
        let name = database.name();
        let work = tempfile::tempdir().expect("temp dir");
        let code = work.path().join("code");
        let repo = TestRepo::init(&code.join("tsapp")).expect("init");
        repo.commit(
            &[
                ("package.json", "{\"name\": \"tsapp\"}\n"),
                ("tsconfig.json", "{\"include\": [\"src\"]}\n"),
                (
                    "src/a.ts",
                    "export function greet(name: string): string { return name; }\n",
                ),
            ],
            "first",
        )
        .expect("commit");
        let site = json!({
            "executors.accessToken": SECRET,
            "executors.pools": [{ "name": "linux", "queue": "codeintel", "jobs_per_instance_scaling": 1, "min_replicas": 0, "max_replicas": 5 }],
        });
        let (instance, repo_id) = serve(work.path(), &code, &site, &database).await;

        let queue = "mutation($repo: ID!, $config: String) { queueAutoIndexJobsForRepo(repository: $repo, configuration: $config) { id state inputIndexer } }";
        let working = json!({ "index_jobs": [{
            "indexer": "host",
            "local_steps": ["test -f package.json"],
            "indexer_args": ["sh", "-c", format!("echo indexed && id -u && echo {SECRET} && cat /proc/net/dev && git rev-parse HEAD && git status --short && scip-typescript index")],
        }]});
        let failing = json!({ "index_jobs": [{ "indexer": "host", "indexer_args": ["sh", "-c", "echo failing; exit 3"] }]});
        // Without a configuration, the job is inferred from package.json: scip-typescript.
        for configuration in [Some(working.to_string()), Some(failing.to_string()), None] {
            let answer = instance
                .data(queue, json!({ "repo": repo_id, "config": configuration }))
                .await;
            assert_eq!(
                answer["queueAutoIndexJobsForRepo"][0]["state"],
                json!("QUEUED_FOR_INDEXING"),
                "{name}"
            );
        }
        // Bad input: a configuration with an error names where.
        let refused = instance
            .graphql(
                queue,
                json!({ "repo": repo_id, "config": "{\"index_jobs\": [{\"indexer\": \"\"}]}" }),
            )
            .await;
        let message = refused["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains("index_jobs[0].indexer"), "{refused}");

        // The autoscaling signal: three jobs queued, so the pool wants three executors.
        let started = Instant::now();
        loop {
            let answer: Value = reqwest::Client::new()
                .get(format!("{}/.executors/autoscaling", instance.url))
                .header("authorization", format!("token-executor {SECRET}"))
                .send()
                .await
                .expect("autoscaling")
                .json()
                .await
                .expect("JSON");
            if answer["pools"][0]["desiredReplicas"] == json!(3) {
                assert_eq!(answer["pools"][0]["size"], json!(3));
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{name}: no autoscaling signal: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let metrics = instance.metrics().await;
        assert!(
            metrics.contains("src_executors_queue_size{queue=\"codeintel\"} 3"),
            "{name}"
        );
        assert!(
            metrics.contains("src_executor_total{queue=\"codeintel\"} 3"),
            "{name}"
        );

        let metrics_address = format!("127.0.0.1:{}", common::free_port());
        // scip-typescript is installed on this host, not in an image.
        let (mut executor, log) = start_executor(
            &instance,
            work.path(),
            &metrics_address,
            &[
                ("EXECUTOR_SANDBOX_ROOTFS", "host"),
                ("EXECUTOR_HEARTBEAT_INTERVAL", "500ms"),
            ],
        );
        let nodes = settled(&instance, 3, &log).await;
        let uploaded: Vec<&Value> = nodes
            .iter()
            .filter(|n| n["state"] == "QUEUED_FOR_PROCESSING")
            .collect();
        assert_eq!(uploaded.len(), 2, "{name}: two indexes uploaded: {nodes:?}");
        let done = uploaded
            .iter()
            .find(|n| n["inputIndexer"] == "host")
            .unwrap_or_else(|| panic!("{nodes:?}"));
        assert!(
            uploaded
                .iter()
                .any(|n| n["inputIndexer"] == "sourcegraph/scip-typescript:autoindex"),
            "{name}: the inferred job: {nodes:?}"
        );
        // The upload is a SCIP index from scip-typescript, stored in blob storage.
        let upload_log = done["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["key"] == "upload"))
            .and_then(|s| s["out"].as_str())
            .unwrap_or_default()
            .to_string();
        let upload_id = upload_log
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        let blob = instance
            .data_dir
            .join("blobs")
            .join(format!("upload-{upload_id}.scip.gz"));
        let mut index = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(
                std::fs::File::open(&blob).expect("the stored upload"),
            ),
            &mut index,
        )
        .expect("gzipped");
        assert!(
            String::from_utf8_lossy(&index).contains("scip-typescript"),
            "{name}: {upload_log}"
        );
        let indexer = done["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["key"] == "indexer"))
            .expect("indexer step");
        let out = indexer["out"].as_str().unwrap_or("");
        assert!(out.contains("indexed"), "{name}: {out}");
        // The workspace is a git repository at the job's commit, clean, whose objects (borrowed
        // from the executor's mirror) the sandboxed step can read.
        let commit = done["inputCommit"].as_str().expect("commit");
        assert!(
            out.contains(&format!("{commit}\n")) && !out.contains("?? "),
            "{name}: {out}"
        );
        assert_eq!(indexer["exitCode"], json!(0));
        assert!(
            !out.contains(SECRET) && out.contains("PASSWORD_REMOVED"),
            "{name}: the secret is redacted: {out}"
        );
        if common::executor_runtime() == "bubblewrap" {
            assert!(
                out.contains("65534"),
                "{name}: the step ran as nobody in the sandbox: {out}"
            );
            assert_eq!(
                network_interfaces(out),
                ["lo"],
                "{name}: no network for a queue not in executors.jobNetwork: {out}"
            );
        }
        let failed = nodes
            .iter()
            .find(|n| n["state"] == "INDEXING_ERRORED")
            .unwrap_or_else(|| panic!("{nodes:?}"));
        assert_eq!(
            failed["failure"],
            json!("step indexer failed with exit code 3"),
            "{name}"
        );
        assert_eq!(failed["inputCommit"], done["inputCommit"]);

        // The executor is listed as active.
        let executors = instance
            .data(
                "{ executors(active: true) { nodes { hostname queueNames active gitVersion } } }",
                json!({}),
            )
            .await;
        let listed = &executors["executors"]["nodes"][0];
        assert_eq!(listed["queueNames"], json!(["codeintel"]));
        assert_eq!(listed["active"], json!(true));

        // The executor's own metrics.
        let metrics = reqwest::get(format!("http://{metrics_address}/metrics"))
            .await
            .expect("executor metrics")
            .text()
            .await
            .expect("text");
        for expected in [
            "src_executor_processor_total{op=\"handle\",queue=\"codeintel\"} 3",
            "src_executor_processor_errors_total{op=\"handle\",queue=\"codeintel\"} 1",
            "src_apiworker_apiclient_queue_total{op=\"dequeue\"}",
            "src_executor_processor_handlers{queue=\"codeintel\"} 0",
        ] {
            assert!(
                metrics.contains(expected),
                "{name}: {expected} missing from:\n{metrics}"
            );
        }

        // The instance serves the metrics the executor sends in its heartbeats, labelled with
        // its name, in a well-formed exposition.
        let hostname = listed["hostname"].as_str().expect("hostname");
        let relayed = format!(
            "src_executor_processor_total{{op=\"handle\",queue=\"codeintel\",sg_instance=\"{hostname}\",sg_job=\"sourcegraph-executors\"}} 3"
        );
        let started = Instant::now();
        loop {
            let metrics = instance.metrics().await;
            if metrics.contains(&relayed) {
                common::check_with_promtool(&metrics);
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{name}: {relayed} missing from:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // SIGTERM: it drains and exits cleanly; workspaces are gone.
        // SAFETY: signals the executor this test started.
        unsafe { libc::kill(executor.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        let status = loop {
            if let Some(status) = executor.try_wait().expect("status") {
                break status;
            }
            assert!(started.elapsed() < DEADLINE, "the executor did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let left: Vec<_> = std::fs::read_dir(work.path().join("workspaces"))
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "workspaces left behind: {left:?}");
        drop(instance);
        database.cleanup().await;
    }
}

/// Steps on their OCI image (from a layout directory) with the network their queue allows, and
/// a step whose image is missing failing with the reason.
#[tokio::test]
async fn steps_run_on_their_image_with_the_network_their_queue_allows() {
    if common::executor_runtime() != "bubblewrap" {
        return;
    }
    let busybox = quarry_images::testing::static_busybox();
    assert!(
        busybox.is_some() || std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "this test needs Debian's busybox-static (QUARRY_REQUIRE_TOOLS is set)"
    );
    let Some(busybox) = busybox else { return };
    for database in Database::all().await {
        let name = database.name();
        let work = tempfile::tempdir().expect("temp dir");
        let layout = work.path().join("layout");
        quarry_images::testing::add_busybox_image(&layout, "v1", &busybox).expect("image");
        let repo = TestRepo::init(&work.path().join("code/app")).expect("init");
        repo.commit(&[("README.md", "app\n")], "first")
            .expect("commit");
        let site =
            json!({ "executors.accessToken": SECRET, "executors.jobNetwork": ["codeintel"] });
        let (instance, repo_id) =
            serve(work.path(), &work.path().join("code"), &site, &database).await;
        let queue = "mutation($repo: ID!, $config: String) { queueAutoIndexJobsForRepo(repository: $repo, configuration: $config) { id } }";
        let image = format!("oci:{}:v1", layout.display());
        let on_image = json!({ "index_jobs": [{
            "indexer": image,
            "indexer_args": ["sh", "-c", "cat /etc/image-release; echo \"$IMAGE_GREETING\"; cat /proc/net/dev; printf '\\012\\005\\022\\003\\012\\001t' > index.scip"],
        }]});
        let missing = json!({ "index_jobs": [{
            "indexer": format!("oci:{}:v2", layout.display()),
            "indexer_args": ["true"],
        }]});
        for configuration in [on_image, missing] {
            instance
                .data(
                    queue,
                    json!({ "repo": repo_id, "config": configuration.to_string() }),
                )
                .await;
        }
        let cache = work.path().join("images");
        let (mut executor, log) = start_executor(
            &instance,
            work.path(),
            "",
            &[("EXECUTOR_IMAGE_CACHE_DIR", cache.to_str().expect("path"))],
        );
        let nodes = settled(&instance, 2, &log).await;
        let done = nodes
            .iter()
            .find(|n| n["state"] == "QUEUED_FOR_PROCESSING")
            .unwrap_or_else(|| panic!("{name}: {nodes:?}"));
        let out = done["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["key"] == "indexer"))
            .and_then(|s| s["out"].as_str())
            .unwrap_or_default();
        assert!(
            out.contains("quarry test image") && out.contains("from the image"),
            "{name}: the step ran on its image: {out}"
        );
        assert!(
            out.contains(&format!("quarry: image {image} (sha256:")),
            "{name}: the log says which image: {out}"
        );
        let interfaces = network_interfaces(out);
        assert!(
            interfaces.iter().any(|i| i != "lo"),
            "{name}: executors.jobNetwork lets codeintel steps use the network: {out}"
        );
        let failed = nodes
            .iter()
            .find(|n| n["state"] == "INDEXING_ERRORED")
            .unwrap_or_else(|| panic!("{name}: {nodes:?}"));
        let failure = failed["failure"].as_str().unwrap_or_default();
        assert!(
            failure.contains("cannot get its image") && failure.contains("no image tagged \"v2\""),
            "{name}: {failure}"
        );
        let _ = executor.kill();
        let _ = executor.wait();
        drop(instance);
        database.cleanup().await;
    }
}

/// A step's log is on the instance within about a second of the step writing it, while the
/// step still runs; a short step's whole entry arrives when it ends.
#[tokio::test]
async fn a_running_steps_log_is_shown_while_it_runs() {
    for database in Database::all().await {
        let name = database.name();
        let work = tempfile::tempdir().expect("temp dir");
        let repo = TestRepo::init(&work.path().join("code/app")).expect("init");
        repo.commit(&[("README.md", "app\n")], "first")
            .expect("commit");
        let site = json!({ "executors.accessToken": SECRET });
        let (instance, repo_id) =
            serve(work.path(), &work.path().join("code"), &site, &database).await;
        let queue = "mutation($repo: ID!, $config: String) { queueAutoIndexJobsForRepo(repository: $repo, configuration: $config) { id } }";
        let job = json!({ "index_jobs": [{
            "indexer": "host",
            "indexer_args": ["sh", "-c", "echo started; sleep 4; echo finished; printf '\\012\\005\\022\\003\\012\\001t' > index.scip"],
        }]});
        instance
            .data(queue, json!({ "repo": repo_id, "config": job.to_string() }))
            .await;
        let (mut executor, log) = start_executor(
            &instance,
            work.path(),
            "",
            &[("EXECUTOR_SANDBOX_ROOTFS", "host")],
        );
        let step = |nodes: &[Value]| {
            nodes
                .first()
                .and_then(|n| n["steps"].as_array())
                .and_then(|s| s.iter().find(|s| s["key"] == "indexer"))
                .cloned()
        };
        // Seen running: the first line is there, and no exit code yet.
        let started = Instant::now();
        loop {
            let nodes = common::precise_indexes(&instance).await;
            if let Some(running) = step(&nodes)
                && running["out"]
                    .as_str()
                    .is_some_and(|o| o.contains("started"))
            {
                assert!(running["exitCode"].is_null(), "{name}: {running}");
                assert!(
                    !running["out"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("finished"),
                    "{name}: {running}"
                );
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{name}: the running step's log never arrived: {nodes:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let nodes = settled(&instance, 1, &log).await;
        let ended = step(&nodes).unwrap_or_else(|| panic!("{name}: {nodes:?}"));
        assert_eq!(ended["exitCode"], json!(0), "{name}: {ended}");
        let out = ended["out"].as_str().unwrap_or_default();
        assert!(
            out.contains("started") && out.contains("finished"),
            "{name}: {out}"
        );
        let upload = nodes[0]["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["key"] == "upload"))
            .unwrap_or_else(|| panic!("{name}: {nodes:?}"));
        assert_eq!(upload["exitCode"], json!(0), "{name}: {upload}");
        let _ = executor.kill();
        let _ = executor.wait();
        drop(instance);
        database.cleanup().await;
    }
}

#[tokio::test]
async fn executor_validate_says_what_is_wrong() {
    let output = Command::new(common::binary())
        .args(["executor", "validate"])
        .env_remove("EXECUTOR_FRONTEND_URL")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("EXECUTOR_FRONTEND_URL is required"));
    let output = Command::new(common::binary())
        .args(["executor", "validate"])
        .env(
            "EXECUTOR_FRONTEND_URL",
            format!("http://127.0.0.1:{}", common::free_port()),
        )
        .env("EXECUTOR_FRONTEND_PASSWORD", "x")
        .env("EXECUTOR_QUEUE_NAME", "codeintel")
        .env("EXECUTOR_DOCKER_AUTH_CONFIG", "{not json")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("/.executors/test/auth") && errors.contains("cannot reach"),
        "{errors}"
    );
    if common::executor_runtime() == "bubblewrap" {
        assert!(
            errors.contains("the Docker auth config is not valid"),
            "{errors}"
        );
    }
    // Bad values of the new variables are named.
    for (name, value) in [
        ("EXECUTOR_SANDBOX_ROOTFS", "chroot"),
        ("EXECUTOR_JOB_NETWORK", "sometimes"),
        ("EXECUTOR_DOCKER_REGISTRY_MIRROR_URL", "mirror.local"),
        ("EXECUTOR_IMAGE_MAX_SIZE", "huge"),
    ] {
        let output = Command::new(common::binary())
            .args(["executor", "validate"])
            .env("EXECUTOR_FRONTEND_URL", "http://127.0.0.1:1")
            .env("EXECUTOR_FRONTEND_PASSWORD", "x")
            .env("EXECUTOR_QUEUE_NAME", "codeintel")
            .env(name, value)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1));
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(errors.contains(name), "{name}: {errors}");
    }
}
