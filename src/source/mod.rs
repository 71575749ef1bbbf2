//! Git access: reading a revision's tree (never a checkout) or a work tree.
//!
//! A governed repository may be a whole Git repository or a folder inside one
//! (as `sample-repo/` is inside this project); the snapshot is then that
//! subtree at the revision. Symlinks, submodules and oversized blobs are
//! reported as such and never followed or read.

pub mod commit;
pub mod credentials;
pub mod history;
pub mod remote;
mod tree;
pub mod watch;

pub use tree::{GovernedRepo, SourceError, read_worktree};
