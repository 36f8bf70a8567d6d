//! The progress bar `status`, `reprocess` and `demo` draw on stderr, only
//! when stderr is a terminal: piped or captured output stays clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scheduler::progress::Progress;

pub struct Bar(ProgressBar);

impl Bar {
    /// A bar on stderr if it is a terminal, else one that draws nothing.
    pub fn on_stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    fn new(drawn: bool) -> Self {
        Self(if drawn {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        })
    }

    /// Runs `f` (which prints) with the bar out of the way.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // the demo's
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        let style = match total {
            Some(n) => {
                self.0.set_length(n);
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
            }
            None => {
                self.0.unset_length();
                ProgressStyle::with_template("{spinner} {msg}: {pos} objects ({per_sec})")
            }
        };
        if let Ok(style) = style {
            self.0.set_style(style.progress_chars("=> "));
        }
        self.0.set_position(0);
        self.0.set_message(phase.to_owned());
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
