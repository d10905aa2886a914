//! Every route, called as nobody, as a user, as a site admin and with bad credentials, gets the
//! status it should; on SQLite and PostgreSQL, in process.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use quarry_auth::{AccountForm, Actor};
use quarry_frontend::{AppState, router};
use quarry_store::testing::with_each_store;
use tower::ServiceExt;

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Caller<'a> {
    Nobody,
    Token(&'a str),
    Cookie(&'a str, Option<&'a str>),
}

async fn call(
    state: &AppState,
    caller: Caller<'_>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    let response = respond(state, caller, method, path, body).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn respond(
    state: &AppState,
    caller: Caller<'_>,
    method: &str,
    path: &str,
    body: &str,
) -> axum::response::Response {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    match caller {
        Caller::Nobody => {}
        Caller::Token(token) => request = request.header("authorization", format!("token {token}")),
        Caller::Cookie(cookie, csrf) => {
            request = request.header("cookie", format!("sgs={cookie}"));
            if let Some(csrf) = csrf {
                request = request.header("x-csrf-token", csrf);
            }
        }
    }
    let mut request = request.body(Body::from(body.to_string())).unwrap();
    let peer: SocketAddr = "10.1.2.3:4000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    router(state.clone()).oneshot(request).await.unwrap()
}

const GRAPHQL_SITE: &str = r#"{"query": "{ site { configuration { id } } }"}"#;
const GRAPHQL_ME: &str = r#"{"query": "{ currentUser { username siteAdmin } }"}"#;

fn form(username: &str) -> AccountForm {
    AccountForm {
        username: username.into(),
        email: Some(format!("{username}@example.com")),
        password: Some("a long enough password".into()),
    }
}

#[tokio::test]
async fn every_route_checks_who_is_calling() {
    with_each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let state = common::state(store, dir.path()).await;
        let nobody = Actor::anonymous(None);
        let admin = state
            .accounts
            .site_init(form("root"), &nobody)
            .await
            .unwrap();
        assert!(admin.site_admin, "the first account is a site admin");
        let user = state.accounts.sign_up(form("dev"), &nobody).await.unwrap();
        assert!(!user.site_admin);
        let admin_actor = Actor {
            user: Some(admin.clone()),
            ..nobody.clone()
        };
        let user_actor = Actor {
            user: Some(user.clone()),
            ..nobody.clone()
        };
        let scopes = vec!["user:all".to_string()];
        let (_, admin_token) = state
            .accounts
            .create_access_token(&admin_actor, admin.id, &scopes, "t")
            .await
            .unwrap();
        let (user_record, user_token) = state
            .accounts
            .create_access_token(&user_actor, user.id, &scopes, "t")
            .await
            .unwrap();

        let git = "/.internal/git/unknown/info/refs?service=git-upload-pack";
        // (method, path, body, anonymous, user, admin)
        let matrix: &[(&str, &str, &str, u16, u16, u16)] = &[
            ("GET", "/-/healthz", "", 200, 200, 200),
            ("GET", "/-/readyz", "", 200, 200, 200),
            ("POST", "/.api/graphql", GRAPHQL_ME, 401, 200, 200),
            ("GET", "/.api/search/stream?q=x", "", 401, 200, 200),
            ("GET", git, "", 401, 404, 404),
            ("GET", "/metrics", "", 401, 403, 200),
            ("GET", "/-/session", "", 401, 200, 200),
            ("POST", "/-/sign-in", r#"{"email":"root","password":"not the password"}"#, 401, 401, 401),
            ("POST", "/-/sign-up", r#"{"username":"-bad","email":"b@example.com","password":"a long enough password"}"#, 400, 400, 400),
            ("POST", "/-/reset-password", r#"{"token":"unknown","password":"a long enough password"}"#, 400, 400, 400),
            ("GET", "/-/sign-in/link?token=unknown", "", 400, 400, 400),
            ("POST", "/-/sign-out", "", 200, 200, 200),
            ("GET", "/sign-up", "", 200, 200, 200),
            ("POST", "/sign-in", r#"{"email":"ghost","password":"not the password"}"#, 401, 401, 401),
            ("GET", "/password-reset?token=unknown", "", 200, 200, 200),
            ("POST", "/password-reset", r#"{"token":"unknown","password":"a long enough password"}"#, 400, 400, 400),
            ("POST", "/sign-out", "", 303, 303, 303),
            ("POST", "/users/dev/settings/tokens", r#"{"note":"matrix"}"#, 303, 200, 200),
            ("POST", "/users/root/settings/tokens", r#"{"note":"matrix"}"#, 303, 404, 200),
            ("POST", "/users/root/settings/tokens/99999/delete", "", 303, 404, 404),
            ("GET", "/", "", 303, 200, 200),
            ("GET", "/sign-in", "", 200, 200, 200),
            ("GET", "/users/root/settings/tokens", "", 303, 404, 200),
            ("GET", "/users/dev/settings/tokens", "", 303, 200, 200),
            (
                "POST",
                "/-/site-init",
                r#"{"username":"x","email":"x@example.com","password":"a long enough password"}"#,
                409,
                409,
                409,
            ),
        ];
        for (method, path, body, anonymous, as_user, as_admin) in matrix {
            for (caller, expected) in [
                (Caller::Nobody, anonymous),
                (Caller::Token(&user_token), as_user),
                (Caller::Token(&admin_token), as_admin),
            ] {
                let (status, text) = call(&state, caller, method, path, body).await;
                assert_eq!(status.as_u16(), *expected, "{method} {path}: {text}");
            }
        }

        // Site-admin-only GraphQL fields refuse a user with FORBIDDEN and answer an admin.
        let (_, text) = call(
            &state,
            Caller::Token(&user_token),
            "POST",
            "/.api/graphql",
            GRAPHQL_SITE,
        )
        .await;
        assert!(text.contains("FORBIDDEN"), "{text}");
        let (_, text) = call(
            &state,
            Caller::Token(&admin_token),
            "POST",
            "/.api/graphql",
            GRAPHQL_SITE,
        )
        .await;
        assert!(text.contains("\"configuration\":{\"id\""), "{text}");

        // A forged token is refused even on routes anybody may call.
        for path in ["/-/healthz", "/.api/graphql"] {
            let (status, _) = call(
                &state,
                Caller::Token("sgp_forged"),
                "POST",
                path,
                GRAPHQL_ME,
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
        // A revoked token stops working on the next request.
        state
            .accounts
            .delete_access_token(&user_actor, user_record.id)
            .await
            .unwrap();
        let (status, _) = call(
            &state,
            Caller::Token(&user_token),
            "POST",
            "/.api/graphql",
            GRAPHQL_ME,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Tokens are remembered for a moment once proven, but a demotion takes effect on the
        // next request all the same.
        state
            .accounts
            .set_site_admin(&admin_actor, user.id, true)
            .await
            .unwrap();
        let (_, promoted_token) = state
            .accounts
            .create_access_token(&user_actor, user.id, &scopes, "t")
            .await
            .unwrap();
        let (status, _) = call(&state, Caller::Token(&promoted_token), "GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        state
            .accounts
            .set_site_admin(&admin_actor, user.id, false)
            .await
            .unwrap();
        let (status, _) = call(&state, Caller::Token(&promoted_token), "GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // A session needs its CSRF token for GraphQL; a forged cookie is nobody.
        let (cookie, session) = state.accounts.start_session(&user).await.unwrap();
        let (status, _) = call(
            &state,
            Caller::Cookie(&cookie, None),
            "POST",
            "/.api/graphql",
            GRAPHQL_ME,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call(
            &state,
            Caller::Cookie(&cookie, Some("wrong")),
            "POST",
            "/.api/graphql",
            GRAPHQL_ME,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, text) = call(
            &state,
            Caller::Cookie(&cookie, Some(&session.csrf_token)),
            "POST",
            "/.api/graphql",
            GRAPHQL_ME,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains("\"username\":\"dev\""), "{text}");
        let (status, _) = call(
            &state,
            Caller::Cookie("forged", Some("x")),
            "POST",
            "/.api/graphql",
            GRAPHQL_ME,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Signing out ends the session.
        let (status, _) = call(
            &state,
            Caller::Cookie(&cookie, Some(&session.csrf_token)),
            "POST",
            "/-/sign-out",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(
            &state,
            Caller::Cookie(&cookie, Some(&session.csrf_token)),
            "GET",
            "/-/session",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Session cookies are Secure when users reach the instance over https.
        let sign_in = r#"{"email":"dev","password":"a long enough password"}"#;
        let plain = respond(&state, Caller::Nobody, "POST", "/-/sign-in", sign_in).await;
        let cookie = plain.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.contains("HttpOnly") && !cookie.contains("Secure"), "{cookie}");
        let current = state.site.current().await.unwrap();
        state
            .site
            .update(current.id, r#"{"externalURL": "https://quarry.example.com"}"#)
            .await
            .unwrap();
        let secure = respond(&state, Caller::Nobody, "POST", "/-/sign-in", sign_in).await;
        let cookie = secure.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.contains("; Secure"), "{cookie}");
    })
    .await;
}

#[tokio::test]
async fn anonymous_search_is_allowed_only_with_auth_public() {
    with_each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let state = common::state(store, dir.path()).await;
        let (status, _) = call(&state, Caller::Nobody, "GET", "/.api/search/stream?q=x", "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let current = state.site.current().await.unwrap();
        state
            .site
            .update(current.id, r#"{"auth.public": true}"#)
            .await
            .unwrap();
        let (status, _) = call(&state, Caller::Nobody, "GET", "/.api/search/stream?q=x", "").await;
        assert_eq!(status, StatusCode::OK);
        // Still read-only: administration and mutations need an account.
        let (_, text) = call(
            &state,
            Caller::Nobody,
            "POST",
            "/.api/graphql",
            GRAPHQL_SITE,
        )
        .await;
        assert!(text.contains("UNAUTHENTICATED"), "{text}");
        let (status, _) = call(&state, Caller::Nobody, "GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn sessions_end_at_their_absolute_expiry_however_active() {
    with_each_store(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let state = common::state(store, dir.path()).await;
        let nobody = Actor::anonymous(None);
        let user = state
            .accounts
            .site_init(form("root"), &nobody)
            .await
            .unwrap();
        let current = state.site.current().await.unwrap();
        state
            .site
            .update(current.id, r#"{"auth.sessionExpiry": "2s"}"#)
            .await
            .unwrap();
        let (cookie, _) = state.accounts.start_session(&user).await.unwrap();
        let started = std::time::Instant::now();
        loop {
            // Every request keeps the session active; only its age can end it.
            let (status, _) = call(
                &state,
                Caller::Cookie(&cookie, None),
                "GET",
                "/-/session",
                "",
            )
            .await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the session outlived its expiry"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    })
    .await;
}
