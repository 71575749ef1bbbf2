//! `evidence export` and `evidence verify-bundle`: the audit bundle.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};

use crate::evidence::bundle::{BundleFilter, ExportOptions, export_bundle, verify_bundle};
use crate::evidence::{EvidenceBranch, VerifyingKey};
use crate::source::GovernedRepo;
use crate::store::{EventOutcome, EventType, NewEvent, Store};

#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCommand {
    /// Write an audit bundle: the selected packs and signatures, the public
    /// key and its fingerprint, a manifest with every file's SHA-256, the Git
    /// commits they came from, the event-store extract of the period with its
    /// hash-chain anchors, and VERIFY.md with the commands that check it
    /// using only minisign, sha256sum and jq.
    ///
    /// A filtered bundle still verifies end to end: records the filter
    /// leaves out between the first and last exported are listed by their
    /// hashes. The export is recorded (an `evidence_exported` event with
    /// --state, a SIEM line with --siem).
    ///
    /// Examples:
    ///   ringmaster evidence export --public-key keys/ringmaster.pub --out audit.tar.gz
    ///   ringmaster evidence export --public-key k.pub --state /var/lib/ringmaster \
    ///     --since 2026-01-01 --until 2026-03-31 --business-unit bu-finance --out q1-finance.tar.gz
    #[command(verbatim_doc_comment)]
    Export {
        /// The governed repository holding the evidence branch.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Where to write the bundle (.tar.gz).
        #[arg(long)]
        out: PathBuf,
        /// The public key the evidence is signed with (copied into the bundle).
        #[arg(long)]
        public_key: PathBuf,
        /// The evidence branch.
        #[arg(long, default_value = "evidence")]
        branch: String,
        /// Records created at or after (RFC 3339, or YYYY-MM-DD for the day's start, UTC).
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Records created at or before (RFC 3339, or YYYY-MM-DD for the whole day, UTC).
        #[arg(long, value_parser = parse_until)]
        until: Option<DateTime<Utc>>,
        /// Only this intent's records.
        #[arg(long)]
        intent: Option<String>,
        /// Only records about intents targeting this business unit.
        #[arg(long)]
        business_unit: Option<String>,
        /// The daemon's state directory: adds the event-store extract and
        /// records the export as an event.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Who exports [default: $USER].
        #[arg(long)]
        actor: Option<String>,
        /// Where the SIEM line about the export goes: `stdout` or a file.
        #[arg(long)]
        siem: Option<String>,
    },
    /// Check an audit bundle: every file against the manifest, every
    /// signature with YOUR copy of the public key, the hash chain, the
    /// commits' trailers and the event extract. Exit 0 when it holds, 1
    /// with every finding otherwise.
    ///
    /// Example: ringmaster evidence verify-bundle audit.tar.gz --public-key ringmaster.pub
    VerifyBundle {
        /// The bundle (.tar.gz).
        bundle: PathBuf,
        /// The public key the evidence must be signed with.
        #[arg(long)]
        public_key: PathBuf,
    },
}

fn parse_date(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    let time = if end_of_day {
        day.and_hms_nano_opt(23, 59, 59, 999_999_999)
    } else {
        day.and_hms_opt(0, 0, 0)
    };
    time.map(|time| time.and_utc())
        .ok_or_else(|| format!("{text:?} is not a valid date"))
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    parse_date(text, false)
}

fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    parse_date(text, true)
}

pub(super) fn run(command: EvidenceCommand, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    match command {
        EvidenceCommand::Export {
            repo,
            out,
            public_key,
            branch,
            since,
            until,
            intent,
            business_unit,
            state,
            actor,
            siem,
        } => {
            let filter = BundleFilter {
                since,
                until,
                intent,
                business_unit,
            };
            let actor = actor
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            export(
                &repo,
                &out,
                &public_key,
                &branch,
                filter,
                state.as_deref(),
                &actor,
                siem.as_deref(),
                now,
            )
        }
        EvidenceCommand::VerifyBundle { bundle, public_key } => {
            let key = VerifyingKey::load(&public_key)?;
            let report = verify_bundle(&bundle, &key)?;
            println!("{report}");
            Ok(ExitCode::from(if report.ok() { 0 } else { 1 }))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn export(
    repo: &Path,
    out: &Path,
    public_key: &Path,
    branch: &str,
    filter: BundleFilter,
    state: Option<&Path>,
    actor: &str,
    siem: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let governed = GovernedRepo::open(repo)?;
    let evidence = EvidenceBranch::open(governed.repository.path(), branch)?;
    let mut store = match state {
        Some(dir) => match super::store_location(dir) {
            crate::store::StoreLocation::Sqlite(database) => {
                anyhow::ensure!(
                    database.exists(),
                    "{} does not exist; pass the --state directory the daemon uses",
                    database.display()
                );
                Some(Store::open(&database)?)
            }
            location => Some(Store::open_existing_location(&location)?),
        },
        None => None,
    };
    let options = ExportOptions {
        filter: filter.clone(),
        exported_by: actor.to_owned(),
        exported_at: now,
        public_key,
        store: store.as_ref(),
    };
    let show_progress = std::io::stderr().is_terminal();
    let mut progress = |step: crate::evidence::bundle::ExportProgress| {
        if show_progress {
            eprint!(
                "\rexporting evidence: {}/{} records",
                step.records_written, step.records_total
            );
            if step.records_written == step.records_total {
                eprintln!();
            }
        }
    };
    let summary = export_bundle(&evidence, &options, out, &mut progress)
        .with_context(|| format!("export to {}", out.display()))?;
    let details = serde_json::json!({
        "bundle": out.display().to_string(),
        "bundle_sha256": summary.sha256,
        "records": summary.records,
        "first_sequence": summary.first_sequence,
        "last_sequence": summary.last_sequence,
        "omitted_in_chain": summary.omitted_in_chain,
        "events": summary.events,
        "filter": filter,
        "branch": branch,
    });
    if let Some(store) = store.as_mut() {
        store.append_event(NewEvent {
            correlation_id: format!("evidence-export:{}", summary.sha256),
            intent_id: filter.intent.clone(),
            event_type: EventType::EvidenceExported,
            timestamp: now,
            actor: actor.to_owned(),
            actor_role: "auditor".into(),
            execution_plane: None,
            ring: None,
            outcome: EventOutcome::Success,
            details: details.clone(),
        })?;
    }
    if let Some(sink) = siem {
        let sink = match sink {
            "stdout" | "-" => crate::daemon::config::SiemSink::Stdout,
            "off" => crate::daemon::config::SiemSink::Off,
            path => crate::daemon::config::SiemSink::File(PathBuf::from(path)),
        };
        crate::daemon::siem::Siem::new(sink).emit(&serde_json::json!({
            "type": "evidence_exported",
            "actor": actor,
            "at": now,
            "details": details,
        }));
    }
    println!(
        "wrote {}: {} record(s){}, {} event(s), {} bytes, sha256 {}",
        out.display(),
        summary.records,
        match (summary.first_sequence, summary.last_sequence) {
            (Some(first), Some(last)) => format!(
                " (#{first}..#{last}, {} left out by the filter)",
                summary.omitted_in_chain
            ),
            _ => String::new(),
        },
        summary.events,
        summary.bytes,
        summary.sha256
    );
    if store.is_none() {
        eprintln!(
            "note: without --state the bundle has no event-store extract and the export is not recorded as an event"
        );
    }
    Ok(ExitCode::SUCCESS)
}
