//! The repo updater against a real store (SQLite and PostgreSQL) and real git repositories.

use std::sync::Arc;

use quarry_config::{LiveSiteConfig, SiteConfig};
use quarry_gitserver::testing::TestRepo;
use quarry_gitserver::{GitService, LocalGitService};
use quarry_repos::{ConnectionConfig, RepoUpdater, connection_for_argument};
use quarry_store::testing::with_each_store;
use quarry_store::{CloneStatus, ExternalServiceKind, Store};

async fn fetch_all_due(updater: &RepoUpdater, store: &Store) {
    for repo in store
        .repos_due_for_fetch(quarry_store::now(), 100)
        .await
        .unwrap()
    {
        updater.fetch(&repo).await.unwrap();
    }
}

#[tokio::test]
async fn connections_become_mirrors_and_problems_stay_with_their_repository() {
    with_each_store(|store| async move {
        let work = tempfile::tempdir().unwrap();
        let code = work.path().join("code");
        let alpha = TestRepo::init(&code.join("alpha")).unwrap();
        alpha.commit(&[("a.txt", "alpha\n")], "alpha").unwrap();
        let beta = TestRepo::init(&code.join("nested/beta")).unwrap();
        let beta_head = beta.commit(&[("b.txt", "beta\n")], "beta").unwrap();

        let git = Arc::new(LocalGitService::open(&work.path().join("mirrors")).unwrap());
        let updater = RepoUpdater::new(
            store.clone(),
            git.clone(),
            LiveSiteConfig::new(1, SiteConfig::default()),
        );

        let local = connection_for_argument(&code.display().to_string(), work.path()).unwrap();
        let service = store
            .create_external_service(ExternalServiceKind::Local, "code", &local.to_json())
            .await
            .unwrap();
        let unreachable = ConnectionConfig::parse(
            ExternalServiceKind::Other,
            &format!(
                r#"{{"url": "file://{}", "repos": ["gone.git"]}}"#,
                work.path().display()
            ),
        )
        .unwrap();
        let broken = store
            .create_external_service(ExternalServiceKind::Other, "broken", &unreachable.to_json())
            .await
            .unwrap();
        updater.sync_due_connections().await.unwrap();
        fetch_all_due(&updater, &store).await;

        let alpha_repo = store.repo_by_name("alpha").await.unwrap().unwrap();
        assert_eq!(alpha_repo.clone_status, CloneStatus::Cloned);
        assert_eq!(alpha_repo.default_branch.as_deref(), Some("main"));
        let beta_repo = store.repo_by_name("nested/beta").await.unwrap().unwrap();
        assert_eq!(beta_repo.head_commit.as_deref(), Some(beta_head.as_str()));
        let gone = store.repo_by_name("gone").await.unwrap().unwrap();
        assert_eq!(gone.clone_status, CloneStatus::Failed);
        assert!(
            gone.last_error
                .as_deref()
                .unwrap_or("")
                .contains("does not appear to be a git repository"),
            "{:?}",
            gone.last_error
        );
        assert!(
            gone.next_fetch_at > quarry_store::now(),
            "a failure backs off"
        );

        // A second connection that would give another repository the same name is refused, and
        // the first keeps it.
        let impostor = TestRepo::init(&work.path().join("elsewhere/alpha")).unwrap();
        impostor.commit(&[("x", "x")], "x").unwrap();
        let clash = connection_for_argument(
            &work.path().join("elsewhere").display().to_string(),
            work.path(),
        )
        .unwrap();
        let clash_service = store
            .create_external_service(ExternalServiceKind::Local, "clash", &clash.to_json())
            .await
            .unwrap();
        let report = updater.sync_connection(&clash_service).await.unwrap();
        assert_eq!(report.listed, 0);
        assert!(report.problems[0].contains("already taken"), "{report:?}");
        let kept = store.repo_by_name("alpha").await.unwrap().unwrap();
        assert_eq!(kept.external_service_id, service.id);
        let services = store.list_external_services().await.unwrap();
        let recorded = services.iter().find(|s| s.id == clash_service.id).unwrap();
        assert!(
            recorded
                .last_sync_error
                .as_deref()
                .unwrap()
                .contains("alpha")
        );
        assert!(
            services
                .iter()
                .find(|s| s.id == broken.id)
                .unwrap()
                .last_sync_error
                .is_none(),
            "listing an unreachable URL is not a connection problem; cloning it is the repository's"
        );

        // A repository removed from its directory is removed, mirror and all.
        std::fs::remove_dir_all(&beta.path).unwrap();
        let report = updater.sync_connection(&service).await.unwrap();
        assert_eq!(report.removed, ["nested/beta"]);
        assert!(store.repo_by_name("nested/beta").await.unwrap().is_none());
        assert!(!git.is_cloned("nested/beta").await.unwrap());

        // A root that vanished is an error on the connection and deletes nothing.
        std::fs::remove_dir_all(&code).unwrap();
        assert!(updater.sync_connection(&service).await.is_err());
        assert!(store.repo_by_name("alpha").await.unwrap().is_some());
        let recorded = store.external_service(service.id).await.unwrap().unwrap();
        assert!(recorded.last_sync_error.unwrap().contains("cannot read"));
    })
    .await;
}

#[tokio::test]
async fn a_pushed_commit_arrives_with_the_next_fetch() {
    with_each_store(|store| async move {
        let work = tempfile::tempdir().unwrap();
        let origin = TestRepo::init(&work.path().join("solo")).unwrap();
        origin.commit(&[("f", "1")], "one").unwrap();
        let git = Arc::new(LocalGitService::open(&work.path().join("mirrors")).unwrap());
        let updater = RepoUpdater::new(
            store.clone(),
            git.clone(),
            LiveSiteConfig::new(1, SiteConfig::default()),
        );
        let config =
            connection_for_argument(&origin.path.display().to_string(), work.path()).unwrap();
        let service = store
            .create_external_service(ExternalServiceKind::Local, "solo", &config.to_json())
            .await
            .unwrap();
        updater.sync_connection(&service).await.unwrap();
        fetch_all_due(&updater, &store).await;
        let repo = store.repo_by_name("solo").await.unwrap().unwrap();
        assert_eq!(repo.fetch_interval_secs, 45);

        let second = origin.commit(&[("f", "2")], "two").unwrap();
        store.request_repo_fetch(repo.id).await.unwrap();
        fetch_all_due(&updater, &store).await;
        let repo = store.repo_by_name("solo").await.unwrap().unwrap();
        assert_eq!(repo.head_commit.as_deref(), Some(second.as_str()));
        assert_eq!(git.resolve_revision("solo", "HEAD").await.unwrap(), second);
    })
    .await;
}
