//! The command line: argument parsing and one function per command.
//!
//! Commands print for people by default and for machines with `--format json`.
//! Exit codes: 0 success, 1 the repository (or evidence) is not acceptable,
//! 2 usage or I/O failure.

mod backup;
mod daemon;
mod demo;
mod evidence;
mod init;
mod output;
mod plan;
mod progress;
mod rebuild;
mod remote;
mod simulate;
mod status;
mod validate;
mod watch;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// ringmaster — a Git-native control plane for application deployments.
///
/// A Git repository holds deployment intents, CAB approvals and exceptions as
/// YAML. ringmaster validates every change against JSON Schemas and Rego
/// policy, scores its risk, and (as a daemon) signs evidence and drives the
/// execution planes ring by ring.
///
/// Start with `ringmaster demo` (the whole story in seconds), then
/// `ringmaster init my-tenant && ringmaster validate my-tenant`.
#[derive(Debug, Parser)]
#[command(name = "ringmaster", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where the state store is, for every command that opens it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArgs {
    /// The state store, instead of the SQLite file in --state:
    /// `sqlite:PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
    /// (also from $RINGMASTER_STORE_URL). --state still holds the rest of
    /// the daemon's local state. Prefer --store-file for a URL with a
    /// password; it is never printed.
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// A file whose first line is the store URL (keeps a password off the
    /// command line).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "store")]
    pub store_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The location named by --store, --store-file or $RINGMASTER_STORE_URL,
    /// in that order; `None`: the SQLite file in --state.
    pub fn resolve(
        &self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<crate::store::StoreLocation>> {
        use crate::store::StoreLocation;
        if let Some(text) = &self.store {
            return Ok(Some(StoreLocation::parse(text)?));
        }
        if let Some(file) = &self.store_file {
            let text = std::fs::read_to_string(file).map_err(|error| {
                anyhow::anyhow!("cannot read --store-file {}: {error}", file.display())
            })?;
            let line = text.lines().next().unwrap_or_default();
            return Ok(Some(StoreLocation::parse(line).map_err(|error| {
                anyhow::anyhow!("--store-file {}: {error}", file.display())
            })?));
        }
        match environment(crate::store::STORE_URL_ENV) {
            Some(text) if !text.trim().is_empty() => {
                Ok(Some(StoreLocation::parse(&text).map_err(|error| {
                    anyhow::anyhow!("${}: {error}", crate::store::STORE_URL_ENV)
                })?))
            }
            _ => Ok(None),
        }
    }
}

/// The store location of this command line (set by [`run`]).
static STORE_LOCATION: std::sync::Mutex<Option<crate::store::StoreLocation>> =
    std::sync::Mutex::new(None);

/// Where the commands open the store: --store and friends, else the
/// SQLite file in the state directory.
pub(crate) fn store_location(state: &std::path::Path) -> crate::store::StoreLocation {
    STORE_LOCATION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .unwrap_or_else(|| crate::store::StoreLocation::Sqlite(state.join("ringmaster.db")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow commands (::error file=...,line=...::message).
    Github,
}

/// Which revision of a governed repository to read.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoArgs {
    /// The governed repository: a Git repository, or a folder inside one
    /// (then the snapshot is that folder's subtree at the revision).
    #[arg(default_value = ".")]
    pub repo: PathBuf,
    /// Revision to read (branch, tag or commit); blobs come from the object
    /// database, never from a checkout.
    #[arg(long, default_value = "HEAD", conflicts_with = "worktree")]
    pub rev: String,
    /// Read the working directory instead of a revision (for pre-commit hooks).
    #[arg(long)]
    pub worktree: bool,
    /// Evaluate as of this instant (RFC 3339) instead of now; expiries of
    /// approvals and exceptions are judged against it.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a governed repository: YAML, schemas, links, risk and policy.
    ///
    /// Every problem is reported at once with file:line:column. Exit 0 when
    /// there are no errors and no DENY; 1 on errors or a DENY (or any
    /// REQUIRE_* with --strict); 2 on usage or I/O failure.
    ///
    /// Examples:
    ///   ringmaster validate sample-repo
    ///   ringmaster validate . --rev origin/main --format json
    ///   ringmaster validate --worktree --strict
    #[command(verbatim_doc_comment)]
    Validate {
        #[command(flatten)]
        repo: RepoArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Also fail (exit 1) on REQUIRE_APPROVAL and REQUIRE_EXCEPTION.
        #[arg(long)]
        strict: bool,
        /// Judge application scope changes against this base revision.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        /// The daemon's state directory: judge with its runtime facts
        /// (versions rolled back, changes in flight), as the daemon and the
        /// PR checks it runs do. Read only.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
    },
    /// Show what one intent would do: decision, risk factors, rules fired,
    /// scope diff, blast radius per ring and plane, and the ring timeline.
    ///
    /// Example: ringmaster plan sample-repo vpn-6.2.1-finance --base HEAD~1
    Plan {
        /// The governed repository (a Git repository or a folder inside one).
        repo: PathBuf,
        /// The intent id (its file is intents/<id>.yaml).
        intent: String,
        /// Revision to read.
        #[arg(long, default_value = "HEAD", conflicts_with = "worktree")]
        rev: String,
        /// Read the working directory instead of a revision.
        #[arg(long)]
        worktree: bool,
        /// Compare scopes with this base revision (e.g. main, HEAD~1).
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        /// Evaluate as of this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// Output format (human or json).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Print the policy input document instead (for writing tenant Rego).
        #[arg(long)]
        input: bool,
    },
    /// Create a new governed repository from the built-in sample and commit it.
    ///
    /// Example: ringmaster init contoso-deployments
    Init {
        /// Directory to create (must not exist or be empty).
        dir: PathBuf,
    },
    /// Write a synthetic governed repository of N valid intents (with the
    /// applications, principals and entitlements they need), committed, for
    /// trying ringmaster at scale and for benchmarks.
    ///
    /// Example: ringmaster generate /tmp/big --intents 10000
    Generate {
        /// Directory to create (must not exist or be empty).
        dir: PathBuf,
        /// How many intents.
        #[arg(long, default_value_t = 1000)]
        intents: usize,
    },
    /// Run the daemon: watch the repository, judge every new commit on the
    /// tracked branch, sign an evidence pack for each changed decision and
    /// commit it to the evidence branch, and record events in the state store.
    ///
    /// Settings come from defaults < --config FILE (YAML) < RINGMASTER_*
    /// environment < flags. The key's password, if any, is read from
    /// $RINGMASTER_KEY_PASSWORD.
    ///
    /// With --github-repository, pull requests into the tracked branch are
    /// checked (`ringmaster/policy` status or check run, one comment), reviews
    /// count as CAB approvals, and merged commits' evidence carries the PR and
    /// its reviews; --listen serves /healthz and /webhooks/github. Secrets come
    /// from files (--github-token-file, ...) or $RINGMASTER_GITHUB_TOKEN and
    /// $RINGMASTER_GITHUB_WEBHOOK_SECRET. See docs/github.md.
    ///
    /// Every plane ringmaster.yaml lists needs a connector under planes: in the
    /// config file (`jamf: {type: sim}` runs one on the simulated fleet, marked
    /// plane_mode: simulated everywhere); serve refuses to start without.
    ///
    /// Examples:
    ///   ringmaster serve --repo ./contoso --state /var/lib/ringmaster --key keys/ringmaster.key --config daemon.yaml
    ///   ringmaster serve --repo https://git.example/contoso.git --state st --key k --config daemon.yaml --once
    ///   ringmaster serve --repo https://github.com/contoso/tenant.git --state st --key k --config daemon.yaml \
    ///     --listen 0.0.0.0:8080 --github-repository contoso/tenant --github-app-id 12345 \
    ///     --github-installation-id 678 --github-app-key-file app.pem \
    ///     --github-webhook-secret-file webhook.secret
    #[command(verbatim_doc_comment)]
    Serve {
        /// Governed repository: a local path (watched) or a URL (mirrored and fetched).
        #[arg(long)]
        repo: Option<String>,
        /// State directory: the SQLite store, the mirror of a remote repository.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Minisign secret key that signs evidence (from `ringmaster keygen`).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Tracked branch [default: main].
        #[arg(long)]
        branch: Option<String>,
        /// Branch evidence records are committed to [default: evidence].
        #[arg(long)]
        evidence_branch: Option<String>,
        /// Seconds between polls (the safety net behind watching) [default: 30].
        #[arg(long)]
        poll_seconds: Option<u64>,
        /// Seconds a replica's lead of a shared (PostgreSQL) store lasts
        /// without renewal; renewed at a third of it [default: 15].
        #[arg(long)]
        leader_lease_seconds: Option<u64>,
        /// Where SIEM JSON lines go: `stdout`, `off` or a file [default: off].
        #[arg(long)]
        siem: Option<String>,
        /// Daemon config file (YAML with the same settings as the flags).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Process everything pending, then exit (for CI jobs and tests).
        #[arg(long)]
        once: bool,
        /// With --once: take this instant (RFC 3339) as the time of the
        /// step instead of the clock (replays and crash tests step a daemon
        /// through a rollout's days).
        #[arg(long, value_name = "RFC3339", requires = "once")]
        now: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        forge: Box<daemon::ForgeArgs>,
    },
    /// The whole story on the sample tenant, in under a minute.
    ///
    /// Makes a temporary Git repository from the built-in sample and a
    /// temporary key, and runs the daemon on the simulated fleet with an
    /// accelerated clock: an ALLOW intent rolls to Global, a REQUIRE_APPROVAL
    /// intent waits for a CAB approval commit, a bad version fails its Canary
    /// gate and rolls back, drift is detected and remediated, and the
    /// evidence branch verifies. Exits 1 if any step of the story did not happen.
    ///
    /// With --planes simulators the same story runs through the real
    /// connectors: each plane's HTTP simulator on 127.0.0.1 (Graph,
    /// AdminService, ...) and the real ansible-playbook on local hosts.
    ///
    /// Examples:
    ///   ringmaster demo
    ///   ringmaster demo --planes simulators --keep /tmp/demo
    #[command(verbatim_doc_comment)]
    Demo {
        /// Print one JSON report instead of the live view.
        #[arg(long)]
        json: bool,
        /// Seed of the simulated fleet.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Keep the demo's repository, keys and state in this directory.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// What the connectors talk to.
        #[arg(long, value_enum, default_value_t = crate::demo::DemoPlanes::Fleet)]
        planes: crate::demo::DemoPlanes,
    },
    /// Run one plane's API simulator as a server, to point a real daemon at.
    ///
    /// Serves the plane's documented API (paths, bodies, paging, throttling,
    /// errors) with its groups taken from a governed repository's
    /// entitlements, prints the `planes:` entry for the daemon's config, and
    /// makes the targeted devices report every --check-in-seconds on the wall
    /// clock. Stops on Ctrl-C.
    ///
    /// Examples:
    ///   ringmaster simulate intune --listen 127.0.0.1:8443
    ///   ringmaster simulate sccm --repo ./contoso --success-rate 0.9
    ///   ringmaster serve --repo ./contoso --state ./state --key k --config daemon.yaml
    #[command(verbatim_doc_comment)]
    Simulate {
        /// The plane whose API to serve.
        #[arg(value_enum)]
        plane: crate::planes::simulators::SimulatedPlane,
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Governed repository whose entitlements give the groups and device
        /// counts [default: the built-in sample tenant].
        #[arg(long)]
        repo: Option<PathBuf>,
        /// File holding the client secret the simulator accepts; created with
        /// a random secret if missing [default: <plane>-<port>.secret in
        /// ringmaster-simulate-<uid> under the temp directory, a directory
        /// only you can read; refused if anyone else owns or can open it].
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Seconds between device check-ins (0: devices never report).
        #[arg(long, default_value_t = 30)]
        check_in_seconds: u64,
        /// Share of installs that succeed when devices check in.
        #[arg(long, default_value_t = 0.98)]
        success_rate: f64,
    },
    /// Create a minisign key pair for signing evidence.
    ///
    /// Writes DIR/ringmaster.key (mode 0600) and DIR/ringmaster.pub. With
    /// $RINGMASTER_KEY_PASSWORD set, the secret key is encrypted with it.
    Keygen {
        /// Directory to write the key pair into.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing key pair.
        #[arg(long)]
        force: bool,
    },
    /// Verify the evidence branch: every signature, the hash chain, the
    /// sequence, and that history only ever added records.
    ///
    /// Exit 0 when everything holds; 1 and the first broken record otherwise.
    /// With --state, also checks that the branch still holds the last record
    /// the daemon wrote (a force-push that dropped records is caught), and
    /// the state store's event log like the branch: the whole hash chain, its
    /// append-only triggers, and the event the last evidence pack anchors
    /// (a truncated, emptied or rewritten log fails). A missing or empty
    /// state directory is an error (exit 2) and is never created.
    ///
    /// With --object-store (or --object-store-config), also checks the WORM
    /// bucket against the branch both ways: every record in the bucket with
    /// the same bytes and a lock at least as long as required, and nothing
    /// in the bucket that the branch lacks. Credentials come from
    /// --object-store-credentials or $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY.
    ///
    /// Examples:
    ///   ringmaster verify . --public-key ringmaster.pub
    ///   ringmaster verify . --public-key ringmaster.pub --object-store-config daemon.yaml
    ///   ringmaster verify . --public-key ringmaster.pub \
    ///     --object-store https://s3.eu-central-1.amazonaws.com/contoso-evidence \
    ///     --region eu-central-1 --retention-days 2557 --lock-mode compliance
    #[command(verbatim_doc_comment)]
    Verify {
        /// The governed repository holding the evidence branch.
        #[arg(default_value = ".")]
        repo: PathBuf,
        /// The public key (ringmaster.pub) evidence must be signed with.
        #[arg(long)]
        public_key: PathBuf,
        /// The evidence branch.
        #[arg(long, default_value = "evidence")]
        branch: String,
        /// The daemon's state directory, to compare with the last record it wrote.
        #[arg(long)]
        state: Option<PathBuf>,
        #[command(flatten)]
        object_store: Box<daemon::ObjectStoreArgs>,
    },
    /// Every intent's rollout: state, each ring's progress and gate figures.
    ///
    /// Locally (`--state`) or through the API (`--server URL --token-file F`).
    Status {
        /// The daemon's state directory (local mode: whoever can write it is an admin).
        #[arg(long, required_unless_present = "server", conflicts_with = "server")]
        state: Option<PathBuf>,
        #[command(flatten)]
        server: remote::ServerArgs,
        /// Output format (human or json).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Redraw a live view (a progress bar per ring) until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Stop after this many frames (for scripts and tests).
        #[arg(long, hide = true)]
        frames: Option<u64>,
    },
    /// Hold an intent's rollout before its next ring (recorded as an event and evidence).
    Hold(OperatorArgs),
    /// Resume a held intent (re-evaluates its gate).
    Resume(OperatorArgs),
    /// Roll an intent back by its rollback plan.
    Rollback(OperatorArgs),
    /// Show the audit trail from the state store, and check its hash chain.
    ///
    /// Exits 1 when the chain is broken (whatever the format).
    Events {
        /// The daemon's state directory (or use --server).
        #[arg(long, required_unless_present = "server", conflicts_with = "server")]
        state: Option<PathBuf>,
        #[command(flatten)]
        server: remote::ServerArgs,
        /// Only this intent's events.
        #[arg(long, conflicts_with = "correlation_id")]
        intent: Option<String>,
        /// Only events with this correlation id.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Output format (human or json).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Make the state store again from the evidence branch and the planes.
    ///
    /// Verifies the evidence branch first (a tampered branch is refused,
    /// exit 1), then writes every intent's verdict and rollout (ring
    /// progress, rolled-back versions), the rings held, the evidence
    /// journal, the processed commits and the evidence head, and asks each
    /// plane of --config about the rings being started, so that the daemon
    /// afterwards does nothing again that already happened. The store must
    /// be empty (--force moves an existing one aside); --catch-up brings a
    /// store restored from a backup forward instead. The rebuild itself is
    /// a signed record on the evidence branch (--key), which anchors the
    /// new store's event log. The rebuild itself is
    /// a signed record on the evidence branch (--key), anchoring the new
    /// store's event log.
    ///
    /// Examples:
    ///   ringmaster rebuild --repo /srv/governed --state /var/lib/ringmaster \
    ///     --public-key ringmaster.pub --key ringmaster.key --config /etc/ringmaster/daemon.yaml
    ///   ringmaster rebuild --catch-up --repo . --state /var/lib/ringmaster \
    ///     --public-key ringmaster.pub --key ringmaster.key
    #[command(verbatim_doc_comment)]
    Rebuild(rebuild::RebuildArgs),
    /// Copy the state store while the daemon runs (SQLite online backup).
    ///
    /// The copy is one consistent moment of the store; it never overwrites
    /// a file. Restore it with `ringmaster restore`.
    Backup {
        /// The daemon's state directory.
        #[arg(long)]
        state: PathBuf,
        /// The backup file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup of the state store back (the daemon must be stopped).
    ///
    /// Refuses while a daemon holds the state directory; an existing store
    /// is moved aside (--force), never deleted. Then run `verify --state`:
    /// a store behind the evidence branch is brought forward with
    /// `rebuild --catch-up`.
    Restore {
        /// The backup file (from `ringmaster backup`).
        #[arg(long)]
        from: PathBuf,
        /// The daemon's state directory.
        #[arg(long)]
        state: PathBuf,
        /// Move an existing store aside and restore in its place.
        #[arg(long)]
        force: bool,
    },
    /// Print the OpenAPI 3.1 document of the control plane's `/api/v1`
    /// (as served at /api/v1/openapi.json and committed in docs/openapi.json).
    Openapi,
    /// The audit bundle: export evidence an auditor checks with standard tools.
    Evidence {
        #[command(subcommand)]
        command: evidence::EvidenceCommand,
    },
    /// Work with the JSON Schemas of the governed kinds.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Internal: the guarded worker that parses and evaluates tenant Rego
    /// for the judge (`crate::sandbox`); started by ringmaster itself.
    #[command(name = "policy-worker", hide = true)]
    PolicyWorker {
        /// Address space the worker may use, in bytes.
        #[arg(long)]
        memory_limit: u64,
    },
}

/// Arguments of `hold`, `resume` and `rollback`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// The intent id.
    pub intent: String,
    /// Why (goes into the audit trail).
    #[arg(long)]
    pub reason: String,
    /// The daemon's state directory (local mode: whoever can write it is an
    /// admin, and the actor is self-declared).
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub state: Option<PathBuf>,
    /// Who acts [default: $USER] (local mode only: through the API the
    /// actor is the authenticated principal).
    #[arg(long, conflicts_with = "server")]
    pub actor: Option<String>,
    #[command(flatten)]
    pub server: remote::ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write every schema to DIR (for a YAML language server:
    /// `# yaml-language-server: $schema=DIR/deployment-intent.schema.json`).
    Export {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
}

/// Runs a parsed command line with the clock `main` provides.
pub fn run(cli: Cli, clock: crate::daemon::Clock) -> ExitCode {
    let now = clock();
    let store = match cli.store.resolve(&|name| std::env::var(name).ok()) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    *STORE_LOCATION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = store.clone();
    let result = match cli.command {
        Command::Validate {
            repo,
            format,
            strict,
            base,
            state,
        } => validate::run(
            &repo,
            format,
            strict,
            base.as_deref(),
            state.as_deref(),
            now,
        ),
        Command::Plan {
            repo,
            intent,
            rev,
            worktree,
            base,
            now: at,
            format,
            input,
        } => {
            let repo = RepoArgs {
                repo,
                rev,
                worktree,
                now: at,
            };
            plan::run(&repo, &intent, base.as_deref(), format, input, now)
        }
        Command::Init { dir } => init::run(&dir),
        Command::Serve {
            repo,
            state,
            key,
            branch,
            evidence_branch,
            poll_seconds,
            leader_lease_seconds,
            siem,
            config,
            once,
            now,
            forge,
        } => {
            let clock = match now {
                Some(at) => std::sync::Arc::new(move || at) as crate::daemon::Clock,
                None => clock,
            };
            let flags = crate::daemon::config::RawConfig {
                repo,
                state,
                key,
                branch,
                evidence_branch,
                poll_seconds,
                leader_lease_seconds,
                siem,
                evidence_remote: None,
                store: store.clone(),
                ..(*forge).into_raw_config()
            };
            daemon::serve(flags, config.as_deref(), once, clock)
        }
        Command::Keygen { out, force } => daemon::keygen(&out, force),
        Command::Demo {
            json,
            seed,
            keep,
            planes,
        } => demo::run(json, seed, keep, planes),
        Command::Simulate {
            plane,
            listen,
            repo,
            secret_file,
            check_in_seconds,
            success_rate,
        } => simulate::run(simulate::SimulateArgs {
            plane,
            listen,
            repo,
            secret_file,
            check_in_seconds,
            success_rate,
        }),
        Command::Status {
            state: Some(state),
            watch: true,
            interval,
            frames,
            ..
        } => watch::watch(
            &state,
            std::time::Duration::from_secs_f64(interval.clamp(0.0, 3600.0)),
            frames,
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Status {
            state: Some(state),
            format,
            ..
        } => status::status(&state, format),
        Command::Status { server, format, .. } => remote::status(&server, format),
        Command::Hold(args) => operator(args, "hold", now),
        Command::Resume(args) => operator(args, "resume", now),
        Command::Rollback(args) => operator(args, "rollback", now),
        Command::Verify {
            repo,
            public_key,
            branch,
            state,
            object_store,
        } => daemon::verify(&repo, &public_key, &branch, state.as_ref(), &object_store),
        Command::Events {
            state: Some(state),
            intent,
            correlation_id,
            format,
            ..
        } => daemon::events(&state, intent, correlation_id, format),
        Command::Events {
            server,
            intent,
            correlation_id,
            format,
            ..
        } => remote::events(&server, intent, correlation_id, format),
        Command::Generate { dir, intents } => init::generate(&dir, intents),
        Command::Schema {
            command: SchemaCommand::Export { dir },
        } => schema_export(&dir),
        Command::Evidence { command } => evidence::run(command, now),
        Command::Rebuild(args) => rebuild::rebuild(args, now),
        Command::Backup { state, out } => backup::backup(&state, &out),
        Command::Restore { from, state, force } => backup::restore(&from, &state, force, now),
        Command::Openapi => {
            print!("{}", crate::api::v1::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::PolicyWorker { memory_limit } => {
            let status = crate::sandbox::worker::run(memory_limit);
            Ok(ExitCode::from(u8::try_from(status).unwrap_or(2)))
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // Errors may quote repository values (ids, paths): one line, escaped.
            eprintln!("error: {}", crate::escape::terminal(&format!("{error:#}")));
            ExitCode::from(2)
        }
    }
}

/// `hold|resume|rollback`: locally or through the API.
fn operator(
    args: OperatorArgs,
    action: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ExitCode> {
    match &args.state {
        Some(state) => status::operator(state, &args.intent, action, &args.reason, args.actor, now),
        None => remote::operator(&args.server, &args.intent, action, &args.reason),
    }
}

fn schema_export(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for entry in crate::schema::KIND_SCHEMAS {
        let path = dir.join(entry.file_name);
        std::fs::write(&path, entry.source).with_context(|| format!("write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
