//! The status page in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`, installed by `scripts/test.sh`), driven over the W3C
//! WebDriver protocol: a daemon serves the state the demo story left; the
//! page shows the rollout rows, each ring's progress and the approval queue,
//! and it updates by itself (meta refresh, no JavaScript) when an operator
//! holds a rollout. Screenshots go to the test's output directory
//! (`RINGMASTER_SCREENSHOT_DIR`, else a temp dir that is printed);
//! `docs/status-page.png` is one of them.

mod observability;

use base64::Engine;
use observability::{free_port, required_tool, serve_demo};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Driver {
    child: Child,
    url: String,
    session: String,
    client: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session.
    async fn start() -> Driver {
        let chromium = required_tool("chromium", "chromium");
        let chromedriver = required_tool("chromedriver", "chromium-driver");
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let deadline = Instant::now() + Duration::from_secs(60);
        let session = loop {
            let answer = client
                .post(format!("{url}/session"))
                .json(&capabilities)
                .send()
                .await;
            if let Ok(answer) = answer {
                let body: Value = answer.json().await.expect("WebDriver JSON");
                match body["value"]["sessionId"].as_str() {
                    Some(id) => break id.to_owned(),
                    None => panic!("chromedriver refused a session: {body}"),
                }
            }
            assert!(Instant::now() < deadline, "chromedriver never listened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Driver {
            child,
            url,
            session,
            client,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver call")
            .json()
            .await
            .expect("WebDriver JSON");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn set_window(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// The text of every element matching `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let mut texts = Vec::new();
        for element in found.as_array().cloned().unwrap_or_default() {
            let id = element
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .expect("element id")
                .to_owned();
            let text = self
                .command(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                .await;
            texts.push(text.as_str().unwrap_or_default().to_owned());
        }
        texts
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 PNG"))
            .expect("PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, png).expect("screenshot written");
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("RINGMASTER_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ringmaster-status-page"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_in_chromium_shows_rollouts_rings_and_approvals_and_updates() {
    let served = serve_demo(&["--poll-seconds", "1"]);
    let driver = Driver::start().await;
    driver.goto(&format!("{}/?refresh=1", served.url)).await;

    let rows = driver.texts("#rollouts tr.rollout").await;
    assert_eq!(rows.len(), 7, "one row per intent of the demo: {rows:#?}");
    assert!(
        rows.iter()
            .any(|row| row.contains("chrome-131-finance") && row.contains("completed")),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .any(|row| row.contains("zoom-6.3.0-finance") && row.contains("rolled_back")),
        "{rows:#?}"
    );
    let rings = driver
        .texts("tr[data-intent='7zip-25.1.0-engineering'] .ring")
        .await;
    assert_eq!(rings.len(), 5, "five rings with progress: {rings:#?}");
    assert!(
        rings[0].contains("ring-0-lab") && rings[0].contains("8/8"),
        "{rings:#?}"
    );
    assert!(
        rings
            .iter()
            .all(|ring| ring.contains("done") && ring.contains("pass")),
        "{rings:#?}"
    );
    let queue = driver.texts("#approvals tr.approval").await;
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert!(queue[0].contains("build-agent-2.8.0-engineering") && queue[0].contains("exception"));
    let evidence = driver.texts("#evidence-status").await;
    assert!(evidence[0].starts_with("verified"), "{evidence:#?}");
    let directory = screenshot_dir();
    driver.screenshot(&directory.join("status-page.png")).await;
    driver.set_window(390, 844).await;
    driver
        .screenshot(&directory.join("status-page-phone.png"))
        .await;
    driver.set_window(1280, 900).await;

    // An operator holds the waiting rollout; the daemon applies it at its
    // next step, and the page (refreshing itself) shows it.
    let hold = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args([
            "hold",
            "build-agent-2.8.0-engineering",
            "--reason",
            "vendor advisory",
        ])
        .arg("--state")
        .arg(served.state())
        .output()
        .expect("ringmaster hold");
    assert!(
        hold.status.success(),
        "{}",
        String::from_utf8_lossy(&hold.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = driver
            .texts("tr[data-intent='build-agent-2.8.0-engineering'] .state")
            .await;
        if rows.first().is_some_and(|state| state == "held") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the hold: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let queue = driver.texts("#approvals tr.approval").await;
    assert!(
        queue.is_empty(),
        "the held rollout left the queue: {queue:#?}"
    );
    driver
        .screenshot(&directory.join("status-page-after-hold.png"))
        .await;
    eprintln!("screenshots in {}", directory.display());
}
