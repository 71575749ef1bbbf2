//! A real local S3 server with Object Lock: moto in server mode (PyPI
//! `moto[server]`, installed by `scripts/test.sh`), started on
//! 127.0.0.1 on a free port and killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringmaster::worm::s3::S3Store;
use ringmaster::worm::{LockMode, ObjectStoreConfig, RawObjectStoreConfig};

/// A running moto server.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
}

/// The moto server command: `moto_server` on PATH, else
/// `python3 -m moto.server`. Fails loudly when neither works.
fn moto_command() -> Command {
    if Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
    {
        return Command::new("moto_server");
    }
    let python_ok = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        python_ok,
        "moto is not installed: these tests need a real S3 server with Object Lock. \
         Run scripts/test.sh (it installs moto[server] with pip) or `pip install 'moto[server]'`"
    );
    let mut command = Command::new("python3");
    command.args(["-m", "moto.server"]);
    command
}

impl Moto {
    /// Starts moto on a free port.
    pub fn start() -> Moto {
        Moto::start_on(0)
    }

    /// Starts moto on `port` (0: any free port) and waits until it listens.
    pub fn start_on(port: u16) -> Moto {
        let mut child = moto_command()
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto server starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                    let port: u16 = rest.trim().parse().unwrap_or(0);
                    let _ = sender.send(port);
                    sent = true;
                }
            }
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("moto server reports its address within a minute");
        assert_ne!(port, 0, "moto server printed an address");
        Moto {
            child: Some(child),
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The raw config of a bucket on this server (credentials inline via
    /// a file written to `directory`).
    pub fn raw_config(
        &self,
        bucket: &str,
        mode: LockMode,
        directory: &std::path::Path,
    ) -> RawObjectStoreConfig {
        let credentials = directory.join("s3.credentials");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = AKIDRINGMASTERTEST\naws_secret_access_key = test-secret-never-logged\n",
        )
        .unwrap();
        RawObjectStoreConfig {
            url: Some(self.url()),
            bucket: Some(bucket.to_owned()),
            region: Some("us-east-1".into()),
            mode: Some(mode),
            retention_days: Some(2557),
            credentials_file: Some(credentials),
            ..RawObjectStoreConfig::default()
        }
    }

    pub fn config(
        &self,
        bucket: &str,
        mode: LockMode,
        directory: &std::path::Path,
    ) -> ObjectStoreConfig {
        self.raw_config(bucket, mode, directory)
            .validate(|_| None)
            .expect("valid object store config")
    }

    /// Kills the server (an outage); its in-memory state is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bucket created with Object Lock on `moto`.
pub fn locked_bucket(
    moto: &Moto,
    bucket: &str,
    mode: LockMode,
    directory: &std::path::Path,
) -> (ObjectStoreConfig, S3Store) {
    let config = moto.config(bucket, mode, directory);
    let store = S3Store::new(&config).expect("store");
    store
        .create_bucket(true)
        .expect("bucket created with Object Lock");
    (config, store)
}
