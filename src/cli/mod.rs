//! The command line: argument parsing and one function per command.
//!
//! Commands print for people by default and for machines with `--format json`.
//! Exit codes: 0 success, 1 the repository (or evidence) is not acceptable,
//! 2 usage or I/O failure.

mod init;
mod output;
mod plan;
mod validate;

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
/// Start with `ringmaster init my-tenant && ringmaster validate my-tenant`.
#[derive(Debug, Parser)]
#[command(name = "ringmaster", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// Work with the JSON Schemas of the governed kinds.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
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

/// Runs a parsed command line; `now` is the wall clock, read once by `main`.
pub fn run(cli: Cli, now: chrono::DateTime<chrono::Utc>) -> ExitCode {
    let result = match cli.command {
        Command::Validate {
            repo,
            format,
            strict,
            base,
        } => validate::run(&repo, format, strict, base.as_deref(), now),
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
        Command::Generate { dir, intents } => init::generate(&dir, intents),
        Command::Schema {
            command: SchemaCommand::Export { dir },
        } => schema_export(&dir),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
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
