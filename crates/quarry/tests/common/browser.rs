//! A real headless Chromium, driven over the W3C WebDriver protocol through Debian's
//! `chromedriver`: enough of the protocol to open pages, find elements, type, click and run
//! scripts.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{DEADLINE, free_port};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The W3C key for an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An element as a script argument.
pub fn element(id: &str) -> Value {
    json!({ ELEMENT_KEY: id })
}

pub struct Browser {
    driver: Child,
    endpoint: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// Whether the browser tools are installed; CI (`QUARRY_REQUIRE_TOOLS`) must have them.
pub fn available() -> bool {
    let present =
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    assert!(
        present || std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "chromium and chromium-driver are required (QUARRY_REQUIRE_TOOLS is set)"
    );
    if !present {
        eprintln!("skipping browser checks: install Debian's chromium and chromium-driver");
    }
    present
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, with JavaScript on or off.
    pub async fn start(javascript: bool) -> Browser {
        let port = free_port();
        // Its own process group, so Chromium goes with it even when a test fails midway.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let mut browser = Browser {
            driver,
            endpoint: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _profile: profile,
        };
        let started = Instant::now();
        while browser
            .client
            .get(format!("{}/status", browser.endpoint))
            .send()
            .await
            .is_err()
        {
            assert!(started.elapsed() < DEADLINE, "chromedriver never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut prefs = json!({});
        if !javascript {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--window-size=1280,900",
                        format!("--user-data-dir={}", browser._profile.path().display()),
                    ],
                    "prefs": prefs,
                },
            }},
        });
        let answer = browser.call("POST", "/session", capabilities).await;
        let session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        browser.endpoint = format!("{}/session/{session}", browser.endpoint);
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.endpoint);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body),
        };
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver request")
            .json()
            .await
            .expect("WebDriver answers JSON");
        answer["value"].clone()
    }

    /// Calls WebDriver and fails on a WebDriver error.
    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let value = self.call(method, path, body).await;
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.command("GET", "/url", json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let value = self
            .call(
                "POST",
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        value[ELEMENT_KEY].as_str().map(str::to_string)
    }

    /// Waits for an element matching a CSS selector.
    pub async fn wait_for(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no element matches {css} on {}; page text:\n{}",
                self.url().await,
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until a script returns true.
    pub async fn wait_until(&self, script: &str, what: &str) {
        let started = Instant::now();
        while self.execute(script, json!([])).await != json!(true) {
            assert!(
                started.elapsed() < DEADLINE,
                "{what} never happened on {}; page text:\n{}",
                self.url().await,
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn text(&self, element: &str) -> String {
        self.command("GET", &format!("/element/{element}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn click(&self, element: &str) {
        self.command("POST", &format!("/element/{element}/click"), json!({}))
            .await;
    }

    pub async fn clear(&self, element: &str) {
        self.command("POST", &format!("/element/{element}/clear"), json!({}))
            .await;
    }

    /// Types text into an element as key presses (`\u{E007}` is Enter).
    pub async fn type_into(&self, element: &str, text: &str) {
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Presses and releases one key (WebDriver key codes such as `\u{E015}` for arrow down).
    pub async fn press(&self, key: &str) {
        let actions = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key },
        ]}]});
        self.command("POST", "/actions", actions).await;
    }

    /// Runs a script in the page (`arguments` holds `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Every visible text of the page.
    pub async fn page_text(&self) -> String {
        let value = self
            .call(
                "POST",
                "/execute/sync",
                json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] }),
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Signs in through the sign-in page's form.
    pub async fn sign_in(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/sign-in")).await;
        let name = self.wait_for("input[name=email]").await;
        self.type_into(&name, username).await;
        let secret = self.wait_for("input[name=password]").await;
        self.type_into(&secret, password).await;
        let submit = self.wait_for("form button[type=submit]").await;
        self.click(&submit).await;
        self.wait_for("header a[href^='/users/']").await;
    }

    /// Ends the session (closing Chromium) and chromedriver.
    pub async fn close(self) {
        self.call("DELETE", "", json!({})).await;
    }
}

impl Drop for Browser {
    /// Stops chromedriver and every Chromium process it started.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
