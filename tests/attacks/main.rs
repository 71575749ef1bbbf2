//! Attacks on governance: one test per way around the rules that issue 10
//! lists, each run through the judges it concerns and each failing if its
//! defence is removed. One file per group of attacks.

#[path = "../support/mod.rs"]
mod support;

mod bounded;
mod policy_limits;
