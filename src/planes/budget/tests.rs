use super::*;
use chrono::TimeZone;
use std::sync::Arc;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn config(requests: u32, window: u64, concurrency: u32) -> BudgetConfig {
    BudgetConfig {
        requests,
        window_seconds: Duration::from_secs(window),
        concurrency,
        max_queue_wait_seconds: Duration::from_secs(2),
        status_freshness_seconds: Duration::ZERO,
    }
}

#[test]
fn the_window_admits_its_rate_and_says_when_the_next_slot_frees() {
    let mut window = Window::new(config(10, 60, 5));
    for second in 0..10 {
        window
            .admit(Priority::Urgent, at(second))
            .expect("within the rate");
    }
    let wait = window
        .admit(Priority::Urgent, at(30))
        .expect_err("11th in 60 s");
    assert_eq!(
        wait,
        Duration::from_secs(30),
        "the first slot frees at 60 s"
    );
    window
        .admit(Priority::Urgent, at(60))
        .expect("a slot freed");
    assert_eq!(window.sent_total, 11);
}

#[test]
fn each_class_fills_only_its_share_so_a_halt_always_has_headroom() {
    let mut window = Window::new(config(20, 60, 5));
    let mut status = 0;
    while window.admit(Priority::Status, at(0)).is_ok() {
        status += 1;
    }
    assert_eq!(status, 15, "status fills 75 % of the window");
    assert!(
        window.admit(Priority::Reconcile, at(0)).is_err(),
        "reconcile: 50 %"
    );
    let mut publish = 0;
    while window.admit(Priority::Publish, at(0)).is_ok() {
        publish += 1;
    }
    assert_eq!(publish, 3, "publish fills up to 90 %");
    let mut urgent = 0;
    while window.admit(Priority::Urgent, at(0)).is_ok() {
        urgent += 1;
    }
    assert_eq!(urgent, 2, "a halt takes the rest");
}

#[test]
fn throttling_halves_the_rate_honours_retry_after_and_recovers_a_step_per_window() {
    let mut window = Window::new(config(160, 60, 5));
    window.throttled(at(0), Some(Duration::from_secs(30)));
    assert_eq!(window.limit(), 80);
    let wait = window
        .admit(Priority::Status, at(10))
        .expect_err("Retry-After");
    assert_eq!(wait, Duration::from_secs(20));
    assert!(window.admit(Priority::Reconcile, at(10)).is_err());
    // A halt is held by the daemon's plane breaker, not here.
    window
        .admit(Priority::Urgent, at(10))
        .expect("urgent is not blocked");
    window
        .admit(Priority::Status, at(30))
        .expect("Retry-After is over");
    for _ in 0..10 {
        window.throttled(at(31), None);
    }
    assert_eq!(window.limit(), 10, "never below 1/16 of the rate");
    // One step of 1/8 per full window without a 429.
    window.admit(Priority::Urgent, at(91)).expect("admitted");
    assert_eq!(window.factor(), MIN_FACTOR + RECOVERY_STEP);
    window
        .admit(Priority::Urgent, at(91 + 8 * 60))
        .expect("admitted");
    assert_eq!(window.limit(), 160, "back to the configured rate");
}

/// A 429 storm on simulated time: a plane that throttles whenever more than
/// 30 requests reach it in a minute, callers that always want more. The
/// budget slows down, never sends more than its limit in any window, and
/// recovers to the full rate once the storm is over.
#[test]
fn a_429_storm_slows_the_budget_down_then_it_recovers_and_no_window_is_over_budget() {
    let mut window = Window::new(config(120, 60, 5));
    let mut sent: Vec<DateTime<Utc>> = Vec::new();
    let mut limits = Vec::new();
    for minute in 0..40 {
        let storm = minute < 10;
        let mut this_minute = 0;
        for request in 0..200 {
            let now = at(minute * 60) + chrono::Duration::milliseconds(request * 250);
            if window.admit(Priority::Status, now).is_err() {
                continue;
            }
            sent.push(now);
            this_minute += 1;
            if storm && this_minute > 30 {
                window.throttled(now, Some(Duration::from_secs(5)));
            }
        }
        limits.push(window.limit());
    }
    assert!(
        limits[9] < 120 / 2,
        "slowed down during the storm: {limits:?}"
    );
    assert_eq!(*limits.last().unwrap(), 120, "recovered: {limits:?}");
    // No window of 60 s holds more than the configured rate.
    for (index, start) in sent.iter().enumerate() {
        let within = sent[index..]
            .iter()
            .take_while(|later| **later < *start + chrono::Duration::seconds(60))
            .count();
        assert!(within <= 120, "{within} requests in the 60 s from {start}");
    }
}

#[tokio::test]
async fn a_halt_jumps_the_queue_of_status_calls() {
    let budget = Arc::new(PlaneBudget::new("jamf", config(1_000, 60, 1)));
    let held = budget.acquire("hold").await.expect("first permit");
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (name, priority) in [
        ("status-1", Priority::Status),
        ("reconcile", Priority::Reconcile),
        ("status-2", Priority::Status),
        ("halt", Priority::Urgent),
        ("publish", Priority::Publish),
    ] {
        let shared = Arc::clone(&budget);
        let order_tx = order_tx.clone();
        tasks.push(tokio::spawn(with_priority(priority, async move {
            let permit = shared.acquire(name).await.expect("permit");
            order_tx.send(name).expect("send");
            drop(permit);
        })));
        // Each waiter is queued before the next is spawned.
        let queued = budget.waiting() + 1;
        while budget.waiting() < queued {
            tokio::task::yield_now().await;
        }
    }
    drop(held);
    for task in tasks {
        task.await.expect("task");
    }
    drop(order_tx);
    let mut order = Vec::new();
    while let Some(name) = order_rx.recv().await {
        order.push(name);
    }
    assert_eq!(
        order,
        ["halt", "publish", "status-1", "status-2", "reconcile"]
    );
    assert_eq!(budget.in_flight(), 0);
}

#[tokio::test]
async fn a_wait_longer_than_the_queue_allows_is_a_rate_limit_with_the_wait() {
    let budget = PlaneBudget::new("intune", config(3, 60, 5)); // publish: 2 (90 %)
    scope(at(0), async {
        let first = budget.acquire("GET a").await.expect("1");
        drop(first);
        let second = budget.acquire("GET b").await.expect("2");
        drop(second);
        let error = budget.acquire("GET c").await.expect_err("spent");
        assert_eq!(error.code, ErrorCode::RateLimit);
        let wait = error.retry_after.expect("retry_after");
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(!error.message.contains("GET c?"), "{error}");
    })
    .await;
    // A minute later on the caller's clock, the window has room again.
    scope(at(60), async {
        budget.acquire("GET d").await.expect("a new window");
    })
    .await;
}

#[test]
fn the_gate_interval_says_when_the_budget_cannot_serve_the_schedule() {
    // 1,200 requests an hour, of which gate status may use 75 %: 900.
    let budget = config(1_200, 3_600, 5);
    let slow = GateInterval::compute("Intune", &budget, 1_300, Duration::from_secs(3_600));
    assert_eq!(
        slow.sentence(),
        "Intune status every 2 h, not 1 h: 1,300 calls/h needed, 900 available"
    );
    assert_eq!(slow.effective_seconds, 7_200);
    let fine = GateInterval::compute("Jamf", &budget, 600, Duration::from_secs(3_600));
    assert!(!fine.is_slower());
    assert_eq!(fine.effective_seconds, 3_600);
}

#[test]
fn every_plane_has_a_default_budget_that_plan_and_the_metrics_use() {
    // `plan` and the gate-interval metric read `plan::default_budget`; a plane
    // without one (Ansible had none) got no gate-check line and no metric.
    for plane in crate::model::Plane::ALL {
        let budget = crate::plan::default_budget(plane)
            .unwrap_or_else(|| panic!("{plane:?} has no default call budget"));
        assert!(budget.per_hour() > 0.0, "{plane:?}");
    }
    assert_eq!(
        crate::plan::default_budget(crate::model::Plane::Ansible),
        Some(BudgetConfig::awx())
    );
}

/// The daemon's pacing against the plane's budget window, as
/// `daemon::performer::plan_gate_pacing` joins them each step: 200 rollouts
/// whose checks cost 10 requests, a budget of 1,000 requests a minute (750
/// for gate status), steps a minute apart, and a 429 storm from minute 20
/// to 30 (the plane throttles past 200 requests a minute). The pacing
/// follows the budget down and back up: outside the storm no request is
/// refused by the window (the pacing never asks more than it admits; in the
/// storm, a 429 halves the rate after the step's share was granted), no
/// window holds
/// more than the status share, and the checks come every 3 minutes
/// (2,000 requests a round at 750 a minute) before and after the storm.
#[test]
fn paced_gate_checks_never_ask_more_than_the_budget_admits_through_a_429_storm() {
    use super::pacing::PlanePacing;
    let wanted = Duration::from_secs(60);
    let mut window = Window::new(config(1_000, 60, 5));
    let mut pacing = PlanePacing::new(wanted, 45_000.0);
    let rollouts: Vec<String> = (0..200).map(|index| format!("r{index:03}")).collect();
    let mut sent: Vec<DateTime<Utc>> = Vec::new();
    let mut intervals = Vec::new();
    let mut last: std::collections::BTreeMap<&str, i64> = Default::default();
    let mut gaps_after_storm = Vec::new();
    for minute in 0..60 {
        let now = at(minute * 60);
        let storm = (20..30).contains(&minute);
        let per_window = f64::from(window.limit_for(Priority::Status));
        pacing.set_available(status_per_hour(
            per_window,
            window.config().window_seconds,
            wanted,
        ));
        pacing.set_burst(Some(per_window - window.in_window(now) as f64));
        pacing.begin_step(now);
        let mut this_minute = 0;
        for rollout in &rollouts {
            if !pacing.due(rollout, "ring-2", Some(10), now) {
                continue;
            }
            let mut answered = true;
            for _ in 0..10 {
                if let Err(wait) = window.admit(Priority::Status, now) {
                    // Only a 429 in this very step (the rate halved after
                    // the step's share was granted) leaves a check unsent.
                    assert!(storm, "minute {minute}: refused, wait {wait:?}");
                    answered = false;
                    break;
                }
                sent.push(now);
                this_minute += 1;
                if storm && this_minute > 200 {
                    window.throttled(now, None);
                    answered = false;
                    break;
                }
            }
            if answered {
                pacing.checked(rollout, now, 10);
                if let Some(before) = last.insert(rollout, minute)
                    && minute >= 45
                {
                    gaps_after_storm.push(minute - before);
                }
            }
        }
        intervals.push(pacing.effective().as_secs());
    }
    assert_eq!(intervals[10], 180, "{intervals:?}");
    assert!(
        intervals[29] > 180,
        "slower during the storm: {intervals:?}"
    );
    assert_eq!(intervals[59], 180, "recovered: {intervals:?}");
    assert!(
        gaps_after_storm.iter().all(|gap| *gap <= 3),
        "{gaps_after_storm:?}"
    );
    assert!(!gaps_after_storm.is_empty());
    for (index, start) in sent.iter().enumerate() {
        let within = sent[index..]
            .iter()
            .take_while(|later| **later < *start + chrono::Duration::seconds(60))
            .count();
        assert!(within <= 750, "{within} requests in the 60 s from {start}");
    }
}
