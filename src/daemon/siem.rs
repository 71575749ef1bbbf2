//! The SIEM sink: privileged actions and policy violations as JSON lines.
//!
//! One line per record, appended and flushed at once, so a SIEM agent
//! tailing the file (or reading stdout) sees each as it happens.

use super::config::SiemSink;
use serde_json::Value;
use std::io::Write as _;

pub struct Siem {
    sink: SiemSink,
}

impl Siem {
    pub fn new(sink: SiemSink) -> Siem {
        Siem { sink }
    }

    /// Writes one record; a failing sink is logged, never fatal.
    pub fn emit(&mut self, record: &Value) {
        let line = format!("{record}\n");
        let result = match &self.sink {
            SiemSink::Off => Ok(()),
            SiemSink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(line.as_bytes())
                    .and_then(|()| stdout.flush())
            }
            SiemSink::File(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| {
                    file.write_all(line.as_bytes())
                        .and_then(|()| file.sync_data())
                }),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "SIEM sink write failed");
        }
    }
}
