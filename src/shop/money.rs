//! Money is integer cents everywhere; this module only formats it for people.

use std::fmt;

/// An amount in US cents, displayed as `$1,299.00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub i64);

/// A count with thousands separators, `19204` → `19,204`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grouped(pub u64);

/// A count of tenths shown with one decimal, `46` → `4.6` (ratings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tenths(pub u64);

/// A formatted figure, written right to left into a buffer on the stack. Pages print dozens of
/// figures per request: each is one `write_str` of this text, with no intermediate string and
/// none of `core::fmt`'s padding machinery (which was a tenth of a page's rendering).
#[derive(Clone, Copy)]
pub struct Text {
    /// Large enough for `-$92,233,720,368,547,758.08`, the longest figure here.
    buffer: [u8; 32],
    start: usize,
}

impl Text {
    fn new() -> Text {
        Text {
            buffer: [0; 32],
            start: 32,
        }
    }

    fn push(&mut self, byte: u8) {
        self.start -= 1;
        self.buffer[self.start] = byte;
    }

    /// The last decimal digit of `n`.
    fn push_digit(&mut self, n: u64) {
        self.push(b'0' + (n % 10) as u8);
    }

    fn push_digits(&mut self, mut n: u64, grouped: bool) {
        let mut digits = 0;
        loop {
            if grouped && digits > 0 && digits % 3 == 0 {
                self.push(b',');
            }
            self.push_digit(n);
            n /= 10;
            digits += 1;
            if n == 0 {
                break;
            }
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, signs and separators are ever pushed.
        std::str::from_utf8(&self.buffer[self.start..]).expect("ASCII")
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Money {
    pub fn text(self) -> Text {
        let cents = self.0.unsigned_abs();
        let mut text = Text::new();
        text.push_digit(cents);
        text.push_digit(cents / 10);
        text.push(b'.');
        text.push_digits(cents / 100, true);
        text.push(b'$');
        if self.0 < 0 {
            text.push(b'-');
        }
        text
    }
}

impl Grouped {
    pub fn text(self) -> Text {
        let mut text = Text::new();
        text.push_digits(self.0, true);
        text
    }
}

impl Tenths {
    pub fn text(self) -> Text {
        let mut text = Text::new();
        text.push_digit(self.0);
        text.push(b'.');
        text.push_digits(self.0 / 10, false);
        text
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl fmt::Display for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Grouped, Money, Tenths};

    #[test]
    fn formats_dollars_with_grouping() {
        assert_eq!(Money(0).to_string(), "$0.00");
        assert_eq!(Money(5).to_string(), "$0.05");
        assert_eq!(Money(129_999).to_string(), "$1,299.99");
        assert_eq!(Money(100_000_000).to_string(), "$1,000,000.00");
        assert_eq!(Money(-250).to_string(), "-$2.50");
        assert_eq!(Money(i64::MIN).to_string(), "-$92,233,720,368,547,758.08");
    }

    #[test]
    fn groups_counts_by_thousands() {
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (19_204, "19,204"),
            (1_000_000, "1,000,000"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(Grouped(n).to_string(), text);
        }
    }

    #[test]
    fn tenths_have_one_decimal() {
        for (n, text) in [
            (0, "0.0"),
            (5, "0.5"),
            (46, "4.6"),
            (50, "5.0"),
            (1_234, "123.4"),
        ] {
            assert_eq!(Tenths(n).to_string(), text);
        }
        assert_eq!(Tenths(u64::MAX).to_string(), "1844674407370955161.5");
    }

    /// Every amount up to $100 and around each power of ten reads as plain formatting would.
    #[test]
    fn money_matches_plain_formatting() {
        let plain = |cents: i64| {
            let sign = if cents < 0 { "-" } else { "" };
            let abs = cents.unsigned_abs();
            format!("{sign}${}.{:02}", Grouped(abs / 100), abs % 100)
        };
        let powers = (0..19).map(|e| 10i64.pow(e));
        for cents in (-10_000..=10_000).chain(powers.flat_map(|p| [p - 1, p, p + 1, -p])) {
            assert_eq!(Money(cents).to_string(), plain(cents), "{cents}");
        }
    }
}
