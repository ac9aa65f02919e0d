//! Time as the pure layers see it: milliseconds since the router started.
//!
//! Only `server/` reads the clock; it converts to [`Instant`] and passes it down
//! (DESIGN.md §2.2 rule 1), so every protocol decision is reproducible in tests.

/// Milliseconds since an arbitrary start (the router's start in production).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// Milliseconds elapsed from `earlier` to `self` (0 if `earlier` is later).
    #[must_use]
    pub fn since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `self` plus `ms` milliseconds (saturating).
    #[must_use]
    pub fn plus(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}
