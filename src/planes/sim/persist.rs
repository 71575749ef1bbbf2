//! `persist`: the sim fleet in a JSON file, so a daemon that restarts (or is killed)
//! finds the same plane it left, as it would a real one.
//!
//! Writes go to a temporary file beside the target, are flushed to disk, then
//! renamed over it: a crash mid-write leaves the previous state whole.

use super::SimError;
use super::fleet::SimFleet;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped when the file's shape changes incompatibly.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile<Fleet> {
    format_version: u32,
    fleet: Fleet,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::StateFile {
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

pub fn write(path: &Path, fleet: &SimFleet) -> Result<(), SimError> {
    let bytes = serde_json::to_vec(&StateFile {
        format_version: FORMAT_VERSION,
        fleet,
    })
    .map_err(|source| SimError::StateFormat {
        path: path.to_path_buf(),
        source,
    })?;
    let temporary = temporary_path(path);
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(&bytes).map_err(io_error(&temporary))?;
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
    Ok(())
}

pub fn read(path: &Path) -> Result<SimFleet, SimError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let state: StateFile<SimFleet> =
        serde_json::from_slice(&bytes).map_err(|source| SimError::StateFormat {
            path: path.to_path_buf(),
            source,
        })?;
    if state.format_version != FORMAT_VERSION {
        return Err(SimError::InvalidConfig(format!(
            "sim state file {} has format version {}, this build reads {FORMAT_VERSION}",
            path.display(),
            state.format_version
        )));
    }
    Ok(state.fleet)
}
