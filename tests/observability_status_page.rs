//! The status page in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`, installed by `scripts/test.sh`), driven over the W3C
//! WebDriver protocol: a daemon serves the state the demo story left; the
//! page shows the rollout rows, each ring's progress and the approval queue,
//! and it updates by itself (meta refresh, no JavaScript) when an operator
//! holds a rollout. Screenshots go to the test's output directory
//! (`RINGMASTER_SCREENSHOT_DIR`, else a temp dir that is printed);
//! `docs/status-page.png` is one of them.
//!
//! No browser outlives its test: chromedriver runs in a process group of its
//! own, with `HOME`, `XDG_CONFIG_HOME` and the profile in a directory of the
//! test (so every process of this browser, crash handlers included, names
//! it on its command line), and the driver's `Drop` kills all of them — on
//! success and on panic alike; each test asserts none is left.

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
    /// HOME, XDG_CONFIG_HOME and the profile of this browser.
    home: tempfile::TempDir,
}

/// What identifies one browser's processes.
#[derive(Debug, Clone)]
struct BrowserProcesses {
    /// The process group chromedriver leads (its children stay in it).
    group: i32,
    /// A path every process started for this browser names (crash handlers
    /// leave the group, not the path).
    marker: String,
}

impl BrowserProcesses {
    /// Live processes of this browser: (pid, command name). Zombies are
    /// dead already (their parent, often init here, reaps them later).
    fn alive(&self) -> Vec<(i32, String)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue; // gone meanwhile
            };
            // pid (comm) state ppid pgrp ...
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let name = head.split_once('(').map_or("", |(_, name)| name).to_owned();
            let fields: Vec<&str> = tail.split_whitespace().collect();
            if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
                continue;
            }
            let group = fields.get(2).and_then(|g| g.parse::<i32>().ok());
            let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let names_marker = String::from_utf8_lossy(&command).contains(&self.marker);
            if group == Some(self.group) || names_marker {
                found.push((pid, name));
            }
        }
        found
    }

    /// Kills every live process of this browser until none is left (for at
    /// most ten seconds); returns what is still alive then.
    fn kill_all(&self) -> Vec<(i32, String)> {
        use rustix::process::{Pid, Signal, kill_process, kill_process_group};
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(group) = Pid::from_raw(self.group) {
                let _ = kill_process_group(group, Signal::KILL);
            }
            let alive = self.alive();
            if alive.is_empty() || Instant::now() >= deadline {
                return alive;
            }
            for (pid, _) in &alive {
                if let Some(pid) = Pid::from_raw(*pid) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let processes = self.processes();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let left = processes.kill_all();
        if !left.is_empty() {
            eprintln!("browser processes survived their kill: {left:?}");
        }
    }
}

impl Driver {
    fn processes(&self) -> BrowserProcesses {
        BrowserProcesses {
            group: i32::try_from(self.child.id()).expect("a pid"),
            marker: self.home.path().display().to_string(),
        }
    }

    /// Starts chromedriver and a headless Chromium session.
    async fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        let chromium = required_tool("chromium", "chromium");
        let chromedriver = required_tool("chromedriver", "chromium-driver");
        let home = tempfile::Builder::new()
            .prefix("ringmaster-chromium-")
            .tempdir()
            .expect("browser home");
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let profile = format!("--user-data-dir={}", home.path().join("profile").display());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900", profile]
            }
        }}});
        // Owned from here: a panic below still kills chromedriver.
        let mut driver = Driver {
            child,
            url,
            session: String::new(),
            client,
            home,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        driver.session = loop {
            let answer = driver
                .client
                .post(format!("{}/session", driver.url))
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
        driver
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

    // The browser's processes, found by group and path, die with the driver.
    let processes = driver.processes();
    assert_browser_then_none_left(driver, &processes);
}

/// `processes` includes a running Chromium while `driver` lives, and
/// nothing once it is dropped.
fn assert_browser_then_none_left(driver: Driver, processes: &BrowserProcesses) {
    let alive = processes.alive();
    assert!(
        alive.iter().any(|(_, name)| name == "chromedriver")
            && alive
                .iter()
                .any(|(_, name)| name.starts_with("chrom") && name != "chromedriver"),
        "chromedriver and Chromium are found while the driver lives: {alive:?}"
    );
    drop(driver);
    let left = processes.alive();
    assert!(
        left.is_empty(),
        "browser processes outlived the test: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_that_panics_leaves_no_browser_behind() {
    let (sender, found) = std::sync::mpsc::channel();
    let panicked = tokio::spawn(async move {
        let driver = Driver::start().await;
        driver.goto("about:blank").await;
        let processes = driver.processes();
        sender
            .send((processes.clone(), processes.alive()))
            .expect("send");
        panic!("a failing assertion while the browser runs");
    })
    .await
    .expect_err("the task panicked");
    assert!(panicked.is_panic());
    let (processes, alive_before) = found.recv().expect("the browser started");
    assert!(
        alive_before.iter().any(|(_, name)| name != "chromedriver"),
        "Chromium ran before the panic: {alive_before:?}"
    );
    let left = processes.alive();
    assert!(
        left.is_empty(),
        "browser processes outlived the panic: {left:?}"
    );
}
