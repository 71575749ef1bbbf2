//! How far a long operation is: `generate`, `verify` over a large evidence
//! branch and `validate` over many files report their stages and items
//! here. The CLI draws them on a terminal (`cli::progress`); everything
//! else passes [`Silent`].

/// Receives the progress of one operation (from several threads at once).
pub trait Progress: Sync {
    /// A new stage: what it does, over `total` items when that is known.
    fn stage(&self, what: &str, total: Option<u64>);
    /// `count` more items of the current stage are done.
    fn advance(&self, count: u64);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _what: &str, _total: Option<u64>) {}
    fn advance(&self, _count: u64) {}
}
