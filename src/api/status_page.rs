//! `GET /`: the status page. Server-rendered HTML that works without
//! JavaScript (it refreshes itself with a `<meta http-equiv="refresh">`),
//! one self-contained document with no external asset, readable on a laptop
//! and a phone: rollouts by state with each ring's progress and gate figures,
//! the approval queue, plane health, recent drift and the latest evidence
//! record with its verification status.
//!
//! Everything shown comes from the store (and the evidence branch's tip);
//! every value is HTML-escaped, since intent ids, reasons and drift details
//! come from the governed repository and the planes.

use super::Clock;
use crate::daemon::rollout::IntentState;
use crate::orchestrator::{Phase, Requirement};
use crate::store::{EvidenceHead, IntentRecord, PlaneActionCount, RecentEvent, Store, StoreError};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the page reads.
pub struct StatusPageState {
    pub store: Mutex<Store>,
    /// The repository holding the evidence branch, and the branch's name.
    pub evidence: Option<(PathBuf, String)>,
    pub clock: Clock,
}

/// Everything one rendering shows.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub now: DateTime<Utc>,
    pub intents: Vec<IntentRecord>,
    pub awaiting_since: BTreeMap<String, DateTime<Utc>>,
    pub plane_actions: Vec<PlaneActionCount>,
    pub drift: Vec<RecentEvent>,
    pub evidence_head: Option<EvidenceHead>,
    /// Whether the evidence branch's tip is the record the store last wrote.
    pub evidence_verified: Option<Result<(), String>>,
    /// Seconds between refreshes (`<meta http-equiv="refresh">`).
    pub refresh_seconds: u32,
    /// Each plane's gate-check interval against its call budget, as the
    /// daemon's last step left it: at the live demand (the rollouts asking
    /// now, in the rings they are in), and the worst case `plan` says.
    pub gate_checks: Vec<crate::planes::budget::GateChecks>,
}

impl StatusView {
    pub fn read(state: &StatusPageState, refresh_seconds: u32) -> Result<StatusView, StoreError> {
        let store = state
            .store
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Only the approval queue and plane actions are shown: no event-log scan.
        let rows = store.telemetry_rows_but_events()?;
        let evidence_head = store.evidence_head()?;
        let evidence_verified = match (&state.evidence, &evidence_head) {
            (Some((repo, branch)), Some(head)) => Some(branch_tip_matches(repo, branch, head)),
            _ => None,
        };
        Ok(StatusView {
            now: (state.clock)(),
            intents: store.list_intents()?,
            awaiting_since: rows.awaiting_since.into_iter().collect(),
            plane_actions: rows.plane_actions,
            drift: store.recent_events("drift_detected", 10)?,
            evidence_head,
            evidence_verified,
            refresh_seconds,
            gate_checks: crate::metrics::runtime::gate_checks(),
        })
    }
}

fn branch_tip_matches(repo: &PathBuf, branch: &str, head: &EvidenceHead) -> Result<(), String> {
    let repository = git2::Repository::discover(repo).map_err(|e| e.message().to_owned())?;
    let tip = repository
        .revparse_single(&format!("refs/heads/{branch}"))
        .and_then(|object| object.peel_to_commit())
        .map_err(|e| format!("evidence branch {branch}: {}", e.message()))?;
    if tip.id().to_string() == head.evidence_commit_sha {
        Ok(())
    } else {
        Err(format!(
            "the evidence branch tip is {}, the store last wrote {}",
            tip.id(),
            head.evidence_commit_sha
        ))
    }
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;\
padding:1rem;color:#1c2430;background:#f6f7f9}h1{font-size:1.3rem;margin:0 0 .25rem}\
h2{font-size:1.05rem;margin:1.5rem 0 .5rem}.meta{color:#5a6473;font-size:.85rem}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}\
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e3e6ea;vertical-align:top}\
th{background:#eef0f3;font-weight:600}.ring{display:flex;align-items:center;gap:.4rem;\
margin:.15rem 0;white-space:nowrap}.ring .name{width:7.5rem;overflow:hidden;text-overflow:ellipsis}\
.bar{width:8rem;height:.6rem;background:#e3e6ea;border-radius:.3rem;overflow:hidden;flex:none}\
.bar span{display:block;height:100%;background:#2f855a}.bar span.failed{background:#c53030}\
.state{font-weight:600}.ok{color:#2f855a}.bad{color:#c53030}.wait{color:#b7791f}\
@media (max-width:640px){body{padding:.5rem}.wide{display:none}.bar{width:4rem}.ring .name{width:5rem}}";

/// The page (pure: the same view renders the same bytes).
pub fn render(view: &StatusView) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{}\">\
         <title>ringmaster status</title><style>{STYLE}</style></head><body>\
         <h1>ringmaster</h1><p class=\"meta\">as of <time id=\"as-of\">{}</time> · \
         refreshes every {} s</p>",
        view.refresh_seconds,
        escape(&view.now.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        view.refresh_seconds
    );
    render_rollouts(&mut html, view);
    render_approvals(&mut html, view);
    render_planes(&mut html, view);
    render_gate_checks(&mut html, view);
    render_drift(&mut html, view);
    render_evidence(&mut html, view);
    html.push_str("</body></html>\n");
    html
}

fn state_class(phase: &str) -> &'static str {
    match phase {
        "completed" => "ok",
        "failed" | "rolled_back" | "rolling_back" => "bad",
        "awaiting_approval" | "held" | "paused" => "wait",
        _ => "",
    }
}

fn render_rollouts(html: &mut String, view: &StatusView) {
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    let parsed: Vec<(&IntentRecord, IntentState)> = view
        .intents
        .iter()
        .map(|record| (record, IntentState::from_record(record)))
        .collect();
    for (record, state) in &parsed {
        let name = state
            .run
            .as_ref()
            .map_or(record.state.as_str(), |run| run.phase.name());
        *by_state.entry(name).or_default() += 1;
    }
    html.push_str("<h2>Rollouts</h2><p class=\"meta\" id=\"rollout-counts\">");
    let counts: Vec<String> = by_state
        .iter()
        .map(|(state, count)| format!("{} {}", count, escape(state)))
        .collect();
    html.push_str(&counts.join(" · "));
    html.push_str(
        "</p><div class=\"scroll\"><table id=\"rollouts\"><thead><tr><th>Intent</th>\
         <th class=\"wide\">Application</th><th class=\"wide\">Unit</th>\
         <th class=\"wide\">Decision</th><th>State</th><th>Rings \
         (installed / targeted, gate)</th></tr></thead><tbody>",
    );
    for (record, state) in &parsed {
        let phase = state
            .run
            .as_ref()
            .map_or(record.state.as_str(), |run| run.phase.name());
        let _ = write!(
            html,
            "<tr class=\"rollout\" data-intent=\"{id}\"><td>{id}</td><td class=\"wide\">{app}</td>\
             <td class=\"wide\">{unit}</td><td class=\"wide\">{decision}</td><td class=\"state {class}\">{phase}</td><td>",
            id = escape(&record.intent_id),
            app = escape(&record.application_id),
            unit = escape(&record.business_unit),
            decision = escape(record.decision.as_deref().unwrap_or("")),
            class = state_class(phase),
            phase = escape(phase),
        );
        for ring in state.run.iter().flat_map(|run| &run.rings) {
            let (installed, failed, targeted) = ring
                .observed()
                .map_or((0, 0, 0), |o| (o.installed, o.failed, o.targeted));
            let percent = |part: u32| {
                if targeted == 0 {
                    0.0
                } else {
                    f64::from(part) * 100.0 / f64::from(targeted)
                }
            };
            let mark = match (ring.completed_at(), ring.started_at()) {
                (Some(_), _) => "done",
                (None, Some(_)) => "live",
                (None, None) => "not started",
            };
            let gate = ring
                .gate()
                .map(|gate| {
                    format!(
                        "{:?} {:.0}%",
                        gate.verdict,
                        gate.success_rate.unwrap_or(0.0) * 100.0
                    )
                    .to_lowercase()
                })
                .unwrap_or_default();
            let _ = write!(
                html,
                "<div class=\"ring\" data-ring=\"{ring}\"><span class=\"name\">{ring}</span>\
                 <span class=\"bar\" title=\"{installed} installed, {failed} failed of {targeted}\">\
                 <span style=\"width:{ok:.1}%\"></span></span>\
                 <span class=\"figures\">{installed}/{targeted}</span> <span>{mark}</span> \
                 <span class=\"gate\">{gate}</span></div>",
                ring = escape(&ring.ring),
                ok = percent(installed),
                gate = escape(&gate),
            );
        }
        html.push_str("</td></tr>");
    }
    html.push_str("</tbody></table></div>");
}

fn render_approvals(html: &mut String, view: &StatusView) {
    html.push_str(
        "<h2>Approval queue</h2><div class=\"scroll\"><table id=\"approvals\"><thead><tr>\
         <th>Intent</th><th>Waiting for</th><th>Before ring</th><th>Waiting since</th></tr>\
         </thead><tbody>",
    );
    let mut any = false;
    for record in &view.intents {
        let state = IntentState::from_record(record);
        let Some(Phase::AwaitingApproval { ring, requirement }) = state.run.map(|run| run.phase)
        else {
            continue;
        };
        any = true;
        let requirement = match requirement {
            Requirement::CabApproval => "CAB approval",
            Requirement::Exception => "exception",
            Requirement::PolicyVerdict => "policy verdict",
            Requirement::ActiveChange => "another change in flight to end",
        };
        let since = view
            .awaiting_since
            .get(&record.intent_id)
            .map(|since| {
                let hours = (view.now - *since).num_minutes() as f64 / 60.0;
                format!("{} ({hours:.1} h)", since.format("%Y-%m-%d %H:%M UTC"))
            })
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr class=\"approval\" data-intent=\"{id}\"><td>{id}</td><td>{requirement}</td>\
             <td>{ring}</td><td>{since}</td></tr>",
            id = escape(&record.intent_id),
            ring = escape(&ring),
            since = escape(&since),
        );
    }
    if !any {
        html.push_str("<tr><td colspan=\"4\">nothing waits for an approval</td></tr>");
    }
    html.push_str("</tbody></table></div>");
}

fn render_planes(html: &mut String, view: &StatusView) {
    let mut planes: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for action in &view.plane_actions {
        let entry = planes.entry(action.plane.as_str()).or_default();
        let slot = match action.state.as_str() {
            "confirmed" => 0,
            "failed" => 1,
            "planned" | "sent" => 2,
            _ => 3,
        };
        entry[slot] += action.count;
    }
    html.push_str(
        "<h2>Plane health</h2><div class=\"scroll\"><table id=\"planes\"><thead><tr>\
         <th>Plane</th><th>Confirmed</th><th>Failed</th><th>In flight</th></tr></thead><tbody>",
    );
    for (plane, [confirmed, failed, in_flight, _]) in &planes {
        let class = if *failed > 0 { "bad" } else { "ok" };
        let _ = write!(
            html,
            "<tr data-plane=\"{plane}\"><td class=\"{class}\">{plane}</td><td>{confirmed}</td>\
             <td>{failed}</td><td>{in_flight}</td></tr>",
            plane = escape(plane),
        );
    }
    if planes.is_empty() {
        html.push_str("<tr><td colspan=\"4\">no plane change yet</td></tr>");
    }
    html.push_str("</tbody></table></div>");
}

/// Per plane with a call budget, what its gate checks get now — "now, 12
/// rollouts checking: Intune status every 1 min as scheduled: …" from the
/// rollouts asking in the daemon's last step, at what their checks cost in
/// the rings they are in — and the worst case `plan` says in advance — "if
/// every intent reaches its last ring: Intune status every 2 h, not 1 h:
/// 1,300 calls/h needed, 900 available".
fn render_gate_checks(html: &mut String, view: &StatusView) {
    html.push_str("<h2>Gate checks</h2><ul id=\"gate-checks\">");
    for checks in &view.gate_checks {
        let worst = &checks.worst_case;
        let slower = checks.now.as_ref().is_some_and(|now| now.is_slower());
        let class = if slower { "wait" } else { "ok" };
        let _ = write!(
            html,
            "<li class=\"{class}\" data-plane=\"{}\">",
            escape(&worst.plane)
        );
        match &checks.now {
            Some(now) => {
                let _ = write!(
                    html,
                    "<span class=\"now\">now, {} rollout{} checking: {}</span>",
                    checks.rollouts,
                    if checks.rollouts == 1 { "" } else { "s" },
                    escape(&now.sentence())
                );
            }
            None => html.push_str("<span class=\"now\">now: no step yet</span>"),
        }
        let _ = write!(
            html,
            "<br><span class=\"worst-case\">if every intent reaches its last ring: {}</span></li>",
            escape(&worst.sentence())
        );
    }
    if view.gate_checks.is_empty() {
        html.push_str("<li>no plane with a call budget yet</li>");
    }
    html.push_str("</ul>");
}

fn render_drift(html: &mut String, view: &StatusView) {
    html.push_str(
        "<h2>Recent drift</h2><div class=\"scroll\"><table id=\"drift\"><thead><tr><th>When</th>\
         <th>Intent</th><th>Plane</th><th>Type</th><th>Detail</th><th>Remediation</th></tr>\
         </thead><tbody>",
    );
    for event in &view.drift {
        let text = |key: &str| {
            event
                .details
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&event.timestamp.format("%Y-%m-%d %H:%M UTC").to_string()),
            escape(&event.intent_id),
            escape(&event.plane),
            escape(&text("drift_type")),
            escape(&text("detail")),
            escape(&text("remediation_action")),
        );
    }
    if view.drift.is_empty() {
        html.push_str("<tr><td colspan=\"6\">no drift found</td></tr>");
    }
    html.push_str("</tbody></table></div>");
}

fn render_evidence(html: &mut String, view: &StatusView) {
    html.push_str("<h2>Latest evidence record</h2><div id=\"evidence\">");
    match &view.evidence_head {
        None => html.push_str("<p>no evidence record yet</p>"),
        Some(head) => {
            let (class, verdict) = match &view.evidence_verified {
                Some(Ok(())) => (
                    "ok",
                    "verified: the evidence branch's tip is this record".to_owned(),
                ),
                Some(Err(reason)) => ("bad", format!("NOT verified: {reason}")),
                None => ("wait", "not checked (no evidence branch here)".to_owned()),
            };
            let _ = write!(
                html,
                "<p>record #{} · pack sha256 <code>{}</code> · commit <code>{}</code> · \
                 written {}</p><p class=\"{class}\" id=\"evidence-status\">{}</p>",
                head.sequence,
                escape(&head.pack_sha256),
                escape(&head.evidence_commit_sha),
                escape(&head.updated_at.format("%Y-%m-%d %H:%M UTC").to_string()),
                escape(&verdict),
            );
        }
    }
    html.push_str("</div>");
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    /// Seconds between refreshes (2..=3600; default 10).
    refresh: Option<u32>,
}

/// The route: `GET /`.
pub fn routes(state: Arc<StatusPageState>) -> Router {
    Router::new().route("/", get(page)).with_state(state)
}

async fn page(
    State(state): State<Arc<StatusPageState>>,
    Query(query): Query<PageQuery>,
) -> Response {
    let refresh = query.refresh.unwrap_or(10).clamp(1, 3600);
    match tokio::task::spawn_blocking(move || StatusView::read(&state, refresh)).await {
        Ok(Ok(view)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ),
            ],
            render(&view),
        )
            .into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "status page: reading the store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store cannot be read\n",
            )
                .into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "status page: the task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "status page failed\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(intent_id: &str) -> IntentRecord {
        IntentRecord {
            intent_id: intent_id.into(),
            correlation_id: "c".into(),
            application_id: "app<b>".into(),
            acquisition_boundary: "corp".into(),
            business_unit: "bu-\"x\"".into(),
            version: "1".into(),
            content_sha256: "sha".into(),
            state: "pending".into(),
            state_json: serde_json::json!({}),
            decision: Some("ALLOW".into()),
            risk_score: Some(10),
            updated_at: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn hostile_values_are_escaped_and_nothing_is_fetched() {
        let view = StatusView {
            now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            intents: vec![record("<script>alert(1)</script>")],
            awaiting_since: BTreeMap::new(),
            plane_actions: Vec::new(),
            drift: vec![RecentEvent {
                seq: 1,
                intent_id: "x' onmouseover='alert(2)".into(),
                timestamp: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
                plane: "intune".into(),
                ring: String::new(),
                outcome: "failure".into(),
                details: serde_json::json!({"detail": "<img src=x onerror=alert(3)>"}),
            }],
            evidence_head: None,
            evidence_verified: None,
            refresh_seconds: 10,
            gate_checks: Vec::new(),
        };
        let html = render(&view);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("x&#39; onmouseover=&#39;alert(2)"));
        assert!(html.contains("bu-&quot;x&quot;"));
        for external in ["http://", "https://", "src=\"", "<link", "@import"] {
            assert!(
                !html.contains(external),
                "external asset {external}: {html}"
            );
        }
    }

    #[test]
    fn each_plane_says_its_gate_check_interval_now_and_in_the_worst_case() {
        use crate::planes::budget::{BudgetConfig, GateChecks, GateInterval};
        let minute = std::time::Duration::from_secs(60);
        let view = StatusView {
            now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            intents: Vec::new(),
            awaiting_since: BTreeMap::new(),
            plane_actions: Vec::new(),
            drift: Vec::new(),
            evidence_head: None,
            evidence_verified: None,
            refresh_seconds: 10,
            gate_checks: vec![
                GateChecks {
                    now: Some(GateInterval::compute(
                        "Intune",
                        &BudgetConfig::intune(),
                        700,
                        minute,
                    )),
                    rollouts: 100,
                    worst_case: GateInterval::compute(
                        "Intune",
                        &BudgetConfig::intune(),
                        2_000,
                        minute,
                    ),
                },
                GateChecks {
                    now: Some(GateInterval::compute(
                        "Jamf",
                        &BudgetConfig::jamf(),
                        1_500,
                        minute,
                    )),
                    rollouts: 1,
                    worst_case: GateInterval::compute("Jamf", &BudgetConfig::jamf(), 1_500, minute),
                },
            ],
        };
        let html = render(&view);
        assert!(
            html.contains(
                "<li class=\"ok\" data-plane=\"Intune\"><span class=\"now\">now, 100 rollouts checking: Intune status every 1 min as scheduled: 42,000 calls/h needed, 45,000 available</span><br><span class=\"worst-case\">if every intent reaches its last ring: Intune status every 3 min, not 1 min: 120,000 calls/h needed, 45,000 available</span></li>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<li class=\"wait\" data-plane=\"Jamf\"><span class=\"now\">now, 1 rollout checking: Jamf status every 2 min, not 1 min: 90,000 calls/h needed, 54,000 available"),
            "{html}"
        );
        let empty = StatusView {
            gate_checks: Vec::new(),
            ..view
        };
        assert!(render(&empty).contains("no plane with a call budget yet"));
    }
}
