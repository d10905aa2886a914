//! Accounts and access control through the real binary, on SQLite and PostgreSQL: sign-in,
//! sessions, tokens, users admin, repository permissions in every answer, throttling and the
//! audit log, and that no secret reaches a log.

mod common;

use std::time::{Duration, Instant};

use common::{
    ADMIN, ADMIN_PASSWORD, Database, Instance, browser_sign_in, client_with_token, matches,
    session_of, token_for_session,
};
use quarry_gitserver::testing::TestRepo;
use serde_json::{Value, json};

const PASSWORD: &str = "another long password";

/// Runs a GraphQL request with a client and returns the whole answer.
async fn graphql(
    client: &reqwest::Client,
    instance: &Instance,
    query: &str,
    variables: Value,
) -> Value {
    common::graphql_as(client, &instance.url, query, variables).await
}

/// Signs a new user up and returns (session, access token).
async fn sign_up(instance: &Instance, username: &str) -> ((String, String, String), String) {
    let response = reqwest::Client::new()
        .post(format!("{}/-/sign-up", instance.url))
        .json(&json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let session = session_of(response).await;
    let token = token_for_session(&instance.url, &session).await;
    (session, token)
}

/// Every event of a search as a given client sees it.
async fn search_events(client: &reqwest::Client, instance: &Instance, query: &str) -> String {
    let response = common::stream_response(client, &instance.url, query).await;
    assert_eq!(response.status(), 200, "{query}");
    response.text().await.unwrap()
}

fn corpus(root: &std::path::Path) {
    let open = TestRepo::init(&root.join("open")).unwrap();
    open.commit(&[("README.md", "public needle\n")], "open")
        .unwrap();
    let secret = TestRepo::init(&root.join("secret-plans")).unwrap();
    secret
        .commit(
            &[("classified/launch.txt", "needle zebracorn codes\n")],
            "secret",
        )
        .unwrap();
}

/// Serves the corpus on a database; the directory lives as long as the instance needs it.
async fn serve_corpus(database: &Database, env: &[(&str, &str)]) -> (tempfile::TempDir, Instance) {
    let work = tempfile::tempdir().unwrap();
    corpus(&work.path().join("code"));
    let mut args = vec![work.path().join("code").display().to_string()];
    args.extend(database.args());
    let instance = Instance::serve(&work.path().join("data"), &args, env).await;
    (work, instance)
}

#[tokio::test]
async fn restricted_repositories_are_invisible_to_users_without_permission() {
    for database in Database::all().await {
        let (_work, instance) = serve_corpus(&database, &[]).await;
        let repos = instance.wait_settled(2).await;
        let secret_id = common::repo(&repos, "secret-plans")["id"].clone();
        let (_, eve_token) = sign_up(&instance, "eve").await;
        let (_, bob_token) = sign_up(&instance, "bob").await;
        let eve = client_with_token(&eve_token);
        let bob = client_with_token(&bob_token);

        // Unrestricted, every signed-in user finds it.
        assert!(
            search_events(&eve, &instance, "zebracorn")
                .await
                .contains("secret-plans")
        );

        let set = graphql(
            instance.client(),
            &instance,
            "mutation($repo: ID!) { setRepositoryPermissionsForUsers(repository: $repo, userPermissions: [{bindID: \"bob\"}]) { alwaysNil } }",
            json!({ "repo": secret_id }),
        )
        .await;
        assert!(set.get("errors").is_none(), "{set}");

        for query in [
            "zebracorn",
            "secret plans",
            "repo:secret",
            "repo:^secret-plans$ needle",
            "type:repo secret",
            "file:classified",
            "launch.txt",
            "needle count:all",
            "select:repo needle",
        ] {
            let seen = search_events(&eve, &instance, query).await;
            assert!(
                !seen.contains("secret-plans")
                    && !seen.contains("zebracorn")
                    && !seen.contains("classified"),
                "{query} leaks to eve: {seen}"
            );
            if query == "needle count:all" {
                assert!(seen.contains("\"repositoriesCount\":1"), "{query}: {seen}");
            }
            if query == "secret plans" {
                // A content search: no file says it, whoever asks.
                continue;
            }
            let granted = search_events(&bob, &instance, query).await;
            assert!(
                granted.contains("secret-plans"),
                "{query} hidden from bob: {granted}"
            );
            let admin = search_events(instance.client(), &instance, query).await;
            assert!(
                admin.contains("secret-plans"),
                "{query} hidden from the admin: {admin}"
            );
        }

        let listing = graphql(
            &eve,
            &instance,
            "{ repositories(first: 10) { totalCount nodes { name } } secret: repository(name: \"secret-plans\") { name } search(query: \"zebracorn\") { results { matchCount } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            listing["data"]["repositories"]["totalCount"], 1,
            "{listing}"
        );
        assert_eq!(listing["data"]["secret"], Value::Null, "{listing}");
        assert_eq!(
            listing["data"]["search"]["results"]["matchCount"], 0,
            "{listing}"
        );
        let granted = graphql(
            &bob,
            &instance,
            "{ repositories(first: 10) { totalCount } }",
            json!({}),
        )
        .await;
        assert_eq!(
            granted["data"]["repositories"]["totalCount"], 2,
            "{granted}"
        );

        // git: eve cannot fetch it, bob can.
        let authority = instance.url.trim_start_matches("http://");
        let refs = |token: &str| {
            let url = format!("http://eve:{token}@{authority}/.internal/git/secret-plans");
            std::process::Command::new("git")
                .args(["ls-remote", &url])
                .env("GIT_TERMINAL_PROMPT", "0")
                .output()
                .unwrap()
        };
        let refused = refs(&eve_token);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("not found"),
            "{refused:?}"
        );
        assert!(refs(&bob_token).status.success());
        let anonymous = reqwest::get(format!(
            "{}/.internal/git/open/info/refs?service=git-upload-pack",
            instance.url
        ))
        .await
        .unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(anonymous.headers().contains_key("www-authenticate"));

        // The site admin reads who may see it; a user may not.
        let info = graphql(
            instance.client(),
            &instance,
            "{ repository(name: \"secret-plans\") { permissionsInfo { unrestricted users { username } } } authorizedUserRepositories(username: \"eve\", first: 10) { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            info["data"]["repository"]["permissionsInfo"]["unrestricted"], false,
            "{info}"
        );
        assert_eq!(
            info["data"]["repository"]["permissionsInfo"]["users"][0]["username"],
            "bob"
        );
        assert_eq!(
            info["data"]["authorizedUserRepositories"]["totalCount"], 1,
            "{info}"
        );
        let refused = graphql(
            &bob,
            &instance,
            "{ repository(name: \"secret-plans\") { permissionsInfo { unrestricted } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused}"
        );

        // Lifting the restriction shows it to everyone again.
        let lifted = graphql(
            instance.client(),
            &instance,
            "mutation($repo: ID!) { setRepositoryPermissionsUnrestricted(repositories: [$repo], unrestricted: true) { alwaysNil } }",
            json!({ "repo": secret_id }),
        )
        .await;
        assert!(lifted.get("errors").is_none(), "{lifted}");
        assert!(
            search_events(&eve, &instance, "zebracorn")
                .await
                .contains("secret-plans")
        );
        drop(instance);
        database.cleanup().await;
    }
}

#[tokio::test]
async fn accounts_tokens_and_users_admin_work_and_leave_an_audit_trail_without_secrets() {
    for database in Database::all().await {
        let (_work, instance) = serve_corpus(&database, &[("QUARRY_LOG", "debug")]).await;
        let admin = instance.client();
        let anonymous = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        // The site is initialised once only.
        let again = anonymous
            .post(format!("{}/-/site-init", instance.url))
            .json(&json!({ "username": "mallory", "email": "m@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409);

        // The one-time link `quarry serve` printed signs the site admin in, once.
        let output = instance.output_text();
        let link = output
            .lines()
            .find_map(|l| l.trim().strip_prefix("sign in:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no sign-in link in {output}"))
            .to_string();
        let first = anonymous.get(&link).send().await.unwrap();
        assert_eq!(first.status(), 303);
        assert_eq!(first.headers()["location"], "/");
        let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let session: Value = anonymous
            .get(format!("{}/-/session", instance.url))
            .header("cookie", cookie.split(';').next().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session["user"]["username"], ADMIN);
        assert_eq!(session["user"]["siteAdmin"], true);
        assert_eq!(
            anonymous.get(&link).send().await.unwrap().status(),
            400,
            "a link works once"
        );

        // A user signs up; sign-in with a wrong password is refused, then slowed to a stop.
        let (carol_session, carol_token) = sign_up(&instance, "carol").await;
        let carol = client_with_token(&carol_token);
        for _ in 0..5 {
            let wrong = anonymous
                .post(format!("{}/-/sign-in", instance.url))
                .json(&json!({ "email": "carol", "password": "not her password" }))
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 401);
        }
        let locked = anonymous
            .post(format!("{}/-/sign-in", instance.url))
            .json(&json!({ "email": "carol", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(locked.status(), 429, "even the right password waits");
        assert!(locked.headers().contains_key("retry-after"));

        // A user cannot administer; an admin can.
        let site = "{ site { configuration { id } } }";
        let refused = graphql(&carol, &instance, site, json!({})).await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN");
        let users = graphql(&carol, &instance, "{ users { totalCount } }", json!({})).await;
        assert_eq!(users["errors"][0]["extensions"]["code"], "FORBIDDEN");
        let metrics = carol
            .get(format!("{}/metrics", instance.url))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 403);

        // Tokens: listed without their value, revoked at once.
        let listed = graphql(&carol, &instance, "{ currentUser { username siteAdmin accessTokens { totalCount nodes { id scopes note } } } }", json!({})).await;
        assert_eq!(listed["data"]["currentUser"]["username"], "carol");
        assert_eq!(
            listed["data"]["currentUser"]["accessTokens"]["totalCount"],
            1
        );
        assert!(!listed.to_string().contains(&carol_token));
        let token_id = listed["data"]["currentUser"]["accessTokens"]["nodes"][0]["id"].clone();
        let sudo = graphql(
            &carol,
            &instance,
            "mutation($user: ID!) { createAccessToken(user: $user, scopes: [\"user:all\", \"site-admin:sudo\"], note: \"x\") { token } }",
            json!({ "user": carol_session.2 }),
        )
        .await;
        assert_eq!(
            sudo["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{sudo}"
        );
        let revoked = graphql(
            &carol,
            &instance,
            "mutation($id: ID!) { deleteAccessToken(byID: $id) { alwaysNil } }",
            json!({ "id": token_id }),
        )
        .await;
        assert!(revoked.get("errors").is_none(), "{revoked}");
        let after = carol
            .get(format!("{}/-/session", instance.url))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401);

        // Users admin: create with a reset link, promote, never lose the last admin, delete.
        let created = graphql(admin, &instance, "mutation { createUser(username: \"dave\", email: \"dave@example.com\") { user { id siteAdmin } resetPasswordURL } }", json!({})).await;
        let dave_id = created["data"]["createUser"]["user"]["id"].clone();
        let reset_url = created["data"]["createUser"]["resetPasswordURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_string();
        let reset_token = reset_url.split("token=").nth(1).unwrap().to_string();
        let page = anonymous.get(&reset_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let reset = anonymous
            .post(format!("{}/-/reset-password", instance.url))
            .form(&[("token", reset_token.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(reset.status(), 200);
        let reused = anonymous
            .post(format!("{}/-/reset-password", instance.url))
            .json(&json!({ "token": reset_token, "password": "yet another password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(reused.status(), 400);
        let (dave_cookie, dave_csrf, _) =
            browser_sign_in(&instance.url, "dave@example.com", PASSWORD).await;

        let admin_id = graphql(admin, &instance, "{ currentUser { id } }", json!({})).await["data"]
            ["currentUser"]["id"]
            .clone();
        let demote = "mutation($id: ID!, $on: Boolean!) { setUserIsSiteAdmin(userID: $id, siteAdmin: $on) { alwaysNil } }";
        let last = graphql(
            admin,
            &instance,
            demote,
            json!({ "id": admin_id, "on": false }),
        )
        .await;
        assert_eq!(
            last["errors"][0]["extensions"]["code"], "CONFLICT",
            "{last}"
        );
        let promoted = graphql(
            admin,
            &instance,
            demote,
            json!({ "id": dave_id, "on": true }),
        )
        .await;
        assert!(promoted.get("errors").is_none(), "{promoted}");
        // Dave's browser session now administers, with its CSRF token only.
        let with_session = |csrf: Option<&str>| {
            let mut request = anonymous
                .post(format!("{}/.api/graphql", instance.url))
                .header("cookie", &dave_cookie)
                .json(&json!({ "query": "{ users { totalCount } }" }));
            if let Some(csrf) = csrf {
                request = request.header("x-csrf-token", csrf);
            }
            request.send()
        };
        assert_eq!(with_session(None).await.unwrap().status(), 403);
        let users: Value = with_session(Some(&dave_csrf))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(users["data"]["users"]["totalCount"], 3, "{users}");
        let deleted = graphql(
            admin,
            &instance,
            "mutation($id: ID!) { deleteUser(user: $id) { alwaysNil } }",
            json!({ "id": carol_session.2 }),
        )
        .await;
        assert!(deleted.get("errors").is_none(), "{deleted}");

        // Site configuration: sign-up can be turned off.
        let current = graphql(admin, &instance, site, json!({})).await;
        let id = current["data"]["site"]["configuration"]["id"].clone();
        let saved = graphql(
            admin,
            &instance,
            "mutation($id: Int!, $input: String!) { updateSiteConfiguration(lastID: $id, input: $input) }",
            json!({ "id": id, "input": r#"{"auth.providers": [{"type": "builtin", "allowSignup": false}]}"# }),
        )
        .await;
        assert!(saved.get("errors").is_none(), "{saved}");
        let refused = anonymous
            .post(format!("{}/-/sign-up", instance.url))
            .json(&json!({ "username": "zed", "email": "zed@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);

        // The audit log has each event, and no secret anywhere.
        let audit = graphql(
            admin,
            &instance,
            "{ auditLog(first: 200) { actor action subject details } }",
            json!({}),
        )
        .await;
        let actions: Vec<&str> = audit["data"]["auditLog"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for expected in [
            "site.initialized",
            "sign_in.link_used",
            "user.signed_up",
            "sign_in.failed",
            "sign_in.throttled",
            "access_token.created",
            "access_token.revoked",
            "user.created",
            "password.reset",
            "sign_in.succeeded",
            "user.promoted",
            "user.deleted",
            "site_config.changed",
        ] {
            assert!(
                actions.contains(&expected),
                "{expected} missing from {actions:?}"
            );
        }
        let audit_text = audit.to_string();
        let log = instance.log_text();
        for secret in [
            ADMIN_PASSWORD,
            PASSWORD,
            "not her password",
            &carol_token,
            &instance.token,
            &reset_token,
            link.split("token=").nth(1).unwrap(),
        ] {
            assert!(!audit_text.contains(secret), "a secret is in the audit log");
            assert!(!log.contains(secret), "a secret is in the log");
        }
        drop(instance);
        database.cleanup().await;
    }
}

#[tokio::test]
async fn idle_sessions_expire_and_the_admin_command_issues_tokens() {
    let work = tempfile::tempdir().unwrap();
    corpus(&work.path().join("code"));
    let config = work.path().join("site.json");
    std::fs::write(&config, r#"{"auth.sessionIdleTimeout": "1s"}"#).unwrap();
    let data = work.path().join("data");
    let args = vec![
        work.path().join("code").display().to_string(),
        "--site-config".to_string(),
        config.display().to_string(),
    ];
    let instance = Instance::serve(&data, &args, &[]).await;
    let (cookie, _, _) = browser_sign_in(&instance.url, ADMIN, ADMIN_PASSWORD).await;
    let started = Instant::now();
    loop {
        let status = reqwest::Client::new()
            .get(format!("{}/-/session", instance.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < common::DEADLINE,
            "the idle session never expired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let create = |user: &str| {
        std::process::Command::new(common::binary())
            .args(["admin", "token", "create", "--user", user, "--data-dir"])
            .arg(&data)
            .env_remove("QUARRY_DATABASE_URL")
            .output()
            .unwrap()
    };
    let output = create(ADMIN);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(token.starts_with("sgp_"), "{token}");
    let found = std::process::Command::new(common::binary())
        .args(["search", "public"])
        .env("SRC_ENDPOINT", &instance.url)
        .env("SRC_ACCESS_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let refused = std::process::Command::new(common::binary())
        .args(["search", "public"])
        .env("SRC_ENDPOINT", &instance.url)
        .env_remove("SRC_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let unknown = create("nobody-here");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("user \"nobody-here\" not found"));
    assert!(!matches(&instance, "public").await.is_empty());
}

/// The value of an HTML attribute that follows `marker` in a page.
fn attribute_after(page: &str, marker: &str, attribute: &str) -> Option<String> {
    let rest = &page[page.find(marker)?..];
    let start = rest.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_string())
}

#[tokio::test]
async fn the_web_app_signs_in_and_manages_tokens_without_javascript() {
    for database in Database::all().await {
        let (_work, instance) = serve_corpus(&database, &[]).await;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let url = |path: &str| format!("{}{path}", instance.url);

        // Pages that need an account send a visitor to sign in first, and back after.
        let home = browser.get(url("/")).send().await.unwrap();
        assert_eq!(home.status(), 303);
        assert_eq!(home.headers()["location"], "/sign-in?returnTo=%2F");
        let tokens_path = format!("/users/{ADMIN}/settings/tokens");
        let gated = browser.get(url(&tokens_path)).send().await.unwrap();
        assert_eq!(gated.status(), 303);
        let form = browser
            .get(url("/sign-in?returnTo=%2Fusers"))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 200);
        let form = form.text().await.unwrap();
        assert!(
            form.contains(r#"<form method="post" action="/sign-in">"#),
            "{form}"
        );
        assert!(form.contains(r#"<label for="password">"#));

        let sign_in = |name: &str, password: &str, return_to: &str| {
            browser
                .post(url("/sign-in"))
                .form(&[
                    ("email", name),
                    ("password", password),
                    ("returnTo", return_to),
                ])
                .send()
        };
        let wrong = sign_in(ADMIN, "wrong password!", "/").await.unwrap();
        assert_eq!(wrong.status(), 401);
        assert!(
            wrong
                .text()
                .await
                .unwrap()
                .contains("incorrect username or password")
        );
        let elsewhere = sign_in(ADMIN, ADMIN_PASSWORD, "//evil.example/")
            .await
            .unwrap();
        assert_eq!(
            elsewhere.headers()["location"],
            "/",
            "never sent to another site"
        );
        let signed_in = sign_in(ADMIN, ADMIN_PASSWORD, &tokens_path).await.unwrap();
        assert_eq!(signed_in.status(), 303);
        assert_eq!(signed_in.headers()["location"], tokens_path.as_str());
        let cookie = signed_in.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();

        let page = browser
            .get(url(&tokens_path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        let csrf = attribute_after(&page, r#"name="csrf_token""#, "value").expect("a CSRF field");
        let create = |csrf: Option<&str>| {
            let mut fields = vec![("note", "laptop")];
            if let Some(csrf) = csrf {
                fields.push(("csrf_token", csrf));
            }
            browser
                .post(url(&tokens_path))
                .header("cookie", &cookie)
                .form(&fields)
                .send()
        };
        assert_eq!(
            create(None).await.unwrap().status(),
            403,
            "a form without its CSRF token"
        );
        assert_eq!(create(Some("forged")).await.unwrap().status(), 403);
        let created = create(Some(&csrf)).await.unwrap();
        assert_eq!(created.status(), 200);
        let created = created.text().await.unwrap();
        let start = created.find("sgp_").expect("the new token is shown");
        let token = created[start..start + 44].to_string();
        let with_token = client_with_token(&token);
        let session = with_token.get(url("/-/session")).send().await.unwrap();
        assert_eq!(session.status(), 200);

        let listed = browser
            .get(url(&tokens_path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let listed = listed.text().await.unwrap();
        assert!(
            listed.contains("laptop") && !listed.contains(&token),
            "shown once only"
        );
        let marker = r#"aria-label="Revoke laptop""#;
        let revoke_form = &listed[..listed.find(marker).expect("a revoke button")];
        let action = revoke_form[revoke_form.rfind("action=\"").unwrap() + 8..]
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let revoked = browser
            .post(url(&action))
            .header("cookie", &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 303);
        let session = with_token.get(url("/-/session")).send().await.unwrap();
        assert_eq!(session.status(), 401, "revoked on the next request");

        // Another user signs up in the browser and cannot see the admin's tokens.
        let signed_up = browser
            .post(url("/sign-up"))
            .form(&[
                ("username", "erin"),
                ("email", "erin@example.com"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_up.status(), 303);
        let erin = signed_up.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let home = browser
            .get(url("/"))
            .header("cookie", &erin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            home.contains("Signed in as <strong>erin</strong>"),
            "{home}"
        );
        let foreign = browser
            .get(url(&tokens_path))
            .header("cookie", &erin)
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 404);
        let own = browser
            .get(url("/users/erin/settings/tokens"))
            .header("cookie", &erin)
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), 200);

        // Signing out ends the session.
        let out = browser
            .post(url("/sign-out"))
            .header("cookie", &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 303);
        let after = browser
            .get(url(&tokens_path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 303, "back to the sign-in page");
        drop(instance);
        database.cleanup().await;
    }
}
