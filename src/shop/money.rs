//! Money is integer cents everywhere; this module only formats it for people.

use std::fmt;

/// An amount in US cents, displayed as `$1,299.00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub i64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        let dollars = (cents / 100).to_string();
        let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
        for (i, digit) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        write!(f, "{sign}${grouped}.{:02}", cents % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::Money;

    #[test]
    fn formats_dollars_with_grouping() {
        assert_eq!(Money(0).to_string(), "$0.00");
        assert_eq!(Money(5).to_string(), "$0.05");
        assert_eq!(Money(129_999).to_string(), "$1,299.99");
        assert_eq!(Money(100_000_000).to_string(), "$1,000,000.00");
        assert_eq!(Money(-250).to_string(), "-$2.50");
    }
}
