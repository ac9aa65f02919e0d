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

/// Bytes of [`format_utc`]'s text.
pub const UTC_TEXT_LEN: usize = 32;

/// `epoch_us` (microseconds since 1970-01-01T00:00:00 UTC) as VOLTTRON writes an aware UTC time
/// (`utils.format_timestamp(get_aware_utc_now())`, the `Date`/`TimeStamp` headers):
/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`. Years past 9999 are written as 9999 (the text keeps its
/// length). Pure: the caller reads the clock.
#[must_use]
pub fn format_utc(epoch_us: u64) -> [u8; UTC_TEXT_LEN] {
    let micros = epoch_us % 1_000_000;
    let secs = epoch_us / 1_000_000;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (H. Hinnant's `civil_from_days`, unsigned form).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + u64::from(month <= 2)).min(9999);
    let mut out = *b"0000-00-00T00:00:00.000000+00:00";
    let fields: [(usize, usize, u64); 7] = [
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, day_secs / 3600),
        (14, 2, day_secs / 60 % 60),
        (17, 2, day_secs % 60),
        (20, 6, micros),
    ];
    for (at, width, mut value) in fields {
        for i in (at..at + width).rev() {
            if let Some(b) = out.get_mut(i) {
                // value % 10 < 10: the cast cannot truncate.
                *b = b'0' + (value % 10) as u8;
            }
            value /= 10;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(us: u64) -> String {
        String::from_utf8(format_utc(us).to_vec()).unwrap()
    }

    #[test]
    fn utc_text_is_volttrons_format() {
        assert_eq!(text(0), "1970-01-01T00:00:00.000000+00:00");
        // 2000-02-29 (a leap day of a century leap year) 23:59:59.999999
        assert_eq!(text(951_868_799_999_999), "2000-02-29T23:59:59.999999+00:00");
        assert_eq!(text(1_700_000_000_123_456), "2023-11-14T22:13:20.123456+00:00");
        // 2100 is not a leap year: 2100-02-28 is followed by 2100-03-01.
        assert_eq!(text(4_107_542_400_000_000), "2100-03-01T00:00:00.000000+00:00");
        assert_eq!(text(u64::MAX).len(), UTC_TEXT_LEN);
        assert!(text(u64::MAX).starts_with("9999-"));
    }
}
