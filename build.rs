//! Embeds `sample-repo/` into the binary, so `ringmaster init` and
//! `ringmaster demo` work from an installed binary without the source tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            walk(&path, files);
        } else if file_type.is_file() {
            files.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    symbol_order(&manifest);
    let root = manifest.join("sample-repo");
    println!("cargo:rerun-if-changed=sample-repo");
    let mut files = Vec::new();
    if root.is_dir() {
        walk(&root, &mut files);
    }
    let mut code = String::from(
        "/// Every file of `sample-repo/`: (relative path, bytes).\npub const SAMPLE_REPO: &[(&str, &[u8])] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&root).expect("under root");
        let relative = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        writeln!(
            code,
            "    ({relative:?}, include_bytes!({:?})),",
            file.display().to_string()
        )
        .expect("write to string");
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("sample_repo.rs");
    std::fs::write(out, code).expect("write generated file");
}

/// On release builds linked by lld (rustc's default linker for
/// `x86_64-unknown-linux-gnu` since 1.90), lays out the functions listed in
/// `link/symbol-order.txt` together, hottest first: the kernel maps code
/// 64 KiB around each page run, and the functions a run needs, spread over
/// the whole text, kept most of it resident (`scripts/symbol-order.sh`
/// explains and regenerates the list). Names the build does not have are
/// skipped, so a stale list costs memory, never a failed or wrong build.
/// `RINGMASTER_SYMBOL_ORDER=0` turns it off.
fn symbol_order(manifest: &Path) {
    let order = manifest.join("link/symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=RINGMASTER_SYMBOL_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let wanted = var("PROFILE") == "release" && var("RINGMASTER_SYMBOL_ORDER") != "0";
    // Only where the linker is known to be lld: the default one, not set
    // by the environment or the flags.
    let default_linker = var("TARGET") == "x86_64-unknown-linux-gnu"
        && std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && rustc_minor().is_some_and(|minor| minor >= 90);
    if wanted && default_linker && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=ringmaster=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=ringmaster=-Wl,--no-warn-symbol-ordering");
    }
}

/// The minor version of the compiler building us (`rustc 1.95.0 (...)`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let output = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
