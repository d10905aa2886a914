//! The web app through the real binary and a real headless Chromium, on SQLite and PostgreSQL:
//! streamed search with highlighted ranges, following a result to its line, browsing a tree and
//! switching revision, line ranges, the site configuration editor refusing a bad value and
//! taking a good one, an executor appearing after its heartbeat, and the same first results with
//! JavaScript off. Bad addresses get 404 pages that name what is missing.

mod common;

use common::browser::{self, Browser};
use common::{ADMIN, ADMIN_PASSWORD, Database, Instance};
use quarry_gitserver::testing::TestRepo;
use serde_json::{Value, json};

const EXECUTOR_SECRET: &str = "an executor secret long enough";

/// A Rust file whose line 20 holds the function the searches look for.
fn main_rs(extra: &str) -> String {
    let mut text = String::from("//! A small program.\n\nuse std::fmt;\n");
    for i in 4..20 {
        text.push_str(&format!("// filler line {i}\n"));
    }
    text.push_str("fn needle_function() -> u32 { 42 }\n");
    text.push_str("\nfn main() {\n    println!(\"{}\", needle_function());\n}\n");
    text.push_str(extra);
    text
}

/// `webapp`: a README, a Rust file, a binary file, a `feature` branch and a `v1.0` tag.
fn corpus(root: &std::path::Path) {
    let repo = TestRepo::init(&root.join("webapp")).expect("init");
    repo.commit(
        &[
            (
                "README.md",
                "# Web app\n\nSee [the code](src/main.rs).\n\n<script>alert(1)</script>\n",
            ),
            ("src/main.rs", &main_rs("")),
            ("data/logo.bin", "PNG\0\0\u{1}binary"),
            (
                "data/huge.txt",
                &"a line of a file too large to show\n".repeat(150_000),
            ),
        ],
        "first",
    )
    .expect("commit");
    repo.git(&["tag", "v1.0"]).expect("tag");
    repo.git(&["checkout", "-q", "-b", "feature"])
        .expect("branch");
    repo.commit(
        &[("src/main.rs", &main_rs("\nfn feature_only() {}\n"))],
        "feature work",
    )
    .expect("commit on feature");
    repo.git(&["checkout", "-q", "-"])
        .expect("back to the default branch");
}

async fn serve(database: &Database) -> (tempfile::TempDir, Instance) {
    let work = tempfile::tempdir().expect("temp dir");
    corpus(&work.path().join("code"));
    let mut args = vec![work.path().join("code").display().to_string()];
    args.extend(database.args());
    let instance = Instance::serve(&work.path().join("data"), &args, &[]).await;
    instance.wait_settled(1).await;
    (work, instance)
}

/// The `data-key`s of the results on the page, in order.
async fn result_keys(browser: &Browser) -> Vec<String> {
    let keys = browser
        .execute(
            "return [...document.querySelectorAll('.results .result')].map(r => r.dataset.key)",
            json!([]),
        )
        .await;
    serde_json::from_value(keys).unwrap_or_default()
}

#[tokio::test]
async fn the_web_app_searches_browses_and_administers_in_a_real_browser() {
    if !browser::available() {
        return;
    }
    for database in Database::all().await {
        let name = database.name();
        let (_work, instance) = serve(&database).await;
        let base = instance.url.clone();
        let browser = Browser::start(true).await;
        browser.sign_in(&base, ADMIN, ADMIN_PASSWORD).await;

        // Type a query: results stream in (no page load) with the match highlighted.
        browser.goto(&format!("{base}/search")).await;
        let box_ = browser.wait_for("#q").await;
        browser.type_into(&box_, "needle_function\u{E007}").await;
        browser.wait_for(".results .result mark").await;
        let marked = browser
            .text(&browser.wait_for(".results .result mark").await)
            .await;
        assert_eq!(marked, "needle_function", "{name}");
        browser
            .wait_until(
                "return window.quarrySearchTiming && window.quarrySearchTiming.done !== null",
                "the stream's end",
            )
            .await;
        assert!(
            browser.url().await.ends_with("/search?q=needle_function"),
            "{name}: the query is in the URL"
        );
        let summary = browser.text(&browser.wait_for(".summary").await).await;
        assert!(summary.contains("results in"), "{name}: {summary}");
        let filters = browser.text(&browser.wait_for(".filters").await).await;
        assert!(
            filters.contains("webapp") && filters.contains("Rust"),
            "{name}: {filters}"
        );
        let context = browser
            .execute("return [...document.querySelectorAll('.results .result td.line a')].map(a => a.textContent)", json!([]))
            .await;
        assert_eq!(
            context,
            json!(["19", "20", "21", "22", "23", "24"]),
            "{name}: matches with a line of context, touching chunks merged"
        );
        let streamed = result_keys(&browser).await;
        assert!(
            streamed.contains(&"webapp\tsrc/main.rs".to_string()),
            "{streamed:?}"
        );

        // Arrow keys move through results; `/` goes back to the search box.
        browser
            .execute("document.activeElement.blur()", json!([]))
            .await;
        browser.press("\u{E015}").await;
        let focused = browser
            .execute(
                "return document.activeElement.closest('.result.selected') !== null",
                json!([]),
            )
            .await;
        assert_eq!(
            focused,
            json!(true),
            "{name}: arrow down selects the first result"
        );
        browser.press("/").await;
        let in_box = browser
            .execute("return document.activeElement.id", json!([]))
            .await;
        assert_eq!(in_box, json!("q"), "{name}: / focuses the search box");

        // The query box highlights filters as they are typed.
        browser.clear(&box_).await;
        browser
            .type_into(&box_, "repo:webapp needle_function")
            .await;
        let field = browser
            .text(&browser.wait_for(".query-overlay .qt-field").await)
            .await;
        assert_eq!(field, "repo:", "{name}");

        // Follow a result to the file at the right line.
        let line_link = browser
            .wait_for(".results .result tr.match td.line a[href*='/src/main.rs#L']")
            .await;
        assert_eq!(browser.text(&line_link).await, "20");
        browser
            .execute("window.stayedOnPage = true", json!([]))
            .await;
        browser.click(&line_link).await;
        browser.wait_for("table.lines").await;
        assert!(
            browser
                .url()
                .await
                .ends_with("/webapp/-/blob/src/main.rs#L20"),
            "{}",
            browser.url().await
        );
        browser
            .wait_until(
                "return document.getElementById('L20').classList.contains('selected')",
                "line 20 selected",
            )
            .await;
        let keyword = browser.text(&browser.wait_for("#L20 .k").await).await;
        assert_eq!(keyword, "fn", "{name}: highlighted keyword");
        let stayed = browser
            .execute("return window.stayedOnPage === true", json!([]))
            .await;
        assert_eq!(
            stayed,
            json!(true),
            "{name}: in-app links navigate without a full reload"
        );

        // Select a range: click line 3, shift-click line 5.
        browser
            .execute(
                "document.querySelector('#L3 td.line a').click();\
                 document.querySelector('#L5 td.line a').dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, shiftKey: true, button: 0}));",
                json!([]),
            )
            .await;
        assert!(
            browser.url().await.ends_with("#L3-5"),
            "{}",
            browser.url().await
        );
        let selected = browser
            .execute(
                "return document.querySelectorAll('tr.selected').length",
                json!([]),
            )
            .await;
        assert_eq!(selected, json!(3));

        // Browse: repository home with its README, into a directory, then another revision.
        browser.goto(&format!("{base}/webapp")).await;
        let readme = browser
            .text(&browser.wait_for("article.readme h1").await)
            .await;
        assert_eq!(readme, "Web app");
        let page = browser.page_text().await;
        assert!(
            page.contains("<script>alert(1)</script>"),
            "raw HTML is shown as text"
        );
        let src = browser.wait_for("table.tree a[href$='/-/tree/src']").await;
        browser.click(&src).await;
        browser
            .wait_for("table.tree a[href$='/-/blob/src/main.rs']")
            .await;
        assert!(browser.url().await.ends_with("/webapp/-/tree/src"));
        let picker = browser.wait_for(".rev-picker summary").await;
        browser.click(&picker).await;
        let feature = browser
            .wait_for(".rev-menu .branches a[href*='@feature']")
            .await;
        browser.click(&feature).await;
        browser
            .wait_until(
                "return location.pathname === '/webapp@feature/-/tree/src'",
                "switch to feature",
            )
            .await;
        let main = browser
            .wait_for("table.tree a[href$='/-/blob/src/main.rs']")
            .await;
        browser.click(&main).await;
        browser.wait_for("table.lines").await;
        assert!(
            browser.page_text().await.contains("fn feature_only()"),
            "{name}: feature revision"
        );
        let tags = browser.execute("return [...document.querySelectorAll('.rev-menu .tags a')].map(a => a.textContent)", json!([])).await;
        assert_eq!(tags, json!(["v1.0"]));

        // Commits and a commit's diff.
        browser
            .goto(&format!("{base}/webapp@feature/-/commits"))
            .await;
        let newest = browser.wait_for(".commit-list li a").await;
        assert_eq!(browser.text(&newest).await, "feature work");
        browser.click(&newest).await;
        browser.wait_for("table.diff").await;
        assert!(browser.page_text().await.contains("+fn feature_only() {}"));

        // The site configuration: a bad value is refused with its key, the old one stays.
        let before = instance
            .data(
                "{ site { configuration { id effectiveContents } } }",
                json!({}),
            )
            .await;
        browser
            .goto(&format!("{base}/site-admin/configuration"))
            .await;
        let editor = browser.wait_for("#site-config").await;
        browser
            .execute(
                "arguments[0].value = '{\"auth.public\": \"yes\"}'",
                json!([browser::element(&editor)]),
            )
            .await;
        browser
            .click(&browser.wait_for("form.editor button[type=submit]").await)
            .await;
        let error = browser.text(&browser.wait_for(".validation").await).await;
        assert!(error.contains("auth.public"), "{name}: {error}");
        let kept = browser
            .execute(
                "return document.querySelector('#site-config').value",
                json!([]),
            )
            .await;
        assert_eq!(
            kept,
            json!("{\"auth.public\": \"yes\"}"),
            "what was typed is kept"
        );
        let after_bad = instance
            .data(
                "{ site { configuration { id effectiveContents } } }",
                json!({}),
            )
            .await;
        assert_eq!(before, after_bad, "{name}: a refused edit changes nothing");
        let good = format!("{{\"executors.accessToken\": \"{EXECUTOR_SECRET}\"}}");
        let editor = browser.wait_for("#site-config").await;
        browser
            .execute(
                "arguments[0].value = arguments[1]",
                json!([browser::element(&editor), good]),
            )
            .await;
        browser
            .click(&browser.wait_for("form.editor button[type=submit]").await)
            .await;
        browser.wait_for(".success").await;
        let saved = instance
            .data(
                "{ site { configuration { effectiveContents } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            saved["site"]["configuration"]["effectiveContents"],
            json!(good)
        );

        // Repositories: clone and index status, and "fetch now".
        browser
            .goto(&format!("{base}/site-admin/repositories"))
            .await;
        let status = browser
            .text(&browser.wait_for("tr[data-repo='webapp'] td.status").await)
            .await;
        assert_eq!(status, "cloned");
        browser
            .click(&browser.wait_for("tr[data-repo='webapp'] button").await)
            .await;
        browser
            .wait_until(
                "return location.pathname === '/site-admin/repositories'",
                "back to the list",
            )
            .await;

        // Code host connections: a bad root is refused in place, a good one is added, then deleted.
        let other = tempfile::tempdir().expect("another root");
        TestRepo::init(&other.path().join("extra"))
            .expect("init")
            .commit(&[("a.txt", "a\n")], "a")
            .expect("commit");
        browser
            .goto(&format!("{base}/site-admin/external-services/new"))
            .await;
        let fill = "document.querySelector('#display_name').value = arguments[0];\
                    document.querySelector('#config').value = arguments[1];\
                    document.querySelector('form.editor button[type=submit]').click();";
        browser
            .execute(fill, json!(["Extra", "{\"root\": \"/no/such/directory\"}"]))
            .await;
        let refused = browser.text(&browser.wait_for("p.error").await).await;
        assert!(
            refused.starts_with("root: cannot read /no/such/directory"),
            "{name}: {refused}"
        );
        let config = json!({ "root": other.path() }).to_string();
        browser.wait_for("#config").await;
        browser.execute(fill, json!(["Extra", config])).await;
        browser
            .wait_until(
                "return /^\\/site-admin\\/external-services\\/\\d+$/.test(location.pathname)",
                "the new connection's page",
            )
            .await;
        browser
            .click(&browser.wait_for("button.danger").await)
            .await;
        browser
            .wait_until(
                "return location.pathname === '/site-admin/external-services'",
                "back to the connections",
            )
            .await;
        assert!(
            !browser.page_text().await.contains("Extra"),
            "{name}: deleted"
        );

        // An executor appears as active once it heartbeats.
        browser.goto(&format!("{base}/site-admin/executors")).await;
        assert!(
            browser
                .page_text()
                .await
                .contains("No executor has sent a heartbeat yet.")
        );
        let beat = reqwest::Client::new()
            .post(format!("{base}/.executors/queue/heartbeat"))
            .header("authorization", format!("token-executor {EXECUTOR_SECRET}"))
            .json(&json!({
                "executorName": "runner-1", "queueNames": ["codeintel"], "jobIdsByQueue": [],
                "os": "linux", "architecture": "amd64", "executorVersion": "0.1.0", "gitVersion": "2.47",
            }))
            .send()
            .await
            .expect("heartbeat");
        assert_eq!(beat.status(), 200);
        let answer: Value = beat.json().await.expect("heartbeat answer");
        assert_eq!(answer, json!({ "knownIds": [], "cancelIds": [] }));
        let forged = reqwest::Client::new()
            .post(format!("{base}/.executors/queue/heartbeat"))
            .header(
                "authorization",
                "token-executor not the executor secret at all",
            )
            .json(&json!({ "executorName": "intruder" }))
            .send()
            .await
            .expect("forged heartbeat");
        assert_eq!(forged.status(), 401);
        browser.goto(&format!("{base}/site-admin/executors")).await;
        browser
            .wait_for(".executor[data-hostname='runner-1'][data-active='true'] .dot.active")
            .await;
        browser.close().await;

        // Without JavaScript: the same first results, rendered by the server.
        let plain = Browser::start(false).await;
        plain.sign_in(&base, ADMIN, ADMIN_PASSWORD).await;
        plain
            .goto(&format!("{base}/search?q=needle_function"))
            .await;
        plain.wait_for(".results .result mark").await;
        assert_eq!(
            result_keys(&plain).await,
            streamed,
            "{name}: same results without JavaScript"
        );
        plain
            .goto(&format!("{base}/webapp/-/blob/src/main.rs#L20"))
            .await;
        plain.wait_for("#L20 .k").await;
        plain.close().await;

        drop(instance);
        database.cleanup().await;
    }
}

#[tokio::test]
async fn pages_name_what_is_missing_and_refuse_bad_input() {
    let database = Database::Embedded;
    let (_work, instance) = serve(&database).await;
    let base = &instance.url;
    let client = instance.client();
    let page = |path: &'static str| async move {
        let response = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    };
    let (status, body) = page("/no/such/repo").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("Repository no/such/repo was not found"),
        "{body}"
    );
    let (status, body) = page("/webapp@no-such-branch/-/tree/src").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("Revision no-such-branch was not found in repository webapp"),
        "{body}"
    );
    let (status, body) = page("/webapp/-/blob/src/missing.rs").await;
    assert_eq!(status, 404);
    assert!(body.contains("src/missing.rs was not found"), "{body}");
    let (status, body) = page("/webapp/-/unknown-view").await;
    assert_eq!(status, 404, "{body}");

    // A binary file: a notice and the raw link, not its bytes in the page.
    let (status, body) = page("/webapp/-/blob/data/logo.bin").await;
    assert_eq!(status, 200);
    assert!(body.contains("Binary file"), "{body}");
    assert!(body.contains("/webapp/-/raw/data/logo.bin"));
    let raw = client
        .get(format!("{base}/webapp/-/raw/data/logo.bin"))
        .send()
        .await
        .expect("raw");
    assert_eq!(
        raw.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert_eq!(
        raw.bytes().await.expect("bytes").as_ref(),
        b"PNG\0\0\x01binary"
    );

    // A file too large to show: a notice and the raw link.
    let (status, body) = page("/webapp/-/blob/data/huge.txt").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("This file is too large to show"),
        "{}",
        &body[..body.len().min(2000)]
    );
    assert!(body.contains("/webapp/-/raw/data/huge.txt") && body.len() < 100_000);

    // The GraphQL fields the pages stand on.
    let data = instance
        .data(
            r#"{ repository(name: "webapp") {
                branches { totalCount nodes { displayName target { oid } } }
                tags { nodes { name displayName } }
                commits(first: 5, rev: "feature") { subject }
                commit(rev: "feature") {
                    tree(path: "src") { entries { name isDirectory } }
                    blob(path: "src/main.rs") { highlight { aborted language html } }
                }
            } }"#,
            json!({}),
        )
        .await;
    let repository = &data["repository"];
    let branches: Vec<&str> = repository["branches"]["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(|b| b["displayName"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        branches.contains(&"feature") && repository["branches"]["totalCount"] == json!(2),
        "{data}"
    );
    assert_eq!(
        repository["tags"]["nodes"],
        json!([{ "name": "refs/tags/v1.0", "displayName": "v1.0" }])
    );
    assert_eq!(
        repository["commits"],
        json!([{ "subject": "feature work" }, { "subject": "first" }])
    );
    assert_eq!(
        repository["commit"]["tree"]["entries"],
        json!([{ "name": "main.rs", "isDirectory": false }])
    );
    let highlight = &repository["commit"]["blob"]["highlight"];
    assert_eq!(highlight["aborted"], json!(false));
    assert_eq!(highlight["language"], json!("Rust"));
    assert!(
        highlight["html"]
            .as_str()
            .unwrap_or("")
            .contains("<span class=\"f\">feature_only</span>"),
        "{highlight}"
    );

    // A query with an error: the error in place, with the form still there.
    let (status, body) = page("/search?q=repo%3A%28").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("query-error") && body.contains("name=\"q\""),
        "{body}"
    );

    // Context lines on the stream: at most 10.
    let too_many = client
        .get(format!("{base}/.api/search/stream?q=needle_function&cl=11"))
        .send()
        .await
        .expect("stream");
    assert_eq!(too_many.status(), 400);
    let with_context = common::stream_with_context(client, base, "needle_function", "2").await;
    assert!(
        with_context
            .contains("\"content\":\"// filler line 18\\n// filler line 19\\nfn needle_function()"),
        "{with_context}"
    );

    // Other tools' highlighting endpoint, and bad requests to it.
    let highlighted: Value = client
        .post(format!("{base}/.api/highlight"))
        .json(&json!({ "filepath": "a.py", "code": "def f():\n    return 1\n" }))
        .send()
        .await
        .expect("highlight")
        .json()
        .await
        .expect("JSON");
    assert_eq!(highlighted["plaintext"], json!(false));
    assert!(
        highlighted["data"]
            .as_str()
            .unwrap_or("")
            .contains("<span class=\"k\">def</span>")
    );
    let bad = client
        .post(format!("{base}/.api/highlight"))
        .header("content-type", "application/json")
        .body("{\"code\": 1}")
        .send()
        .await
        .expect("bad highlight");
    assert_eq!(bad.status(), 400);

    // Pages need a signed-in visitor (the instance is not public).
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in ["/search?q=needle", "/webapp", "/site-admin/configuration"] {
        let response = anonymous
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 303, "{path}");
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap_or("")
                .starts_with("/sign-in?returnTo=")
        );
    }
    // Executors: no secret configured yet.
    let beat = anonymous
        .post(format!("{base}/.executors/queue/heartbeat"))
        .header("authorization", "token-executor whatever")
        .json(&json!({ "executorName": "x" }))
        .send()
        .await
        .expect("heartbeat");
    assert_eq!(beat.status(), 500);
    assert!(
        beat.text()
            .await
            .unwrap_or_default()
            .contains("not configured")
    );
    database.cleanup().await;
}
