//! Recording a batch of decisions in one write transaction.
//!
//! The daemon signs a commit's decisions as one evidence batch
//! (`EvidenceBranch::append_batch`); the store then hears of all of them at
//! once: each decision's `evidence_committed` event, each intent's new
//! verdict, and the evidence head moved to the batch's last record, in ONE
//! write transaction (one fsync instead of three per decision). Either all
//! of it is recorded or none of it, so a crash leaves the store exactly at
//! the previous batch, and the redo finds the batch on the branch's tip.
//! The events are chained one after the other as `append_event` chains
//! them, and the transaction is fenced like every other write.

use super::db::TransactionBehavior;
use super::events::{append_at, chain_head};
use super::evidence_head::write_head;
use super::intents::write_intent;
use super::{IntentUpsert, NewEvent, Store, StoreError};
use chrono::{DateTime, Utc};

/// One decision the store records: its event (`None` when the store has it
/// already: a redo after a crash) and the intent's new row.
#[derive(Debug, Clone)]
pub struct DecisionWrite {
    pub event: Option<NewEvent>,
    pub intent: IntentUpsert,
}

/// The evidence record the head moves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadWrite {
    pub sequence: u64,
    pub pack_sha256: String,
    pub evidence_commit_sha: String,
}

impl Store {
    /// Records `writes` in order, then moves the evidence head to `head`,
    /// in one write transaction (see the module documentation).
    pub fn record_decisions(
        &mut self,
        writes: Vec<DecisionWrite>,
        head: &HeadWrite,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head_of_log = chain_head(&transaction)?;
        for write in writes {
            if let Some(event) = write.event {
                append_at(&transaction, &mut head_of_log, event)?;
            }
            write_intent(&transaction, &write.intent, now)?;
        }
        write_head(
            &transaction,
            head.sequence,
            &head.pack_sha256,
            &head.evidence_commit_sha,
            now,
        )?;
        transaction.commit()
    }
}
