//! The Git side of GitHub: a bare repository (what github.com hosts, with
//! `refs/pull/<n>/head` as GitHub publishes them) and an author's clone that
//! makes the commits, all with the real `git` command.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct HostedRepo {
    _dir: tempfile::TempDir,
    /// The bare repository ("GitHub").
    pub bare: PathBuf,
    /// An author's clone.
    pub clone: PathBuf,
    /// `file://` URL of the bare repository.
    pub url: String,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Author",
            "-c",
            "user.email=author@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl HostedRepo {
    /// The sample tenant without `remove`d files, committed on `main` and pushed.
    pub fn sample_without(remove: &[&str]) -> HostedRepo {
        HostedRepo::sample_with(remove, |_| {})
    }

    /// The sample tenant without `remove`d files and with `edit` applied to
    /// its files, as the one commit of `main`.
    pub fn sample_with(remove: &[&str], edit: impl FnOnce(&Path)) -> HostedRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = dir.path().join("tenant.git");
        let clone = dir.path().join("author");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        ringmaster::sample::write_to(&clone).expect("sample");
        for file in remove {
            std::fs::remove_file(clone.join(file)).expect("remove sample file");
        }
        edit(&clone);
        let url = format!("file://{}", bare.display());
        git(&clone, &["init", "-q", "-b", "main"]);
        git(&clone, &["add", "-A"]);
        git(&clone, &["commit", "-q", "-m", "sample tenant"]);
        git(&clone, &["remote", "add", "origin", &url]);
        git(&clone, &["push", "-q", "origin", "main"]);
        HostedRepo {
            _dir: dir,
            bare,
            clone,
            url,
        }
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.clone, args)
    }

    pub fn write(&self, relative: &str, text: &str) -> &Self {
        let path = self.clone.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.clone.join(relative)).expect("read")
    }

    pub fn edit(&self, relative: &str, from: &str, to: &str) -> &Self {
        let text = self.read(relative);
        assert!(text.contains(from), "{relative} lacks {from:?}");
        self.write(relative, &text.replacen(from, to, 1))
    }

    pub fn sha(&self, revision: &str) -> String {
        self.git(&["rev-parse", revision])
    }

    /// Starts branch `branch` from main (the work tree's changes go on it with `commit_pull_request`).
    pub fn branch(&self, branch: &str) -> &Self {
        self.git(&["checkout", "-q", "-b", branch, "main"]);
        self
    }

    /// Commits the work tree on the current branch and publishes it as PR
    /// `number`'s head (`refs/heads/<branch>` and `refs/pull/<n>/head`).
    pub fn commit_pull_request(&self, number: u64, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        let branch = self.git(&["rev-parse", "--abbrev-ref", "HEAD"]);
        self.git(&[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ]);
        self.git(&[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("HEAD:refs/pull/{number}/head"),
        ]);
        self.sha("HEAD")
    }

    /// Merges `branch` into main with a merge commit, pushes; returns the merge commit.
    pub fn merge(&self, branch: &str, number: u64) -> String {
        self.git(&["checkout", "-q", "main"]);
        self.git(&[
            "merge",
            "-q",
            "--no-ff",
            branch,
            "-m",
            &format!("Merge pull request #{number} from {branch}"),
        ]);
        self.git(&["push", "-q", "origin", "main"]);
        self.sha("HEAD")
    }
}
