//! The sandbox with real bubblewrap and cgroups: a step that reaches for what it should not is
//! contained, and the step's end leaves nothing running.

use std::path::Path;
use std::time::{Duration, Instant};

use quarry_executor::sandbox::{Limits, Root, Runtime, Step, StepEnd, run_step};
use quarry_images::{ImageStore, Options, Provenance, testing};
use tokio_util::sync::CancellationToken;

const LIMITS: Limits = Limits {
    memory_bytes: 256 << 20,
    max_processes: 64,
    cpus: 1.0,
    network: false,
};

/// Whether bubblewrap and writable cgroups are here; CI (`QUARRY_REQUIRE_TOOLS`) must have them.
fn available() -> bool {
    let bwrap = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let present = bwrap && root;
    assert!(
        present || std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "the sandbox tests need bubblewrap and root (for cgroups); QUARRY_REQUIRE_TOOLS is set"
    );
    if !present {
        eprintln!("skipping sandbox checks: they need Debian's bubblewrap and root");
    }
    present
}

/// Runs a script in the sandbox on the host's directories; answers how it ended and what it
/// printed.
async fn sandboxed(
    workspace: &Path,
    script: &str,
    limits: Limits,
    timeout: Duration,
) -> (StepEnd, String) {
    sandboxed_on(Root::Host, workspace, script, limits, timeout).await
}

async fn sandboxed_on(
    root: Root<'_>,
    workspace: &Path,
    script: &str,
    limits: Limits,
    timeout: Duration,
) -> (StepEnd, String) {
    let mut output = Vec::new();
    let name = format!("test-{}-{}", std::process::id(), fastrand::u64(..));
    let end = run_step(
        Runtime::Sandbox,
        &name,
        &Step {
            script,
            workspace,
            dir: "",
            env: &[("GREETING".into(), "hello".into())],
            root,
            readable: None,
            deadline: Instant::now() + timeout,
        },
        &limits,
        &CancellationToken::new(),
        &mut |bytes: &[u8]| output.extend_from_slice(bytes),
    )
    .await
    .expect("the step starts");
    (end, String::from_utf8_lossy(&output).into_owned())
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("workspace");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

#[tokio::test]
async fn a_step_writes_its_workspace_and_nothing_else() {
    if !available() {
        return;
    }
    let dir = workspace();
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.txt"), "do not read").expect("write");
    let script = format!(
        "echo \"$GREETING\" > made.txt; id -u; \
         touch /usr/evil 2>/dev/null || echo usr-refused; \
         touch /etc/evil 2>/dev/null || echo etc-refused; \
         cat {}/secret.txt 2>/dev/null || echo outside-unreadable; \
         ls /root 2>/dev/null || echo no-root; \
         env",
        outside.path().display()
    );
    // SAFETY: set in this test's process only, to see that steps do not inherit it.
    unsafe { std::env::set_var("QUARRY_EXECUTOR_SECRET_FOR_TEST", "s3cret") };
    let (end, out) = sandboxed(dir.path(), &script, LIMITS, Duration::from_secs(30)).await;
    assert_eq!(end, StepEnd::Exited(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("made.txt")).expect("made"),
        "hello\n"
    );
    for expected in [
        "65534",
        "usr-refused",
        "etc-refused",
        "outside-unreadable",
        "no-root",
    ] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }
    assert!(
        !out.contains("s3cret"),
        "the executor's environment leaked:\n{out}"
    );
    assert!(!out.contains("do not read"));
}

#[tokio::test]
async fn the_network_is_off_unless_allowed_and_other_processes_are_out_of_reach() {
    if !available() {
        return;
    }
    let dir = workspace();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let connect = format!("curl -s -m 3 http://127.0.0.1:{port}/ >/dev/null 2>&1; echo curl=$?");
    let (_, out) = sandboxed(dir.path(), &connect, LIMITS, Duration::from_secs(30)).await;
    assert!(
        !out.contains("curl=0") && listener.accept().is_err(),
        "reached the host: {out}"
    );
    let open = Limits {
        network: true,
        ..LIMITS
    };
    let (_, out) = sandboxed(dir.path(), &connect, open, Duration::from_secs(30)).await;
    assert!(
        listener.accept().is_ok(),
        "with networking on, the host is reachable: {out}"
    );

    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let kill = format!(
        "kill -9 {} 2>/dev/null && echo killed || echo not-found",
        bystander.id()
    );
    let (_, out) = sandboxed(dir.path(), &kill, LIMITS, Duration::from_secs(30)).await;
    assert!(out.contains("not-found"), "{out}");
    assert!(
        bystander.try_wait().expect("status").is_none(),
        "the bystander still runs"
    );
    let _ = bystander.kill();
}

#[tokio::test]
async fn fork_bombs_memory_hogs_and_slow_steps_are_stopped_with_everything_they_started() {
    if !available() {
        return;
    }
    let dir = workspace();
    let small = Limits {
        max_processes: 16,
        memory_bytes: 64 << 20,
        ..LIMITS
    };
    // More processes than allowed: forks fail (the shell gives up, or the deadline stops it).
    let bomb = "i=0; while [ $i -lt 100 ]; do sleep 30.25 & i=$((i+1)); done; echo spawned; wait";
    let started = Instant::now();
    let (end, out) = sandboxed(dir.path(), bomb, small, Duration::from_secs(3)).await;
    assert!(
        matches!(end, StepEnd::TimedOut | StepEnd::Exited(1..)),
        "{end:?}: {out}"
    );
    assert!(
        out.to_lowercase().contains("fork") || out.contains("Resource temporarily unavailable"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let leftovers = std::process::Command::new("pgrep")
        .args(["-f", "sleep 30.25"])
        .output()
        .expect("pgrep");
    assert!(leftovers.stdout.is_empty(), "processes survived the step");

    // More memory than allowed: the step is killed and says why.
    let hog = "head -c 400000000 /dev/zero | tail > /dev/null; echo exit=$?";
    let (_, out) = sandboxed(dir.path(), hog, small, Duration::from_secs(60)).await;
    assert!(
        out.contains("exit=137") || out.contains("ran out of memory"),
        "{out}"
    );

    // A step past its deadline is stopped, background children included.
    let slow = "sleep 40.5 & sleep 40.5";
    let started = Instant::now();
    let (end, _) = sandboxed(dir.path(), slow, LIMITS, Duration::from_millis(500)).await;
    assert_eq!(end, StepEnd::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10));
    let leftovers = std::process::Command::new("pgrep")
        .args(["-f", "sleep 40.5"])
        .output()
        .expect("pgrep");
    assert!(
        leftovers.stdout.is_empty(),
        "processes survived the timeout"
    );
}

#[tokio::test]
async fn dangerous_system_calls_are_refused() {
    if !available() {
        return;
    }
    let dir = workspace();
    let script = "unshare -U true 2>&1; echo unshare=$?; \
                  mkdir -p m; mount -t tmpfs none m 2>&1; echo mount=$?; \
                  date -s 2000-01-01 >/dev/null 2>&1; echo clock=$?; echo still-running";
    let (end, out) = sandboxed(dir.path(), script, LIMITS, Duration::from_secs(30)).await;
    assert_eq!(end, StepEnd::Exited(0), "{out}");
    for refused in ["unshare=1", "mount=32", "clock=1"] {
        let (call, _) = refused.split_once('=').expect("pair");
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{call}=")))
            .unwrap_or("");
        assert_ne!(line, format!("{call}=0"), "{call} succeeded:\n{out}");
    }
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("still-running"));
}

#[tokio::test]
async fn a_canceled_step_stops_at_once() {
    if !available() {
        return;
    }
    let dir = workspace();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let end = run_step(
        Runtime::Sandbox,
        &format!("cancel-{}", std::process::id()),
        &Step {
            script: "sleep 50.75",
            workspace: dir.path(),
            dir: "",
            env: &[],
            root: Root::Host,
            readable: None,
            deadline: Instant::now() + Duration::from_secs(60),
        },
        &LIMITS,
        &cancel,
        &mut |_: &[u8]| {},
    )
    .await
    .expect("the step starts");
    assert_eq!(end, StepEnd::Canceled);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_step_runs_on_its_image_and_sees_nothing_of_the_host() {
    if !available() {
        return;
    }
    let busybox = testing::static_busybox();
    assert!(
        busybox.is_some() || std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "this test needs Debian's busybox-static; QUARRY_REQUIRE_TOOLS is set"
    );
    let Some(busybox) = busybox else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    testing::add_busybox_image(&layout, "v1", &busybox).expect("layout");
    let images = ImageStore::new(Options {
        cache_dir: work.path().join("cache"),
        ..Options::default()
    })
    .expect("store");
    let (image, provenance) = images
        .get(&format!("oci:{}:v1", layout.display()))
        .await
        .expect("image");
    assert!(matches!(provenance, Provenance::Unpacked { layers: 2, .. }));
    let dir = workspace();
    let script = "cat /etc/image-release; echo \"$IMAGE_GREETING / $GREETING\"; \
        test -e /usr/bin/git || echo no-host-tools; test -e /etc/removed || echo whiteout-applied; \
        touch /bin/planted 2>/dev/null || echo root-read-only; id -u; echo made > /work/out.txt";
    let (end, output) = sandboxed_on(
        Root::Image(&image),
        dir.path(),
        script,
        LIMITS,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(end, StepEnd::Exited(0), "{output}");
    for expected in [
        "quarry test image",
        "from the image / hello",
        "no-host-tools",
        "whiteout-applied",
        "root-read-only",
        "65534",
    ] {
        assert!(output.contains(expected), "{expected:?} in {output}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).expect("out"),
        "made\n"
    );
    assert!(!image.rootfs.join("bin/planted").exists());
}
