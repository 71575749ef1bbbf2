//! The sample governed repository, embedded at build time from `sample-repo/`.
//!
//! `ringmaster init` writes it out as a new governed repository; the demo and
//! many tests start from it.

include!(concat!(env!("OUT_DIR"), "/sample_repo.rs"));

use std::path::Path;

/// Writes the sample repository's files below `dir` (which must be empty or absent).
pub fn write_to(dir: &Path) -> std::io::Result<usize> {
    for (relative, bytes) in SAMPLE_REPO {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    Ok(SAMPLE_REPO.len())
}
