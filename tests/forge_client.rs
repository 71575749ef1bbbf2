//! The GitHub client against the fake API: App authentication (a JWT signed
//! with a key made by `openssl`, traded for installation tokens that are
//! renewed before they expire), plain tokens, GitHub Enterprise Server base
//! URLs, and GitHub's primary and secondary rate limits.

mod forge_support;

use chrono::{DateTime, Duration, Utc};
use forge_support::*;
use ringmaster::forge::rate_limit::LimitKind;
use ringmaster::forge::{AppPrivateKey, ForgeError, GitHubAuth, GitHubClient, GitHubSettings};
use std::sync::{Arc, Mutex};

struct App {
    _keys: tempfile::TempDir,
    github: FakeGitHub,
    private_key: String,
}

async fn app(token_lifetime: Duration) -> App {
    let keys = tempfile::tempdir().unwrap();
    let (private_key, public_key) = app_key_pair(keys.path());
    let github = FakeGitHub::start(
        OWNER,
        REPOSITORY,
        FakeAuth::App {
            app_id: 42,
            installation_id: 7,
            public_key_pem: public_key,
            token_lifetime,
        },
    )
    .await;
    github.open_pull_request(1, "bokafor", "pr-1", "aaaa", "main", "bbbb");
    App {
        _keys: keys,
        github,
        private_key,
    }
}

fn app_client(app: &App, private_key: &str) -> GitHubClient {
    let settings = GitHubSettings {
        api_base_url: app.github.url.clone(),
        owner: OWNER.into(),
        repository: REPOSITORY.into(),
        auth: GitHubAuth::App {
            app_id: 42,
            installation_id: 7,
            private_key: AppPrivateKey::new(private_key),
        },
    };
    GitHubClient::new(&settings, fixed_clock()).expect("client")
}

#[tokio::test]
async fn app_authentication_trades_a_signed_jwt_for_an_installation_token() {
    let app = app(Duration::hours(1)).await;
    let client = app_client(&app, &app.private_key);
    assert!(client.uses_check_runs());
    for _ in 0..3 {
        let pull = client.pull_request(1).await.expect("authenticated call");
        assert_eq!(pull.head.sha, "aaaa");
    }
    assert_eq!(
        app.github.issued_tokens(),
        1,
        "an hour-long token is reused"
    );
    let token_requests: Vec<_> = app
        .github
        .requests()
        .into_iter()
        .filter(|r| r.path == "/app/installations/7/access_tokens")
        .collect();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].method, "POST");
}

#[tokio::test]
async fn installation_token_is_renewed_before_it_expires() {
    // Tokens that live 20 s are inside the 30 s renewal margin: each call
    // gets a fresh one instead of risking an expired token mid-request.
    let app = app(Duration::seconds(20)).await;
    let client = app_client(&app, &app.private_key);
    for _ in 0..3 {
        client.pull_request(1).await.expect("authenticated call");
    }
    assert_eq!(app.github.issued_tokens(), 3);
}

#[tokio::test]
async fn a_jwt_signed_with_the_wrong_key_gets_no_token() {
    let app = app(Duration::hours(1)).await;
    let other = tempfile::tempdir().unwrap();
    let (wrong_key, _) = app_key_pair(other.path());
    let client = app_client(&app, &wrong_key);
    let error = client.pull_request(1).await.expect_err("refused");
    assert!(error.to_string().contains("JSON web token"), "{error}");
    assert_eq!(app.github.issued_tokens(), 0);
}

#[tokio::test]
async fn a_token_posts_commit_statuses_and_an_app_posts_check_runs() {
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    let forge = token_forge(&github);
    forge
        .publish(
            "aaaa",
            ringmaster::forge::CheckState::Pending,
            "waiting",
            "details",
            None,
        )
        .await
        .expect("status");
    assert_eq!(
        policy_status(&github, "aaaa"),
        Some(("pending".into(), "waiting".into()))
    );

    let app = app(Duration::hours(1)).await;
    let forge =
        ringmaster::forge::Forge::new(Arc::new(app_client(&app, &app.private_key)), "main", false);
    for state in [
        ringmaster::forge::CheckState::Pending,
        ringmaster::forge::CheckState::Success,
    ] {
        forge
            .publish(
                "aaaa",
                state,
                "summary",
                "details",
                Some("https://example.invalid"),
            )
            .await
            .expect("check run");
    }
    let runs = app.github.check_runs("aaaa");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["name"], "ringmaster/policy");
    assert_eq!(runs[0]["status"], "in_progress");
    assert!(runs[0].get("conclusion").is_none());
    assert_eq!(runs[1]["status"], "completed");
    assert_eq!(runs[1]["conclusion"], "success");
}

#[tokio::test]
async fn github_enterprise_server_base_url_with_a_path_is_honoured() {
    let github =
        FakeGitHub::start_under("/api/v3", OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    github.open_pull_request(1, "bokafor", "pr-1", "aaaa", "main", "bbbb");
    let client = GitHubClient::new(&token_settings(&github), fixed_clock()).unwrap();
    client.pull_request(1).await.expect("served below /api/v3");
    assert_eq!(
        github.requests()[0].path,
        "/api/v3/repos/contoso/tenant/pulls/1"
    );
}

/// A clock the test moves, starting at the wall clock (the fake's reset
/// headers are wall-clock epochs).
fn movable_clock() -> (Arc<Mutex<DateTime<Utc>>>, ringmaster::forge::Clock) {
    let time = Arc::new(Mutex::new(Utc::now()));
    let reader = time.clone();
    (time, Arc::new(move || *reader.lock().unwrap()))
}

async fn token_github() -> FakeGitHub {
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    github.open_pull_request(1, "bokafor", "pr-1", "aaaa", "main", "bbbb");
    github
}

#[tokio::test]
async fn a_short_secondary_rate_limit_is_waited_out_and_retried() {
    let github = token_github().await;
    let client = GitHubClient::new(&token_settings(&github), fixed_clock()).unwrap();
    github.script(Scripted::SecondaryLimit { retry_after: 0 });
    client
        .pull_request(1)
        .await
        .expect("retried after the limit");
    assert_eq!(github.api_requests(), 2);
}

#[tokio::test]
async fn a_long_secondary_rate_limit_stops_calls_until_retry_after() {
    let github = token_github().await;
    let (time, clock) = movable_clock();
    let client = GitHubClient::new(&token_settings(&github), clock).unwrap();
    github.script(Scripted::SecondaryLimit { retry_after: 120 });
    let error = client.pull_request(1).await.expect_err("limited");
    assert!(
        matches!(
            error,
            ForgeError::RateLimited {
                kind: LimitKind::Secondary,
                ..
            }
        ),
        "{error}"
    );
    client.pull_request(1).await.expect_err("still limited");
    assert_eq!(github.api_requests(), 1, "no call while the limit holds");
    *time.lock().unwrap() += Duration::seconds(121);
    client.pull_request(1).await.expect("after retry-after");
    assert_eq!(github.api_requests(), 2);
}

#[tokio::test]
async fn the_primary_rate_limit_stops_calls_until_the_reset() {
    let github = token_github().await;
    let (time, clock) = movable_clock();
    let client = GitHubClient::new(&token_settings(&github), clock).unwrap();
    github.script(Scripted::PrimaryLimit {
        reset_in_seconds: 3600,
    });
    let error = client.pull_request(1).await.expect_err("limited");
    let ForgeError::RateLimited { kind, until } = error else {
        panic!("{error}");
    };
    assert_eq!(kind, LimitKind::Primary);
    let now = *time.lock().unwrap();
    assert!(
        until > now + Duration::minutes(55) && until <= now + Duration::minutes(61),
        "{until}"
    );
    client.reviews(1).await.expect_err("refused locally");
    assert_eq!(github.api_requests(), 1);
    *time.lock().unwrap() += Duration::minutes(61);
    client.reviews(1).await.expect("after the reset");
}

#[tokio::test]
async fn a_spent_quota_on_a_good_response_holds_the_next_call() {
    let github = token_github().await;
    let (time, clock) = movable_clock();
    let client = GitHubClient::new(&token_settings(&github), clock).unwrap();
    github.script(Scripted::QuotaSpent {
        reset_in_seconds: 600,
    });
    client.pull_request(1).await.expect("this response is good");
    let error = client.pull_request(1).await.expect_err("quota spent");
    assert!(matches!(
        error,
        ForgeError::RateLimited {
            kind: LimitKind::Primary,
            ..
        }
    ));
    assert_eq!(github.api_requests(), 1);
    *time.lock().unwrap() += Duration::minutes(11);
    client.pull_request(1).await.expect("after the reset");
}
