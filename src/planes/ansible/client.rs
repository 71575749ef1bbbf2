//! `client`: runs the real `ansible-playbook` and reads what it reports.
//!
//! Each run gets a folder `<work dir>/runs/<name>/` named by the caller from the
//! correlation id, the ring and the action. The folder holds the generated
//! inventory, the playbooks and the JSON callback as they were used, the
//! callback's output (`result.json`) and the exit code (`rc`). A run whose
//! `result.json` exists is finished: asking for it again reads the earlier result
//! instead of running again, which is what makes a retried publish idempotent.
//! Check-mode runs (`--check --diff`, for drift) are reads and always run fresh.

use crate::planes::{ConnectorError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const INSTALL: &str = include_str!("playbooks/install.yml");
const UNINSTALL: &str = include_str!("playbooks/uninstall.yml");
const VERIFY: &str = include_str!("playbooks/verify.yml");
const JSON_CALLBACK: &str = include_str!("playbooks/json.py");

/// Which shipped playbook a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playbook {
    Install,
    Uninstall,
    Verify,
}

impl Playbook {
    pub fn file_name(self) -> &'static str {
        match self {
            Playbook::Install => "install.yml",
            Playbook::Uninstall => "uninstall.yml",
            Playbook::Verify => "verify.yml",
        }
    }

    fn shipped(self) -> &'static str {
        match self {
            Playbook::Install => INSTALL,
            Playbook::Uninstall => UNINSTALL,
            Playbook::Verify => VERIFY,
        }
    }
}

/// What one host did in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostOutcome {
    Ok {
        changed: bool,
    },
    /// A task failed; `reason` is the failing task's message as an identifier.
    Failed {
        reason: String,
    },
    Unreachable,
}

/// The parsed result of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    pub hosts: BTreeMap<String, HostOutcome>,
    /// False when the run was found finished in its folder and not run again.
    pub ran: bool,
}

/// One run to make.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run folder's name: correlation id, ring and action.
    pub name: String,
    pub playbook: Playbook,
    /// Inventory group → hosts, as the run sees it.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Extra variables (`ringmaster_app`, `ringmaster_version`, ...).
    pub variables: BTreeMap<String, String>,
    /// `--check --diff`: report what would change, change nothing, never cached.
    pub check: bool,
}

/// Runs `ansible-playbook` with the project's playbooks (or an override).
#[derive(Debug, Clone)]
pub struct PlaybookRunner {
    pub program: PathBuf,
    pub playbook_dir: Option<PathBuf>,
    pub runs_dir: PathBuf,
    pub hosts_dir: PathBuf,
    pub timeout: Duration,
}

impl PlaybookRunner {
    /// The state directory of `host`: its "installed software".
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.hosts_dir.join(host)
    }

    /// Runs `spec`, or reads its earlier result when the folder holds one.
    pub async fn run(&self, spec: &RunSpec) -> Result<RunReport, ConnectorError> {
        let folder = self.runs_dir.join(&spec.name);
        let result_file = folder.join("result.json");
        if !spec.check
            && let Ok(text) = tokio::fs::read_to_string(&result_file).await
        {
            let mut report = parse_report(&text)?;
            report.ran = false;
            return Ok(report);
        }
        let io = |what: &str, path: &Path, error: std::io::Error| {
            ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "ansible run {}: cannot {what} {}: {error}",
                    spec.name,
                    path.display()
                ),
            )
        };
        tokio::fs::create_dir_all(folder.join("callback_plugins"))
            .await
            .map_err(|error| io("create", &folder, error))?;
        let inventory = folder.join("inventory.ini");
        tokio::fs::write(&inventory, self.inventory(&spec.groups))
            .await
            .map_err(|error| io("write", &inventory, error))?;
        let playbook = folder.join(spec.playbook.file_name());
        let text = match &self.playbook_dir {
            Some(dir) => {
                let path = dir.join(spec.playbook.file_name());
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|error| io("read the override playbook", &path, error))?
            }
            None => spec.playbook.shipped().to_string(),
        };
        tokio::fs::write(&playbook, text)
            .await
            .map_err(|error| io("write", &playbook, error))?;
        let callback = folder.join("callback_plugins").join("json.py");
        tokio::fs::write(&callback, JSON_CALLBACK)
            .await
            .map_err(|error| io("write", &callback, error))?;
        let variables = serde_json::to_string(&spec.variables).unwrap_or_default();

        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("-i")
            .arg(&inventory)
            .arg("--extra-vars")
            .arg(variables)
            .arg(&playbook)
            .current_dir(&folder)
            .env("ANSIBLE_STDOUT_CALLBACK", "json")
            .env("ANSIBLE_LOAD_CALLBACK_PLUGINS", "1")
            .env("ANSIBLE_CALLBACK_PLUGINS", folder.join("callback_plugins"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_LOCAL_TEMP", folder.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", folder.join("tmp"))
            .env("ANSIBLE_HOME", folder.join("ansible-home"))
            // A backstop for a worker that outlives a stopped run.
            .env(
                "ANSIBLE_TASK_TIMEOUT",
                self.timeout.as_secs().max(1).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if spec.check {
            command.arg("--check").arg("--diff");
        }
        let mut child = command.spawn().map_err(|error| {
            ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "cannot start {} for run {}: {error}; install ansible-core \
                     (`python3 -m pip install ansible-core`) or set ansible_playbook in the config",
                    self.program.display(),
                    spec.name
                ),
            )
        })?;
        let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());
        let finished = tokio::time::timeout(self.timeout, async {
            let (status, stdout, stderr) =
                tokio::join!(child.wait(), read_all(stdout_pipe), read_all(stderr_pipe));
            status.map(|status| std::process::Output {
                status,
                stdout,
                stderr,
            })
        })
        .await;
        let output = match finished {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                return Err(ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("ansible run {}: waiting failed: {error}", spec.name),
                ));
            }
            Err(_) => {
                stop(&mut child).await;
                return Err(ConnectorError::new(
                    ErrorCode::Timeout,
                    format!(
                        "ansible run {} took longer than {:?}; it was stopped and will run again",
                        spec.name, self.timeout
                    ),
                ));
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let code = output.status.code().unwrap_or(-1);
        let report = parse_report(&stdout).map_err(|error| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "ansible run {} exited {code} without a result ({}): {tail}",
                    spec.name, error.message
                ),
            )
        })?;
        let rc_file = folder.join("rc");
        tokio::fs::write(&rc_file, format!("{code}\n"))
            .await
            .map_err(|error| io("write", &rc_file, error))?;
        if !spec.check {
            // Written last, through a rename: a result file means a finished run.
            let partial = folder.join("result.json.partial");
            tokio::fs::write(&partial, &stdout)
                .await
                .map_err(|error| io("write", &partial, error))?;
            tokio::fs::rename(&partial, &result_file)
                .await
                .map_err(|error| io("rename", &partial, error))?;
        }
        Ok(RunReport {
            ran: true,
            ..report
        })
    }

    /// The INI inventory: one group per plane group, every host a local one with
    /// its state directory as a host variable. Local hosts run modules with the
    /// Python that runs Ansible (interpreter discovery can find a broken shim).
    pub fn inventory(&self, groups: &BTreeMap<String, Vec<String>>) -> String {
        let mut text = String::new();
        for (group, hosts) in groups {
            text.push_str(&format!("[{group}]\n"));
            for host in hosts {
                text.push_str(&format!(
                    "{host} ansible_connection=local \
                     ansible_python_interpreter=\"{{{{ ansible_playbook_python }}}}\" \
                     ringmaster_host_dir={}\n",
                    self.host_dir(host).display()
                ));
            }
            text.push('\n');
        }
        text
    }
}

async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buffer = Vec::new();
    if let Some(mut pipe) = pipe {
        // A read error ends the output; the parse then reports what is missing.
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut buffer).await;
    }
    buffer
}

/// Stops a run that overran: SIGTERM first, so `ansible-playbook` stops its
/// forked workers and their modules, then SIGKILL if it has not exited in a
/// few seconds. (Killing only the main process leaves the workers running.)
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Parses the JSON callback's document into per-host outcomes.
pub fn parse_report(stdout: &str) -> Result<RunReport, ConnectorError> {
    let invalid = |why: &str| ConnectorError::new(ErrorCode::InvalidRequest, why.to_string());
    let start = stdout
        .find('{')
        .ok_or_else(|| invalid("no JSON document"))?;
    let document: Value = serde_json::from_str(stdout[start..].trim_end())
        .map_err(|error| invalid(&format!("not the JSON callback's output: {error}")))?;
    let stats = document
        .get("stats")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("no stats"))?;
    let count = |value: &Value, key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut hosts = BTreeMap::new();
    for (host, stat) in stats {
        let outcome = if count(stat, "unreachable") > 0 {
            HostOutcome::Unreachable
        } else if count(stat, "failures") > 0 {
            HostOutcome::Failed {
                reason: failure_reason(&document, host),
            }
        } else {
            HostOutcome::Ok {
                changed: count(stat, "changed") > 0,
            }
        };
        hosts.insert(host.clone(), outcome);
    }
    Ok(RunReport { hosts, ran: true })
}

/// The message of the host's failed task, as a lowercase identifier
/// (`disk_full`), or `task_failed` when it has none.
fn failure_reason(document: &Value, host: &str) -> String {
    let tasks = document
        .get("plays")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|play| play.get("tasks").and_then(Value::as_array))
        .flatten();
    for task in tasks {
        let Some(result) = task.get("hosts").and_then(|hosts| hosts.get(host)) else {
            continue;
        };
        if result.get("failed").and_then(Value::as_bool) == Some(true) {
            let message = result.get("msg").and_then(Value::as_str).unwrap_or("");
            return identifier(message);
        }
    }
    "task_failed".into()
}

/// `"Disk full!"` → `disk_full`; empty → `task_failed`.
pub fn identifier(message: &str) -> String {
    let mut out = String::new();
    for character in message.chars().take(48) {
        if character.is_ascii_alphanumeric() {
            out.push(character.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let trimmed = out.trim_end_matches('_').to_string();
    if trimmed.is_empty() {
        "task_failed".into()
    } else {
        trimmed
    }
}
