//! Site configuration round trips through the store, on SQLite and PostgreSQL.

use quarry_config::{ConfigError, DEFAULT_SITE_CONFIG, SiteConfigManager};
use quarry_store::StoreError;
use quarry_store::testing::with_each_store;

#[tokio::test]
async fn round_trip_history_validation_and_live_apply() {
    with_each_store(|store| async move {
        let manager = SiteConfigManager::load(store.clone(), None).await.unwrap();
        let live = manager.live();
        let first = manager.current().await.unwrap();
        assert_eq!(first.contents, DEFAULT_SITE_CONFIG);
        assert_eq!(live.current().git_max_concurrent_clones(), 5);

        let text = "{\n  // more at once\n  \"gitMaxConcurrentClones\": 9,\n}";
        let second = manager.update(first.id, text).await.unwrap();
        assert_eq!(manager.current().await.unwrap().contents, text);
        assert_eq!(
            live.current().git_max_concurrent_clones(),
            9,
            "applied without restart"
        );

        let refused = manager
            .update(
                second.id,
                r#"{"gitMaxConcurrentClones": "lots", "externalURL": "nope"}"#,
            )
            .await
            .unwrap_err();
        let ConfigError::Invalid(invalid) = refused else {
            panic!("expected a validation error, got {refused:?}");
        };
        let messages = invalid.messages();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("gitMaxConcurrentClones:")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("externalURL:")),
            "{messages:?}"
        );
        let syntax = manager.update(second.id, "{ \"a\": ").await.unwrap_err();
        assert!(syntax.to_string().contains("line 1"), "{syntax}");
        assert_eq!(
            manager.current().await.unwrap().id,
            second.id,
            "refused edits store nothing"
        );
        assert_eq!(
            live.current().git_max_concurrent_clones(),
            9,
            "previous version stays in force"
        );

        let stale = manager.update(first.id, "{}").await.unwrap_err();
        assert!(
            matches!(stale, ConfigError::Store(StoreError::Conflict(_))),
            "{stale:?}"
        );

        let history = manager.history(10).await.unwrap();
        assert_eq!(
            history.iter().map(|v| v.id).collect::<Vec<_>>(),
            [second.id, first.id]
        );

        // Another process saving a version is picked up by refresh.
        let other = SiteConfigManager::load(store.clone(), None).await.unwrap();
        other
            .update(second.id, r#"{"gitMaxConcurrentClones": 2}"#)
            .await
            .unwrap();
        assert!(manager.refresh().await.unwrap());
        assert_eq!(live.current().git_max_concurrent_clones(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_seed_file_becomes_a_version_once_and_a_bad_seed_changes_nothing() {
    with_each_store(|store| async move {
        let seed = r#"{"externalURL": "https://quarry.example.com"}"#;
        let manager = SiteConfigManager::load(store.clone(), Some(seed))
            .await
            .unwrap();
        assert_eq!(
            manager.live().current().external_url(),
            Some("https://quarry.example.com")
        );
        let again = SiteConfigManager::load(store.clone(), Some(seed))
            .await
            .unwrap();
        assert_eq!(
            again.history(10).await.unwrap().len(),
            1,
            "an unchanged seed adds no version"
        );

        let bad = SiteConfigManager::load(store.clone(), Some(r#"{"externalURL": 3}"#)).await;
        assert!(matches!(bad, Err(ConfigError::Invalid(_))));
        assert_eq!(
            store.latest_site_config().await.unwrap().unwrap().contents,
            seed
        );
    })
    .await;
}
