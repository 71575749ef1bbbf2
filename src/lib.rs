//! ringmaster: a Git-native control plane for application deployments.
//!
//! See `ARCHITECTURE.md` for the map. The pure core (`model`, `schema`,
//! `policy`, `risk`, `evaluation`, `plan`) does no I/O and takes the clock as
//! a value; the shell around it (`source`, `store`, `evidence`, `cli`)
//! touches the world.

#![forbid(unsafe_code)]

pub mod api;
pub mod authority;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod diagnostic;
pub mod escape;
pub mod evaluation;
pub mod evidence;
pub mod forge;
pub mod judge;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod orchestrator;
pub mod plan;
pub mod planes;
pub mod policy;
pub mod progress;
pub mod reconciler;
pub mod recovery;
pub mod risk;
pub mod sample;
pub mod sandbox;
pub mod schema;
pub mod source;
pub mod store;
pub mod synthetic;
pub mod targeting;
pub mod worm;
