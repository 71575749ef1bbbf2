//! `persist`: the sim fleet in a file, so a daemon that restarts (or is killed)
//! finds the same plane it left, as it would a real one.
//!
//! The file is a snapshot and a journal (issue 17: one change costs O(change),
//! not O(fleet)): its first line is the whole fleet (`{"format_version": 2,
//! "fleet": …}`), every later line one [`Change`] made since, appended and
//! flushed to disk (`fdatasync`) before the call that made it is answered.
//! Reading replays the changes on the snapshot through the same code the
//! live calls ran ([`super::SimConnector`]'s `apply`), so the replayed fleet is
//! the fleet that answered: every draw comes from the seed.
//!
//! Compaction: once the journal outgrows the snapshot (and 1 MiB), the whole
//! fleet is written again as a new snapshot with an empty journal — to a
//! temporary file beside the target, flushed, then renamed over it, so a
//! crash mid-write leaves the previous file whole. Each byte of the journal
//! is thus rewritten a bounded number of times: amortised O(change).
//!
//! A crash mid-append leaves a last line without its newline: that change
//! was never answered, and reading ignores it (the next append starts a
//! fresh line). Any other line that does not read is an error naming the
//! file and line. A file of format 1 (the whole fleet, no journal) still
//! reads.
//!
//! Several processes may hold the same file (tests change the plane between
//! daemon runs; replicas of a shared store): every append goes to the file
//! as it is now (reopened when another process compacted it), and a process
//! compacts only when no other one appended since its own last write.

use super::SimError;
use super::fleet::SimFleet;
use super::injection::{Drift, Fault};
use crate::planes::{PublishRequest, Remediation};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped when the file's shape changes incompatibly.
const FORMAT_VERSION: u32 = 2;
/// The whole-file format, still read.
const FORMAT_WHOLE: u32 = 1;
/// The journal is compacted once it is larger than the snapshot and this.
const MIN_COMPACT_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct StateFile<Fleet> {
    format_version: u32,
    fleet: Fleet,
}

/// One change to the fleet, as the journal holds it: what was asked, not
/// what it did (replaying it does it again, identically).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Groups registered or resized.
    Groups {
        groups: Vec<(String, u32)>,
    },
    SuccessRate {
        application_id: String,
        version: String,
        rate: f64,
    },
    /// A fault queued for the next call (`only`: of that operation).
    Fault {
        fault: Fault,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only: Option<String>,
    },
    Drift {
        correlation_id: String,
        drift: Drift,
        now: DateTime<Utc>,
    },
    Outage {
        fault: Option<Fault>,
    },
    /// A connector call that changed the plane or used a fault; `calls` and
    /// `publish_calls` are the counters after it (calls that changed
    /// nothing, never journalled, are counted in them).
    Call {
        call: Call,
        calls: u64,
        publish_calls: u64,
    },
}

/// A connector call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Call {
    Publish {
        request: Box<PublishRequest>,
        now: DateTime<Utc>,
    },
    QueryStatus {
        correlation_id: String,
        now: DateTime<Utc>,
    },
    Remediate {
        correlation_id: String,
        remediation: Remediation,
        now: DateTime<Utc>,
    },
    VerifyIdempotency {
        correlation_id: String,
    },
}

impl Call {
    pub fn operation(&self) -> &'static str {
        match self {
            Call::Publish { .. } => "publish",
            Call::QueryStatus { .. } => "query_status",
            Call::Remediate { .. } => "remediate",
            Call::VerifyIdempotency { .. } => "verify_idempotency",
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::StateFile {
        path: path.to_path_buf(),
        source,
    }
}

fn format_error(path: &Path) -> impl FnOnce(serde_json::Error) -> SimError + '_ {
    move |source| SimError::StateFormat {
        path: path.to_path_buf(),
        source,
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The journal of one state file, as this process writes it.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// The file's length after this process's last write.
    length: u64,
    /// The snapshot line's length (with its newline).
    snapshot_length: u64,
    /// Whether the file ends with a complete line (as this process left it).
    clean: bool,
}

impl Journal {
    /// Appends `change` and flushes it to disk; compacts the file (from
    /// `fleet`, which has the change applied) when the journal outgrew the
    /// snapshot and no other process appended since this one last wrote.
    pub fn append(&mut self, change: &Change, fleet: &SimFleet) -> Result<(), SimError> {
        let mut line = serde_json::to_vec(change).map_err(format_error(&self.path))?;
        line.push(b'\n');
        let on_disk = fs::metadata(&self.path).map_err(io_error(&self.path))?;
        let ours = self.file.metadata().map_err(io_error(&self.path))?;
        let same = same_file(&on_disk, &ours);
        let alone = same && on_disk.len() == self.length;
        if !same {
            // Another process compacted the file: append to the new one.
            self.file = open_append(&self.path)?;
        }
        if !alone || !self.clean {
            // A torn last line (a crash mid-append) was never answered: it
            // is cut off before the change is appended.
            self.cut_torn_line()?;
        }
        self.file.write_all(&line).map_err(io_error(&self.path))?;
        self.file.sync_data().map_err(io_error(&self.path))?;
        self.length = self.file.metadata().map_err(io_error(&self.path))?.len();
        self.clean = true;
        let journal = self.length.saturating_sub(self.snapshot_length);
        if alone && journal > self.snapshot_length.max(MIN_COMPACT_BYTES) {
            *self = write(&self.path, fleet)?;
        }
        Ok(())
    }

    /// Cuts the file after its last complete line (only ever a torn append
    /// or, in a format 1 file, nothing: the snapshot gets its newline).
    fn cut_torn_line(&mut self) -> Result<(), SimError> {
        let bytes = fs::read(&self.path).map_err(io_error(&self.path))?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(());
        }
        match bytes.iter().rposition(|&byte| byte == b'\n') {
            Some(end) => self
                .file
                .set_len(end as u64 + 1)
                .map_err(io_error(&self.path)),
            // One line without its newline: a format 1 snapshot.
            None => self.file.write_all(b"\n").map_err(io_error(&self.path)),
        }
    }
}

#[cfg(unix)]
fn same_file(first: &fs::Metadata, second: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    first.ino() == second.ino() && first.dev() == second.dev()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    true
}

fn open_append(path: &Path) -> Result<File, SimError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_error(path))
}

/// Writes `fleet` as the file's snapshot with an empty journal (replacing
/// the file whole) and answers the journal to append to.
pub fn write(path: &Path, fleet: &SimFleet) -> Result<Journal, SimError> {
    // Streamed to the file, not built in memory first: a fleet of many
    // devices is a large snapshot (the bench's first start at 10,000
    // intents held it whole, twice, at each compaction).
    let temporary = temporary_path(path);
    let file = File::create(&temporary).map_err(io_error(&temporary))?;
    let mut writer = std::io::BufWriter::with_capacity(
        1 << 16,
        Counting {
            inner: file,
            written: 0,
        },
    );
    serde_json::to_writer(
        &mut writer,
        &StateFile {
            format_version: FORMAT_VERSION,
            fleet,
        },
    )
    .map_err(|error| match error.is_io() {
        true => io_error(&temporary)(error.into()),
        false => format_error(path)(error),
    })?;
    writer.write_all(b"\n").map_err(io_error(&temporary))?;
    let counting = writer
        .into_inner()
        .map_err(|error| error.into_error())
        .map_err(io_error(&temporary))?;
    let length = counting.written;
    let file = counting.inner;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error(path))?;
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(io_error(directory))?;
    }
    Ok(Journal {
        path: path.to_path_buf(),
        file: open_append(path)?,
        length,
        snapshot_length: length,
        clean: true,
    })
}

/// A writer that counts the bytes it passed on.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the snapshot and replays the journal with `apply`; answers the
/// fleet and the journal to append to.
pub fn read(
    path: &Path,
    apply: impl Fn(&mut SimFleet, Change) -> Result<(), SimError>,
) -> Result<(SimFleet, Journal), SimError> {
    let file = open_append(path)?;
    let bytes = fs::read(path).map_err(io_error(path))?;
    let (first, rest) = match bytes.iter().position(|&byte| byte == b'\n') {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (&bytes[..], &[][..]),
    };
    let snapshot_length = (first.len() + usize::from(first.len() < bytes.len())) as u64;
    let state: StateFile<SimFleet> = serde_json::from_slice(first).map_err(format_error(path))?;
    if state.format_version != FORMAT_VERSION && state.format_version != FORMAT_WHOLE {
        return Err(SimError::InvalidConfig(format!(
            "sim state file {} has format version {}, this build reads {FORMAT_VERSION}",
            path.display(),
            state.format_version
        )));
    }
    let mut fleet = state.fleet;
    fleet.share_texts();
    let mut lines = rest.split(|&byte| byte == b'\n').peekable();
    let mut number = 1;
    while let Some(line) = lines.next() {
        number += 1;
        let last = lines.peek().is_none();
        if last {
            // Empty after the final newline, or a torn append: never answered.
            break;
        }
        if line.is_empty() {
            continue;
        }
        let change: Change = serde_json::from_slice(line).map_err(|source| {
            SimError::InvalidConfig(format!(
                "sim state file {}:{number}: not a journalled change: {source}",
                path.display()
            ))
        })?;
        apply(&mut fleet, change)?;
    }
    Ok((
        fleet,
        Journal {
            path: path.to_path_buf(),
            file,
            length: bytes.len() as u64,
            snapshot_length,
            clean: bytes.ends_with(b"\n"),
        },
    ))
}
