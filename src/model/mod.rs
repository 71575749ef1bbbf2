//! The governed repository as typed values: kinds, loading a snapshot, links.

pub mod kinds;
pub mod yaml;

pub use kinds::*;
