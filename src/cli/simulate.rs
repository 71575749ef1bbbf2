//! `ringmaster simulate <plane>`: one plane's API simulator as a standalone
//! server, with the groups of a governed repository's entitlements, and
//! devices that check in on the wall clock.

use crate::model::Snapshot;
use crate::planes::simulators::{
    PlaneSimulator, SimulatedPlane, default_secret_file, random_secret,
};
use crate::planes::{ConnectorConfig, Secret};
use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub(super) struct SimulateArgs {
    pub plane: SimulatedPlane,
    pub listen: SocketAddr,
    pub repo: Option<PathBuf>,
    pub secret_file: Option<PathBuf>,
    pub check_in_seconds: u64,
    pub success_rate: f64,
}

/// The entitlements' source: a governed repository (its HEAD, or its working
/// directory when it is not a Git repository), or the built-in sample.
fn snapshot(repo: Option<&Path>) -> anyhow::Result<(Snapshot, String)> {
    let (entries, source) = match repo {
        Some(path) => match crate::source::GovernedRepo::open(path) {
            Ok(repository) => {
                let head = repository
                    .resolve("HEAD")
                    .with_context(|| format!("read HEAD of {}", path.display()))?;
                (
                    repository.entries_at(head)?,
                    format!("{} at HEAD", path.display()),
                )
            }
            Err(_) => (
                crate::source::read_worktree(path)
                    .with_context(|| format!("read {}", path.display()))?,
                path.display().to_string(),
            ),
        },
        None => {
            let temporary = tempfile::tempdir().context("make a temporary directory")?;
            crate::sample::write_to(temporary.path()).context("write the sample tenant")?;
            (
                crate::source::read_worktree(temporary.path())?,
                "the built-in sample tenant".to_owned(),
            )
        }
    };
    let (snapshot, _) = crate::model::load(&entries);
    Ok((snapshot, source))
}

/// The secret the simulator accepts: read from `path` when it exists,
/// otherwise a new random one written there.
fn secret(path: &Path) -> anyhow::Result<(Secret, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok((Secret::new(text.trim_end()), false)),
        Ok(_) => bail!(
            "{} is empty: remove it or put a secret in it",
            path.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((random_secret(), true)),
        Err(error) => Err(error).with_context(|| format!("read {}", path.display())),
    }
}

pub(super) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.success_rate) {
        bail!(
            "--success-rate {} is not between 0 and 1",
            args.success_rate
        );
    }
    let (snapshot, source) = snapshot(args.repo.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let secret_file = match args.secret_file.clone() {
            Some(file) => file,
            None => default_secret_file(args.plane, address)
                .context("make the private directory for the simulator's secret")?,
        };
        let (secret, created) = secret(&secret_file)?;
        let simulator = PlaneSimulator::new(args.plane, secret);
        if created {
            simulator
                .write_secret(&secret_file)
                .with_context(|| format!("write {}", secret_file.display()))?;
        }
        let (groups, devices) =
            simulator.register(snapshot.entitlements.values().map(|rule| &rule.value));
        let work_dir = secret_file
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let config = simulator.connector_config(address, &secret_file, work_dir);
        print_banner(
            &simulator,
            address,
            &source,
            groups,
            devices,
            &secret_file,
            &config,
        )?;

        let shutdown = super::daemon::shutdown_signal()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let checker = (args.check_in_seconds > 0).then(|| {
            let simulator = simulator.clone();
            let mut stopped = stopped.clone();
            let every = Duration::from_secs(args.check_in_seconds);
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stopped.wait_for(|stop| *stop) => return,
                    }
                    let reports = simulator.check_in(chrono::Utc::now(), args.success_rate);
                    if reports > 0 {
                        // A closed stdout (`| head`) must not stop the simulator.
                        let _ = writeln!(
                            std::io::stdout(),
                            "{}  {reports} device report(s)",
                            chrono::Utc::now().format("%H:%M:%S")
                        );
                    }
                }
            })
        });
        simulator
            .serve(listener, async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await
            .context("serve")?;
        if let Some(checker) = checker {
            let _ = checker.await;
        }
        let _ = writeln!(
            std::io::stdout(),
            "{} simulator stopped",
            args.plane.as_str()
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn print_banner(
    simulator: &PlaneSimulator,
    address: SocketAddr,
    source: &str,
    groups: usize,
    devices: u64,
    secret_file: &Path,
    config: &ConnectorConfig,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let plane = simulator.kind();
    writeln!(
        out,
        "{} simulator listening on http://{address}",
        plane.as_str()
    )?;
    writeln!(
        out,
        "  groups: {groups} ({devices} devices) from the entitlements of {source}"
    )?;
    writeln!(
        out,
        "  client secret: in {} (mode 0600; never printed)",
        secret_file.display()
    )?;
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        planes: BTreeMap<crate::model::Plane, &'a ConnectorConfig>,
    }
    let entry = serde_yaml::to_string(&Entry {
        planes: BTreeMap::from([(plane.plane(), config)]),
    })
    .context("render the config entry")?;
    writeln!(out, "\nAdd this to the daemon's --config file:\n")?;
    for line in entry.lines() {
        writeln!(out, "    {line}")?;
    }
    writeln!(out, "\nCtrl-C stops the simulator.")?;
    // A closed stdout (`| head`) must not stop the simulator.
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stdout().flush();
    Ok(())
}
