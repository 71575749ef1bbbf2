//! Progress output of the long commands (`generate`, `validate`, `verify`):
//! drawn on stderr when it is a terminal — here a real pseudo-terminal made
//! by `script` (util-linux) — and nothing at all when stderr is a pipe, so
//! CI logs and scripted runs read exactly as before.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ringmaster() -> &'static str {
    env!("CARGO_BIN_EXE_ringmaster")
}

/// A generated repository and the demo's kept directory (evidence branch
/// and key), made once per test binary.
struct Fixtures {
    _dir: tempfile::TempDir,
    generated: PathBuf,
    demo: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: std::sync::OnceLock<Fixtures> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let demo = dir.path().join("demo");
        let output = Command::new(ringmaster())
            .args(["demo", "--json", "--keep"])
            .arg(&demo)
            .output()
            .expect("ringmaster demo");
        assert!(output.status.success(), "{output:?}");
        let generated = dir.path().join("generated");
        let output = piped(&["generate", "--intents", "100"], &generated);
        assert!(output.status.success(), "{output:?}");
        Fixtures {
            _dir: dir,
            generated,
            demo,
        }
    })
}

/// Runs `ringmaster ARGS PATH` with stdout and stderr piped.
fn piped(args: &[&str], path: &Path) -> Output {
    Command::new(ringmaster())
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("ringmaster runs")
}

/// Runs `ringmaster ARGS PATH` on a pseudo-terminal (`script -q -e -c`),
/// returning everything the terminal showed.
fn on_a_terminal(args: &[&str], path: &Path) -> String {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|candidate| Path::new(candidate).is_file())
        .expect("script is not installed: it is in the Debian package bsdutils (util-linux)");
    let mut command_line = String::from(ringmaster());
    for arg in args
        .iter()
        .copied()
        .chain([path.to_str().expect("UTF-8 path")])
    {
        command_line.push_str(&format!(" '{arg}'"));
    }
    let output = Command::new(script)
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command_line}: {output:?}\n{shown}"
    );
    shown
}

fn verify_args(demo: &Path) -> Vec<String> {
    vec![
        "verify".into(),
        "--public-key".into(),
        demo.join("keys/ringmaster.pub").display().to_string(),
    ]
}

#[test]
fn nothing_is_drawn_when_stderr_is_not_a_terminal() {
    let fixtures = fixtures();
    let generated = tempfile::tempdir().expect("temp dir");
    let output = piped(
        &["generate", "--intents", "100"],
        &generated.path().join("repo"),
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "generate wrote to stderr: {output:?}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("generated 100 intents"));

    let output = piped(&["validate"], &fixtures.generated);
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "validate wrote to stderr: {output:?}"
    );

    let args = verify_args(&fixtures.demo);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = piped(&args, &fixtures.demo.join("contoso"));
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "verify wrote to stderr: {output:?}"
    );
}

#[test]
fn generate_validate_and_verify_draw_progress_on_a_terminal() {
    let fixtures = fixtures();
    let generated = tempfile::tempdir().expect("temp dir");
    let shown = on_a_terminal(
        &["generate", "--intents", "100"],
        &generated.path().join("repo"),
    );
    assert!(shown.contains("writing files"), "{shown}");
    assert!(shown.contains("committing"), "{shown}");
    assert!(shown.contains("generated 100 intents"), "{shown}");

    let shown = on_a_terminal(&["validate"], &fixtures.generated);
    assert!(shown.contains("judging"), "{shown}");

    let args = verify_args(&fixtures.demo);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shown = on_a_terminal(&args, &fixtures.demo.join("contoso"));
    assert!(shown.contains("verifying records"), "{shown}");
    assert!(shown.contains("record(s) verified"), "{shown}");
}
