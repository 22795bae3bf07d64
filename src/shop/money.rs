//! Money is integer cents everywhere; this module only formats it for people.

use std::fmt;

/// An amount in US cents, displayed as `$1,299.00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub i64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:02}", Grouped(cents / 100), cents % 100)
    }
}

/// A count with thousands separators, `19204` → `19,204`. Writes straight into the formatter:
/// pages print dozens of these per request, so no intermediate string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grouped(pub u64);

/// A count of tenths shown with one decimal, `46` → `4.6` (ratings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tenths(pub u64);

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

impl fmt::Display for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // u64::MAX has 20 digits; with 6 separators that is 26 bytes.
        let mut buffer = [0u8; 26];
        let mut at = buffer.len();
        let mut rest = self.0;
        let mut digits = 0;
        loop {
            if digits > 0 && digits % 3 == 0 {
                at -= 1;
                buffer[at] = b',';
            }
            at -= 1;
            buffer[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            digits += 1;
            if rest == 0 {
                break;
            }
        }
        // Only ASCII digits and commas were written.
        f.write_str(std::str::from_utf8(&buffer[at..]).expect("ASCII"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Grouped, Money};

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
}
