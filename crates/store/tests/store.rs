//! The store's behaviour, run against SQLite and (when `QUARRY_TEST_DATABASE_URL` is set) PostgreSQL.

use quarry_store::testing::with_each_store as on_both;
use quarry_store::{
    CloneStatus, ExternalServiceKind, FetchFailure, FetchSuccess, LinkPurpose, NewUser, RepoFilter,
    RepoUpsert, RepoUpsertOutcome, Store, StoreError, Viewer,
};

#[tokio::test]
async fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarry.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.save_site_config(None, "{}").await.unwrap();
    store.close().await;
    let reopened = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(
        reopened
            .latest_site_config()
            .await
            .unwrap()
            .unwrap()
            .contents,
        "{}"
    );
}

#[tokio::test]
async fn site_config_versions_are_kept_and_guarded_against_lost_updates() {
    on_both(|store| async move {
        assert!(store.latest_site_config().await.unwrap().is_none());
        let first = store.save_site_config(None, "{\"a\": 1}").await.unwrap();
        let second = store
            .save_site_config(Some(first.id), "{\"a\": 2}")
            .await
            .unwrap();
        assert!(second.id > first.id);
        let stale = store.save_site_config(Some(first.id), "{\"a\": 3}").await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        let history = store.site_config_history(10).await.unwrap();
        let contents: Vec<_> = history.iter().map(|v| v.contents.as_str()).collect();
        assert_eq!(contents, ["{\"a\": 2}", "{\"a\": 1}"]);
        assert_eq!(store.latest_site_config().await.unwrap().unwrap(), second);
    })
    .await;
}

#[tokio::test]
async fn external_services_round_trip_and_delete_their_repos() {
    on_both(|store| async move {
        let service = store
            .create_external_service(ExternalServiceKind::Local, "local", "{\"root\": \"/x\"}")
            .await
            .unwrap();
        assert_eq!(service.kind, ExternalServiceKind::Local);
        let updated = store
            .update_external_service(service.id, Some("renamed"), None)
            .await
            .unwrap();
        assert_eq!(updated.display_name, "renamed");
        assert_eq!(updated.config, service.config);
        store
            .record_external_service_sync(service.id, Some("boom"), 99)
            .await
            .unwrap();
        let listed = store.list_external_services().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_sync_error.as_deref(), Some("boom"));
        assert_eq!(listed[0].next_sync_at, 99);

        store
            .upsert_repo(RepoUpsert {
                external_service_id: service.id,
                name: "a",
                clone_url: "/x/a",
            })
            .await
            .unwrap();
        let removed = store.delete_external_service(service.id).await.unwrap();
        assert_eq!(removed, ["a"]);
        assert!(store.repo_by_name("a").await.unwrap().is_none());
        assert!(matches!(
            store.delete_external_service(service.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.update_external_service(service.id, None, None).await,
            Err(StoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn repo_names_are_unique_across_connections() {
    on_both(|store| async move {
        let one = store
            .create_external_service(ExternalServiceKind::Other, "one", "{}")
            .await
            .unwrap();
        let two = store
            .create_external_service(ExternalServiceKind::Other, "two", "{}")
            .await
            .unwrap();
        let upsert = |service: i64, url: &'static str| RepoUpsert {
            external_service_id: service,
            name: "host/r",
            clone_url: url,
        };
        assert_eq!(
            store
                .upsert_repo(upsert(one.id, "https://h/r"))
                .await
                .unwrap(),
            RepoUpsertOutcome::Created
        );
        assert_eq!(
            store
                .upsert_repo(upsert(one.id, "https://h/r"))
                .await
                .unwrap(),
            RepoUpsertOutcome::Unchanged
        );
        assert_eq!(
            store
                .upsert_repo(upsert(two.id, "https://h/r"))
                .await
                .unwrap(),
            RepoUpsertOutcome::ProvidedElsewhere
        );
        let conflict = store.upsert_repo(upsert(two.id, "https://other/r")).await;
        assert!(
            matches!(conflict, Err(StoreError::Conflict(_))),
            "{conflict:?}"
        );
        let repo = store.repo_by_name("host/r").await.unwrap().unwrap();
        assert_eq!(repo.clone_url, "https://h/r");
        assert_eq!(repo.external_service_id, one.id);
    })
    .await;
}

#[tokio::test]
async fn fetch_outcomes_drive_status_and_schedule() {
    on_both(|store| async move {
        let service = store
            .create_external_service(ExternalServiceKind::Other, "s", "{}")
            .await
            .unwrap();
        for name in ["a", "b", "c"] {
            store
                .upsert_repo(RepoUpsert {
                    external_service_id: service.id,
                    name,
                    clone_url: name,
                })
                .await
                .unwrap();
        }
        let due = store.repos_due_for_fetch(0, 10).await.unwrap();
        assert_eq!(due.len(), 3);
        let (a, b) = (&due[0], &due[1]);
        assert_eq!(a.clone_status, CloneStatus::NotCloned);

        store.mark_repo_cloning(a.id).await.unwrap();
        store
            .record_fetch_success(
                a.id,
                &FetchSuccess {
                    last_changed_at: 500,
                    default_branch: Some("main".into()),
                    head_commit: Some("abc".into()),
                    fetch_interval_secs: 45,
                    next_fetch_at: 1_000,
                },
            )
            .await
            .unwrap();
        store.mark_repo_cloning(b.id).await.unwrap();
        store
            .record_fetch_failure(
                b.id,
                &FetchFailure {
                    error: "fatal: repository not found".into(),
                    next_fetch_at: 2_000,
                },
            )
            .await
            .unwrap();
        let a = store.repo_by_id(a.id).await.unwrap().unwrap();
        assert_eq!(a.clone_status, CloneStatus::Cloned);
        assert_eq!(a.default_branch.as_deref(), Some("main"));
        assert_eq!(a.last_changed_at, Some(500), "dated by its head commit");
        let b = store.repo_by_id(b.id).await.unwrap().unwrap();
        assert_eq!(b.clone_status, CloneStatus::Failed);
        assert_eq!(b.failure_count, 1);
        assert_eq!(b.last_error.as_deref(), Some("fatal: repository not found"));

        // A failed fetch of a cloned repository keeps it cloned, with the error shown.
        store
            .record_fetch_failure(
                a.id,
                &FetchFailure {
                    error: "timeout".into(),
                    next_fetch_at: 3_000,
                },
            )
            .await
            .unwrap();
        let a = store.repo_by_id(a.id).await.unwrap().unwrap();
        assert_eq!(a.clone_status, CloneStatus::Cloned);
        assert_eq!(a.last_error.as_deref(), Some("timeout"));

        assert_eq!(store.repos_due_for_fetch(500, 10).await.unwrap().len(), 1);
        store.request_repo_fetch(a.id).await.unwrap();
        assert_eq!(store.repos_due_for_fetch(500, 10).await.unwrap().len(), 2);
        assert_eq!(store.next_fetch_due().await.unwrap(), Some(0));

        let counts = store.repo_status_counts().await.unwrap();
        assert!(counts.contains(&(CloneStatus::Cloned, 1)), "{counts:?}");
        assert!(counts.contains(&(CloneStatus::Failed, 1)), "{counts:?}");
        assert!(counts.contains(&(CloneStatus::NotCloned, 1)), "{counts:?}");
    })
    .await;
}

#[tokio::test]
async fn interrupted_clones_are_reset_after_a_crash() {
    on_both(|store| async move {
        let service = store
            .create_external_service(ExternalServiceKind::Other, "s", "{}")
            .await
            .unwrap();
        store
            .upsert_repo(RepoUpsert {
                external_service_id: service.id,
                name: "r",
                clone_url: "u",
            })
            .await
            .unwrap();
        let repo = store.repo_by_name("r").await.unwrap().unwrap();
        store.mark_repo_cloning(repo.id).await.unwrap();
        assert_eq!(store.reset_interrupted_clones().await.unwrap(), 1);
        let repo = store.repo_by_id(repo.id).await.unwrap().unwrap();
        assert_eq!(repo.clone_status, CloneStatus::NotCloned);
    })
    .await;
}

#[tokio::test]
async fn listing_filters_and_pages() {
    on_both(|store| async move {
        let service = store
            .create_external_service(ExternalServiceKind::Other, "s", "{}")
            .await
            .unwrap();
        for name in [
            "github.com/a/One",
            "github.com/a/two",
            "gitlab.com/b/three",
            "x/100%_done",
        ] {
            store
                .upsert_repo(RepoUpsert {
                    external_service_id: service.id,
                    name,
                    clone_url: name,
                })
                .await
                .unwrap();
        }
        let filter = RepoFilter {
            name_contains: Some("GITHUB".into()),
            ..Default::default()
        };
        assert_eq!(store.count_repos(&filter).await.unwrap(), 2);
        let page = store
            .list_repos(&RepoFilter {
                limit: Some(1),
                ..filter.clone()
            })
            .await
            .unwrap();
        assert_eq!(page[0].name, "github.com/a/One");
        let next = store
            .list_repos(&RepoFilter {
                after_id: Some(page[0].id),
                limit: Some(5),
                ..filter
            })
            .await
            .unwrap();
        let names: Vec<_> = next.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["github.com/a/two"]);
        let literal = RepoFilter {
            name_contains: Some("%_".into()),
            ..Default::default()
        };
        assert_eq!(store.count_repos(&literal).await.unwrap(), 1);
        let by_status = RepoFilter {
            status: Some(CloneStatus::NotCloned),
            ..Default::default()
        };
        assert_eq!(store.count_repos(&by_status).await.unwrap(), 4);
    })
    .await;
}

#[tokio::test]
async fn bad_urls_are_refused_without_leaking_passwords() {
    let err = Store::open("mysql://u:pw@h/db").await.unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");
    assert!(!err.to_string().contains("pw"), "{err}");
    let err = Store::open("postgres://u:hunter2@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn accounts_keep_a_site_admin_and_use_links_once() {
    on_both(|store| async move {
        let new = |name: &'static str| NewUser {
            username: name,
            email: None,
            password_hash: Some("hash"),
        };
        let first = store.create_user(new("root"), true).await.unwrap();
        assert!(first.site_admin, "the first account is a site admin");
        assert!(matches!(
            store.create_user(new("other"), true).await,
            Err(StoreError::Conflict(_))
        ));
        let second = store.create_user(new("dev"), false).await.unwrap();
        assert!(!second.site_admin);
        assert!(matches!(
            store.create_user(new("DEV"), false).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.set_site_admin(first.id, false).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.delete_user(first.id).await,
            Err(StoreError::Conflict(_))
        ));
        store.set_site_admin(second.id, true).await.unwrap();
        store.set_site_admin(first.id, false).await.unwrap();
        assert_eq!(
            store
                .user_for_sign_in("Dev")
                .await
                .unwrap()
                .unwrap()
                .1
                .as_deref(),
            Some("hash")
        );

        let at = quarry_store::now();
        store
            .create_one_time_link("d1", LinkPurpose::SignIn, Some(first.id), at + 60)
            .await
            .unwrap();
        assert_eq!(
            store
                .take_one_time_link("d1", LinkPurpose::SignIn, at)
                .await
                .unwrap(),
            Some(Some(first.id))
        );
        assert_eq!(
            store
                .take_one_time_link("d1", LinkPurpose::SignIn, at)
                .await
                .unwrap(),
            None
        );
        store
            .create_one_time_link("d2", LinkPurpose::ResetPassword, Some(first.id), at - 1)
            .await
            .unwrap();
        assert_eq!(
            store
                .take_one_time_link("d2", LinkPurpose::ResetPassword, at)
                .await
                .unwrap(),
            None,
            "an expired link does nothing"
        );

        let token = store
            .create_access_token(second.id, "digest", "ci", &["user:all".to_string()])
            .await
            .unwrap();
        let (found, owner) = store
            .access_token_by_digest("digest")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.id, owner.id), (token.id, second.id));
        assert!(matches!(
            store.create_access_token(9999, "other", "x", &[]).await,
            Err(StoreError::NotFound(_))
        ));
        store.create_session(second.id, "s1", "csrf").await.unwrap();
        assert_eq!(
            store
                .delete_expired_sessions(at - 10, at - 10)
                .await
                .unwrap(),
            0
        );
        assert!(store.session_by_token("s1").await.unwrap().is_some());
        assert_eq!(
            store.delete_expired_sessions(at + 10, 0).await.unwrap(),
            1,
            "idle"
        );
        assert!(store.session_by_token("s1").await.unwrap().is_none());

        store.delete_user(first.id).await.unwrap();
        assert!(store.user_by_id(first.id).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn restricted_repositories_are_listed_only_for_their_users() {
    on_both(|store| async move {
        let service = store
            .create_external_service(ExternalServiceKind::Other, "host", "{}")
            .await
            .unwrap();
        for name in ["open", "closed"] {
            store
                .upsert_repo(RepoUpsert {
                    external_service_id: service.id,
                    name,
                    clone_url: name,
                })
                .await
                .unwrap();
        }
        let closed = store.repo_by_name("closed").await.unwrap().unwrap();
        let new = |name: &'static str| NewUser {
            username: name,
            email: None,
            password_hash: None,
        };
        let admin = store.create_user(new("admin"), false).await.unwrap();
        let alice = store.create_user(new("alice"), false).await.unwrap();
        let bob = store.create_user(new("bob"), false).await.unwrap();
        store
            .set_repo_permissions(closed.id, &[alice.id])
            .await
            .unwrap();
        let names = |viewer: Viewer| {
            let store = store.clone();
            async move {
                let filter = RepoFilter {
                    viewer,
                    ..RepoFilter::default()
                };
                let names: Vec<String> = store
                    .list_repos(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                assert_eq!(
                    names.len() as i64,
                    store.count_repos(&filter).await.unwrap()
                );
                names
            }
        };
        assert_eq!(names(Viewer::All).await, ["open", "closed"]);
        assert_eq!(names(Viewer::User(alice.id)).await, ["open", "closed"]);
        assert_eq!(names(Viewer::User(bob.id)).await, ["open"]);
        assert_eq!(names(Viewer::Anonymous).await, ["open"]);
        assert!(
            store
                .visible_repo_by_name("closed", Viewer::User(bob.id))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .visible_repo_by_name("closed", Viewer::User(alice.id))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .hidden_repo_ids(Viewer::User(bob.id))
                .await
                .unwrap()
                .contains(&closed.id)
        );
        assert!(
            store
                .hidden_repo_ids(Viewer::User(admin.id))
                .await
                .unwrap()
                .contains(&closed.id)
        );
        assert!(matches!(
            store.set_repo_permissions(closed.id, &[9999]).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(
            !store
                .repo_permissions(closed.id)
                .await
                .unwrap()
                .unrestricted
        );
        store.set_repo_unrestricted(closed.id).await.unwrap();
        assert_eq!(names(Viewer::User(bob.id)).await, ["open", "closed"]);
    })
    .await;
}
