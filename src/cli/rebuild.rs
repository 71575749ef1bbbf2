//! `rebuild`: the state store made again from the evidence branch and the
//! planes, or a restored store brought forward (`--catch-up`); see
//! `crate::recovery` and `docs/operations.md`.

use crate::evidence::VerifyingKey;
use crate::progress::Progress;
use crate::recovery::{self, Sources, Summary};
use crate::source::GovernedRepo;
use crate::store::Store;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `ringmaster rebuild`.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// The governed repository holding the tracked branch and the evidence
    /// branch (a local clone; for a remote, `git clone --mirror` it first).
    #[arg(long)]
    pub repo: PathBuf,
    /// The new state directory (its store must be empty, see --force); the
    /// store is the SQLite file in it unless --store names another
    /// (`sqlite:PATH` or `postgres://…`, e.g. a new PostgreSQL database).
    #[arg(long)]
    pub state: PathBuf,
    /// The public key (ringmaster.pub) the evidence must be signed with.
    #[arg(long)]
    pub public_key: PathBuf,
    /// The daemon's secret key: signs the record of the rebuild, which
    /// anchors the new store's event log ($RINGMASTER_KEY_PASSWORD if it is
    /// encrypted).
    #[arg(long)]
    pub key: PathBuf,
    /// The daemon's config file: its `planes:` are asked what they hold.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tracked branch.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The evidence branch.
    #[arg(long, default_value = "evidence")]
    pub evidence_branch: String,
    /// Move an existing store aside (kept as ringmaster.db.before-rebuild-TIME)
    /// and rebuild in its place.
    #[arg(long, conflicts_with = "catch_up")]
    pub force: bool,
    /// Bring a store that is behind the branch (restored from a backup)
    /// forward instead: only the records after its evidence head are applied.
    #[arg(long)]
    pub catch_up: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Take this instant (RFC 3339) as the time of the rebuild instead of
    /// the clock (for replays and tests that step simulated time).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<DateTime<Utc>>,
}

/// Stage lines on stderr when it is not a terminal (logs, CI); the bars
/// of `cli::progress` when it is.
struct Stages {
    bars: super::progress::Reporter,
    lines: bool,
}

impl Progress for Stages {
    fn stage(&self, what: &str, total: Option<u64>) {
        if self.lines {
            match total {
                Some(total) => eprintln!("rebuild: {what} ({total})"),
                None => eprintln!("rebuild: {what}"),
            }
        }
        self.bars.stage(what, total);
    }

    fn advance(&self, count: u64) {
        self.bars.advance(count);
    }
}

pub(super) fn rebuild(args: RebuildArgs, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let now = args.now.unwrap_or(now);
    let key = VerifyingKey::load(&args.public_key)?;
    let password = std::env::var(super::daemon::KEY_PASSWORD_VARIABLE).ok();
    let signer = crate::evidence::SigningKey::load(&args.key, password.as_deref())
        .with_context(|| format!("signing key {}", args.key.display()))?;
    let repo = GovernedRepo::open(&args.repo)?;
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("create {}", args.state.display()))?;
    // No daemon may run on the directory meanwhile.
    let _instance =
        crate::daemon::locks::InstanceLock::acquire(&args.state).map_err(|message| {
            anyhow::anyhow!(
                "{message}; stop the daemon using {} before rebuilding its store",
                args.state.display()
            )
        })?;
    // --store (or $RINGMASTER_STORE_URL) names the store; else the SQLite
    // file in --state.
    let location = super::store_location(&args.state);
    let (mut store, shown) = match &location {
        crate::store::StoreLocation::Sqlite(database) => {
            if args.force
                && let Some(aside) = recovery::move_aside(database, now)
                    .with_context(|| format!("move {} aside", database.display()))?
            {
                eprintln!("rebuild: the previous store is kept as {}", aside.display());
            }
            if args.catch_up && !database.exists() {
                anyhow::bail!(
                    "{} does not exist: --catch-up brings an existing (restored) store forward; \
                     without it, rebuild makes a new one",
                    database.display()
                );
            }
            (Store::open(database)?, database.display().to_string())
        }
        crate::store::StoreLocation::Postgres(_) => {
            if args.force {
                anyhow::bail!(
                    "--force moves a SQLite file aside; a PostgreSQL store ({location}) is not \
                     dropped by ringmaster: rebuild into a new, empty database (or drop and \
                     create this one), or bring it forward with --catch-up"
                );
            }
            (Store::open_location(&location)?, location.redacted())
        }
    };
    let connectors = connectors(args.config.as_deref(), &args.state)?;
    let progress = Stages {
        bars: super::progress::Reporter::on_stderr(),
        lines: !std::io::stderr().is_terminal(),
    };
    let sources = Sources {
        repo: &repo,
        branch: &args.branch,
        evidence_branch: &args.evidence_branch,
        key: &key,
        signer: &signer,
        connectors: &connectors,
        progress: &progress,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let summary = runtime.block_on(async {
        if args.catch_up {
            recovery::catch_up(&sources, &mut store, now).await
        } else {
            recovery::rebuild(&sources, &mut store, now).await
        }
    });
    drop(progress);
    let summary = match summary {
        Ok(summary) => summary,
        Err(error @ recovery::RecoveryError::Tampered { .. }) => {
            eprintln!("error: {}", crate::escape::terminal(&error.to_string()));
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary, &shown));
    }
    Ok(ExitCode::SUCCESS)
}

/// The connectors the config file names (none without one: the runs that
/// were starting a ring are then left to the daemon, which asks the plane
/// before it publishes).
fn connectors(
    config: Option<&Path>,
    state: &Path,
) -> anyhow::Result<std::collections::BTreeMap<crate::model::Plane, crate::planes::Connector>> {
    let Some(path) = config else {
        return Ok(Default::default());
    };
    let raw = crate::daemon::config::RawConfig::from_file(path)?;
    let configs =
        crate::daemon::config::with_sim_state_files(raw.planes.unwrap_or_default(), state);
    Ok(crate::daemon::planes::build_configured(&configs)?)
}

fn render(summary: &Summary, store: &str) -> String {
    let mut text = String::new();
    let verb = if summary.mode == "catch_up" {
        format!("caught up from record #{}", summary.from_sequence)
    } else {
        "rebuilt".to_owned()
    };
    text.push_str(&format!(
        "{} {verb} from {} evidence record(s) in {:.2} s: up to record #{} (sha256 {}); the rebuild is record #{}\n",
        store,
        summary.records,
        summary.elapsed_seconds,
        summary.head_sequence,
        summary.head_pack_sha256,
        summary.rebuild_record,
    ));
    let phases: Vec<String> = summary
        .phases
        .iter()
        .map(|(phase, count)| format!("{phase} {count}"))
        .collect();
    text.push_str(&format!(
        "  intents: {} ({} with a rollout: {})\n",
        summary.intents,
        summary.runs,
        if phases.is_empty() {
            "none".to_owned()
        } else {
            phases.join(", ")
        }
    ));
    text.push_str(&format!(
        "  rings: {} published, {} completed; {} held (active changes)\n",
        summary.rings_published, summary.rings_completed, summary.active_changes
    ));
    text.push_str(&format!(
        "  blocked versions (rolled back): {}\n",
        if summary.blocked_versions.is_empty() {
            "none".to_owned()
        } else {
            crate::escape::terminal(&summary.blocked_versions.join(", ")).into_owned()
        }
    ));
    text.push_str(&format!(
        "  journal: {} evidence record(s) confirmed; processed commits: {}\n",
        summary.journal_entries, summary.processed_commits
    ));
    text.push_str(&format!(
        "  planes: {} status quer(ies), {} ring start(s) confirmed by the plane",
        summary.plane_queries, summary.confirmed_from_planes
    ));
    if summary.left_to_daemon.is_empty() {
        text.push('\n');
    } else {
        text.push_str(&format!(
            "; left to the daemon (asked again before any publish): {}\n",
            crate::escape::terminal(&summary.left_to_daemon.join(", "))
        ));
    }
    if summary.legacy_decisions > 0 {
        text.push_str(&format!(
            "  note: {} decision record(s) predate evaluation_facts; their verdict was read from the rest of the record\n",
            summary.legacy_decisions
        ));
    }
    text
}
