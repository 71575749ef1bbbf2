//! The governed repository as typed values: kinds, loading a snapshot, links.
//!
//! Pure: no I/O, no clock. `source` hands in a revision's entries; this module
//! returns the typed [`Snapshot`] and every [`Diagnostic`](crate::diagnostic::Diagnostic).

pub mod digest;
pub mod kinds;
pub mod links;
pub mod load;
pub mod scope;
pub mod signing;
pub mod snapshot;
pub mod yaml;

pub use kinds::*;
pub use load::{Entry, EntryContent, load};
pub use snapshot::{Located, Objects, PolicyFile, Snapshot};
