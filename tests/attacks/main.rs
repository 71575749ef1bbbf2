//! Attacks on governance: one test per way around the rules that issue 10
//! lists, each run through `validate --base`, the PR check and the daemon,
//! each failing if its defence is removed. One file per group of attacks;
//! `harness` runs an attack through the three judges, `bounded` runs the
//! judges that a hostile repository could hang under a deadline.

#[path = "../support/mod.rs"]
mod support;

mod bounded;
mod harness;

mod corpus;
mod expiry;
mod identities;
mod judges;
mod output_forgery;
mod policy_limits;
mod records;
mod rolled_back;
mod rules_in_force;
mod scope;
mod signed;
mod sites;
mod supersede;
mod yaml_tags;
