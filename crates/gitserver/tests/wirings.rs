//! The same behaviour from the in-process gitserver and from a gitserver reached over HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use quarry_gitserver::testing::TestRepo;
use quarry_gitserver::{EntryKind, GitError, GitService, HttpGitClient, LocalGitService};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Serves a gitserver on a loopback port and returns its client.
async fn remote(git: Arc<LocalGitService>, secret: Option<&str>) -> HttpGitClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let router = quarry_gitserver::http::router(git, secret.map(str::to_string));
    tokio::spawn(async move { axum::serve(listener, router).await });
    HttpGitClient::new(&address, secret.map(str::to_string))
}

async fn scenario(git: &dyn GitService, local: &LocalGitService, work: &std::path::Path) {
    let origin = TestRepo::init(&work.join("origin")).unwrap();
    let first = origin
        .commit(
            &[("README.md", "# hello\n"), ("src/lib.rs", "fn a() {}\n")],
            "first",
        )
        .unwrap();
    let url = origin.path.display().to_string();

    let synced = git.sync("team/origin", &url, TIMEOUT).await.unwrap();
    assert!(synced.changed);
    assert_eq!(synced.default_branch.as_deref(), Some("main"));
    assert_eq!(synced.head_commit.as_deref(), Some(first.as_str()));
    // The head commit's time, which says how long the repository has been quiet.
    let committed_at = synced.head_committed_at.expect("the head commit's time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - committed_at).abs() < 600, "{committed_at}");
    assert!(git.is_cloned("team/origin").await.unwrap());

    assert_eq!(
        git.resolve_revision("team/origin", "main").await.unwrap(),
        first
    );
    assert!(matches!(
        git.resolve_revision("team/origin", "no-such-branch").await,
        Err(GitError::RevisionNotFound { .. })
    ));
    assert!(matches!(
        git.resolve_revision("team/origin", "--output=/tmp/x").await,
        Err(GitError::InvalidArgument(_))
    ));
    assert!(matches!(
        git.resolve_revision("team/absent", "main").await,
        Err(GitError::NotCloned(_))
    ));

    let root = git.list_tree("team/origin", &first, "").await.unwrap();
    let names: Vec<_> = root.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        names,
        [
            ("README.md", EntryKind::File),
            ("src", EntryKind::Directory)
        ]
    );
    let src = git.list_tree("team/origin", &first, "src").await.unwrap();
    assert_eq!(src[0].path, "src/lib.rs");
    assert_eq!(src[0].size, Some(10));
    assert!(matches!(
        git.list_tree("team/origin", &first, "nope").await,
        Err(GitError::PathNotFound { .. })
    ));
    assert!(matches!(
        git.list_tree("team/origin", &first, "../etc").await,
        Err(GitError::InvalidArgument(_))
    ));

    let content = git
        .read_file("team/origin", &first, "src/lib.rs")
        .await
        .unwrap();
    assert_eq!(&content[..], b"fn a() {}\n");
    assert!(matches!(
        git.read_file("team/origin", &first, "missing.txt").await,
        Err(GitError::PathNotFound { .. })
    ));
    assert!(matches!(
        git.read_file("team/origin", "main", "README.md").await,
        Err(GitError::InvalidArgument(_))
    ));

    let second = origin
        .commit(
            &[("src/lib.rs", "fn a() {}\nfn b() {}\n")],
            "second\n\nwith a body",
        )
        .unwrap();
    let unchanged_before_fetch = git.resolve_revision("team/origin", "main").await.unwrap();
    assert_eq!(unchanged_before_fetch, first);
    let fetched = git.sync("team/origin", &url, TIMEOUT).await.unwrap();
    assert!(fetched.changed);
    assert!(!fetched.recloned);
    assert_eq!(fetched.head_commit.as_deref(), Some(second.as_str()));
    let again = git.sync("team/origin", &url, TIMEOUT).await.unwrap();
    assert!(
        !again.changed,
        "a fetch that moves nothing reports no change"
    );

    let log = git.commit_log("team/origin", "main", 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].oid, second);
    assert_eq!(log[0].message, "second\n\nwith a body");
    assert_eq!(log[0].parents, std::slice::from_ref(&first));
    assert_eq!(log[0].author.email, "test@quarry.invalid");
    assert_eq!(
        git.commit("team/origin", &first).await.unwrap().message,
        "first"
    );

    let diff = git.diff("team/origin", &first, &second).await.unwrap();
    assert!(diff.contains("+fn b() {}"), "{diff}");

    let mut archive = Vec::new();
    let mut stream = git.archive("team/origin", &second).await.unwrap();
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.unwrap());
    }
    assert!(archive.windows(10).any(|w| w == b"src/lib.rs"));
    assert!(archive.len() % 512 == 0 && archive.len() >= 1024);

    let files = git.list_files("team/origin", &second).await.unwrap();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["README.md", "src/lib.rs"]);
    let oids: Vec<String> = files.iter().map(|f| f.oid.clone()).collect();
    let mut blobs = Vec::new();
    let mut stream = git.read_blobs("team/origin", oids.clone()).await.unwrap();
    while let Some(chunk) = stream.next().await {
        blobs.extend_from_slice(&chunk.unwrap());
    }
    let expected = format!(
        "{} blob 8\n# hello\n\n{} blob 20\nfn a() {{}}\nfn b() {{}}\n\n",
        oids[0], oids[1]
    );
    assert_eq!(String::from_utf8_lossy(&blobs), expected);
    // An object the mirror lacks is said to be missing, and the others still come; the same
    // once the mirror's objects are packed.
    let absent = format!("{}1", "0".repeat(39));
    let read = |oids: Vec<String>| async move {
        let mut blobs = Vec::new();
        let mut stream = git.read_blobs("team/origin", oids).await.unwrap();
        while let Some(chunk) = stream.next().await {
            blobs.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(blobs).unwrap()
    };
    let with_absent = vec![absent.clone(), oids[0].clone()];
    let expected_with_absent = format!("{absent} missing\n{} blob 8\n# hello\n\n", oids[0]);
    assert_eq!(read(with_absent.clone()).await, expected_with_absent);
    let mirror = local.mirror_path("team/origin").unwrap();
    let packed = std::process::Command::new("git")
        .args(["-C", &mirror.display().to_string(), "repack", "-adq"])
        .status()
        .unwrap();
    assert!(packed.success());
    assert_eq!(read(oids.clone()).await, expected);
    assert_eq!(read(with_absent).await, expected_with_absent);
    assert!(matches!(
        git.read_blobs("team/origin", vec!["HEAD".into()]).await,
        Err(GitError::InvalidArgument(_))
    ));

    let advertisement = git
        .upload_pack_advertisement("team/origin", None)
        .await
        .unwrap();
    assert!(advertisement.starts_with(b"001e# service=git-upload-pack\n0000"));
    assert!(
        advertisement
            .windows(second.len())
            .any(|w| w == second.as_bytes())
    );

    // A damaged mirror is detected and cloned again; nothing half-made is ever served.
    let mirror = local.mirror_path("team/origin").unwrap();
    std::fs::remove_file(mirror.join("HEAD")).unwrap();
    let repaired = git.sync("team/origin", &url, TIMEOUT).await.unwrap();
    assert!(repaired.recloned);
    assert_eq!(repaired.head_commit.as_deref(), Some(second.as_str()));

    // An unreachable remote fails with git's own message and leaves no mirror behind.
    let missing = work.join("does-not-exist").display().to_string();
    let err = git
        .sync("team/missing", &missing, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not exist") || err.to_string().contains("not appear"),
        "{err}"
    );
    assert!(!git.is_cloned("team/missing").await.unwrap());
    assert!(!local.mirror_path("team/missing").unwrap().exists());
    assert_eq!(
        std::fs::read_dir(local.root().join(".tmp"))
            .unwrap()
            .count(),
        0
    );

    assert!(matches!(
        git.sync("../escape", &url, TIMEOUT).await,
        Err(GitError::InvalidName { .. })
    ));
    assert!(matches!(
        git.sync("x", "--upload-pack=touch /tmp/pwned", TIMEOUT)
            .await,
        Err(GitError::InvalidArgument(_))
    ));

    git.remove("team/origin").await.unwrap();
    assert!(!git.is_cloned("team/origin").await.unwrap());
    git.ping().await.unwrap();
}

#[tokio::test]
async fn in_process() {
    let work = tempfile::tempdir().unwrap();
    let local = LocalGitService::open(&work.path().join("mirrors")).unwrap();
    scenario(&local, &local, work.path()).await;
}

#[tokio::test]
async fn over_http() {
    let work = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalGitService::open(&work.path().join("mirrors")).unwrap());
    let client = remote(local.clone(), Some("internal-secret-for-tests")).await;
    scenario(&client, &local, work.path()).await;
}

#[tokio::test]
async fn remote_gitserver_refuses_callers_without_the_secret() {
    let work = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalGitService::open(&work.path().join("mirrors")).unwrap());
    let right = remote(local.clone(), Some("the-right-secret")).await;
    let wrong = HttpGitClient::new(right.address(), Some("the-wrong-secret".to_string()));
    let err = wrong.ping().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    right.ping().await.unwrap();
}

#[tokio::test]
async fn leftovers_of_a_crash_are_cleared_at_open() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("mirrors");
    std::fs::create_dir_all(root.join(".tmp/half-made-clone/objects")).unwrap();
    let local = LocalGitService::open(&root).unwrap();
    assert_eq!(
        std::fs::read_dir(local.root().join(".tmp"))
            .unwrap()
            .count(),
        0
    );
}
