//! `/metrics` scraped by the real Prometheus (Debian package `prometheus`,
//! installed by `scripts/test.sh`): a daemon serves the state the demo story
//! left, Prometheus scrapes it and loads `deploy/prometheus/alerts.yml`, and
//! every Grafana panel's query and every alert rule's query
//! (`deploy/grafana/*.json`, `deploy/prometheus/alerts.yml`) is evaluated
//! through Prometheus's HTTP API and must return data. `promtool check
//! metrics` lints the exposition, `promtool check rules` and `promtool test
//! rules` the rules.

mod observability;

use observability::{commit_to_demo, free_port, required_tool, serve_demo_with};
use ringmaster::metrics::families::{ALL, SEED_SEVEN};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(target: &str) -> Prometheus {
    let binary = required_tool("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: ringmaster\n    static_configs:\n      - targets: [\"{target}\"]\n",
            repo_path("deploy/prometheus/alerts.yml").display()
        ),
    )
    .expect("config");
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Asks Prometheus until `accept` takes the answer's `data`, for at most a minute.
async fn poll(client: &reqwest::Client, url: &str, what: &str, accept: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await
            && let Ok(body) = response.json::<Value>().await
        {
            if body["status"] == "success" && accept(&body["data"]) {
                return;
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: no data from Prometheus within a minute; last answer: {last}");
}

/// Every `expr` of every panel of every dashboard under deploy/grafana.
fn panel_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo_path("deploy/grafana"))
        .expect("deploy/grafana")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "the design's four dashboards: {files:?}");
    for file in files {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{}", file.display());
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "{}: {}",
                file.display(),
                panel["title"]
            );
            for target in targets {
                let expr = target["expr"].as_str().expect("expr").to_owned();
                queries.push((format!("{} / {}", file.display(), panel["title"]), expr));
            }
        }
    }
    queries
}

/// Every alert rule's query: its expression without the final `<op> <number>`.
fn rule_queries() -> Vec<(String, String)> {
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path("deploy/prometheus/alerts.yml")).expect("read"),
    )
    .expect("YAML");
    let mut queries = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert").to_owned();
            let expr = rule["expr"].as_str().expect("expr").trim();
            let (query, threshold) = expr.rsplit_once(' ').expect("<query> <op> <number>");
            threshold
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{name}: ends with a number"));
            let query = query
                .trim_end()
                .strip_suffix(['>', '<', '='])
                .map(|q| q.trim_end_matches(['>', '<', '=', '!']))
                .unwrap_or_else(|| panic!("{name}: ends with a comparison"));
            queries.push((name, query.trim().to_owned()));
        }
    }
    queries
}

/// Metric names a query mentions.
fn metric_names(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = query;
    while let Some(start) = rest.find("ringmaster_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn base_name(series: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| {
            let base = series.strip_suffix(suffix)?;
            ALL.iter().any(|f| f.name == base).then_some(base)
        })
        .unwrap_or(series)
}

fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    let binary = required_tool("promtool", "prometheus");
    let mut child = Command::new(binary)
        .args(args)
        .current_dir(repo_path("deploy/prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write");
    drop(input);
    let output = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"], None);
    let tested = promtool(&["test", "rules", "alerts_test.yml"], None);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_dashboard_and_rule_query_names_only_metrics_we_expose() {
    let declared: BTreeSet<&str> = ALL.iter().map(|family| family.name).collect();
    for (place, query) in panel_queries().into_iter().chain(rule_queries()) {
        let names = metric_names(&query);
        assert!(
            !names.is_empty(),
            "{place}: no ringmaster metric in {query}"
        );
        for name in names {
            assert!(
                declared.contains(base_name(&name)),
                "{place}: {name} is not a metric ringmaster exposes"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_demo_and_every_panel_and_rule_returns_data() {
    // A later commit: the serving daemon judges it (policy evaluation) and
    // reconciles the demo's rollouts (plane calls) before Prometheus looks.
    let served = serve_demo_with(&[], commit_to_demo);
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/metrics", served.url))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let exposition = response.text().await.expect("body");
    promtool(&["check", "metrics"], Some(&exposition));
    for family in SEED_SEVEN {
        assert!(
            exposition.contains(&format!("\n{}", family.name)),
            "{} missing from /metrics:\n{exposition}",
            family.name
        );
    }

    // The process's own measurements: real calls and evaluations, counted.
    let exposition = wait_for_process_metrics(&client, &served.url, exposition).await;
    for family in ringmaster::metrics::families::PROCESS {
        assert!(
            exposition.contains(&format!("\n{}", family.name)),
            "{} missing from /metrics:\n{exposition}",
            family.name
        );
    }
    // Nothing per business unit on the per-ring families (their bound).
    for line in exposition
        .lines()
        .filter(|l| l.starts_with("ringmaster_ring_"))
    {
        assert!(!line.contains("business_unit="), "{line}");
    }

    let target = served.url.trim_start_matches("http://").to_owned();
    let prometheus = start_prometheus(&target);
    poll(
        &client,
        &format!("{}/api/v1/targets", prometheus.url),
        "the ringmaster target up",
        |data| {
            data["activeTargets"]
                .as_array()
                .is_some_and(|targets| targets.iter().any(|t| t["health"] == "up"))
        },
    )
    .await;
    // The seed's seven come back from Prometheus under their documented names.
    for family in SEED_SEVEN {
        let selector = match family.kind {
            ringmaster::metrics::families::Kind::Histogram => format!("{}_count", family.name),
            _ => family.name.to_owned(),
        };
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", prometheus.url),
            &[("query", selector.as_str())],
        )
        .unwrap();
        poll(&client, url.as_str(), &selector, |data| {
            data["result"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    }
    for (place, query) in panel_queries().into_iter().chain(rule_queries()) {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", prometheus.url),
            &[("query", query.as_str())],
        )
        .unwrap();
        poll(
            &client,
            url.as_str(),
            &format!("{place}: {query}"),
            |data| data["result"].as_array().is_some_and(|r| !r.is_empty()),
        )
        .await;
    }
    // Prometheus loaded and evaluated every rule without an error.
    poll(
        &client,
        &format!("{}/api/v1/rules", prometheus.url),
        "every rule evaluated",
        |data| {
            let rules: Vec<&Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            rules.len() == rule_queries().len()
                && rules
                    .iter()
                    .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
        },
    )
    .await;
}

/// The sum of the values of every series of `family` (a counter or a
/// histogram's `_count`) in `exposition`.
fn total(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| line.starts_with(series) && line[series.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes until the daemon has judged the commit and called its planes.
async fn wait_for_process_metrics(
    client: &reqwest::Client,
    url: &str,
    mut exposition: String,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let evaluations = total(&exposition, "ringmaster_policy_evaluation_seconds_count");
        let calls = total(&exposition, "ringmaster_plane_call_seconds_count");
        let classed = total(&exposition, "ringmaster_plane_calls_total");
        if evaluations > 0.0 && calls > 0.0 && classed >= calls {
            return exposition;
        }
        assert!(
            Instant::now() < deadline,
            "no policy evaluation or plane call measured within a minute:\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        exposition = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
    }
}

#[test]
fn status_watch_redraws_a_progress_bar_per_ring() {
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(observability::demo_dir().join("demo/state"))
        .arg(copy.path())
        .status()
        .expect("cp");
    assert!(copied.success());
    let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args([
            "status",
            "--watch",
            "--interval",
            "0",
            "--frames",
            "2",
            "--state",
        ])
        .arg(copy.path().join("state"))
        .output()
        .expect("ringmaster status --watch");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.matches("ringmaster status --watch").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ring-0-lab         [{}]      8/8      done pass 100%",
            "#".repeat(24)
        )),
        "{text}"
    );
    assert!(
        text.contains("zoom-6.3.0-finance  DENY  rolled_back"),
        "{text}"
    );
}
