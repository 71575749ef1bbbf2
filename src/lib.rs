//! ringmaster: a Git-native control plane for application deployments.
//!
//! See `ARCHITECTURE.md` for the map. The pure core (`model`, `schema`,
//! `policy`, `risk`) does no I/O and takes the clock as a value; the shell
//! around it (`source`, `store`, `evidence`, `cli`) touches the world.

#![forbid(unsafe_code)]

pub mod diagnostic;
pub mod evidence;
pub mod model;
