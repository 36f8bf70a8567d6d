//! Long operator work reports how far it got: the CLI draws a progress bar
//! when stderr is a terminal; the library's other callers, tests and
//! scripts pass [`Quiet`].

/// Watches one operation, phase by phase.
pub trait Progress: Sync {
    /// A new phase begins (`listing incoming/`), with its total if known.
    fn start(&self, phase: &str, total: Option<u64>);
    /// `n` more items of the phase are done.
    fn advance(&self, n: u64);
    /// The operation is over: clear what was drawn.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}
