//! Kubernetes resource quantities (`10Gi`, `500M`, `1.5Ti`, `2e9`), parsed the way the API server
//! parses them, so the spec can reject bad sizes before anything is sent and compare claim and
//! volume sizes exactly.

use std::cmp::Ordering;

/// A parsed quantity, kept as an exact rational `mantissa * 10^exp10 * 2^exp2` so that binary and
/// decimal suffixes compare without rounding.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    negative: bool,
    /// Digits without the decimal point.
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

/// Why a string is not a quantity; the text mirrors the API server's own wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)]
pub struct QuantityError;

impl Quantity {
    /// Parses a quantity string with the grammar of `k8s.io/apimachinery/pkg/api/resource`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(QuantityError);
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(QuantityError);
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return Err(QuantityError);
        }
        let mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError)?
        };
        let mut exp10 = -(frac_part.len() as i32);
        let mut exp2 = 0u32;
        match suffix {
            "" => {}
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or(QuantityError)?;
                let digits = exp.trim_start_matches(['+', '-']);
                if digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || exp.len() - digits.len() > 1
                {
                    return Err(QuantityError);
                }
                let e: i32 = exp.parse().map_err(|_| QuantityError)?;
                if e.abs() > 60 {
                    return Err(QuantityError);
                }
                exp10 += e;
            }
        }
        Ok(Quantity {
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            exp2,
        })
    }

    /// True for quantities below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// True when the value is a whole number (of bytes, for sizes): `1Gi`, `1.5Ki` and `2e3` are,
    /// `500m` (half a byte) and `1.5` are not.
    pub fn is_whole(&self) -> bool {
        if self.exp10 >= 0 || self.mantissa == 0 {
            return true;
        }
        // mantissa * 2^exp2 must be divisible by 10^k = 2^k * 5^k.
        let k = self.exp10.unsigned_abs();
        let mut m = self.mantissa;
        for _ in 0..k {
            if !m.is_multiple_of(5) {
                return false;
            }
            m /= 5;
        }
        let twos = self.mantissa.trailing_zeros() + self.exp2;
        twos >= k
    }

    /// The value as a float, for messages and rough arithmetic only.
    pub fn as_f64(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.exp10) * 2f64.powi(self.exp2 as i32);
        if self.negative { -v } else { v }
    }

    /// Exact comparison of two quantities.
    pub fn cmp_exact(&self, other: &Quantity) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => return Ordering::Greater,
            (true, false) => return Ordering::Less,
            _ => {}
        }
        let magnitude = compare_magnitude(self, other);
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// Compares |a| and |b| exactly by scaling both to a common integer form where possible.
fn compare_magnitude(a: &Quantity, b: &Quantity) -> Ordering {
    if a.mantissa == 0 || b.mantissa == 0 {
        return a.mantissa.min(1).cmp(&b.mantissa.min(1));
    }
    // a = ma * 10^ea * 2^pa. Multiply both sides by 10^-min(e) and 2^-min(p).
    let e = a.exp10.min(b.exp10);
    let p = a.exp2.min(b.exp2);
    let scale = |q: &Quantity| -> Option<u128> {
        let mut v = q.mantissa;
        for _ in 0..(q.exp10 - e) {
            v = v.checked_mul(10)?;
        }
        v.checked_mul(1u128.checked_shl(q.exp2 - p)?)
    };
    match (scale(a), scale(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a
            .as_f64()
            .abs()
            .partial_cmp(&b.as_f64().abs())
            .unwrap_or(Ordering::Equal),
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_exact(other) == Ordering::Equal
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp_exact(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn parses_valid_quantities() {
        for s in [
            "1", "10Gi", "1.5Ti", "500M", "100m", "2e9", "1E3", "+3", "0", "0.5Gi", "12k",
        ] {
            assert!(Quantity::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_quantities() {
        for s in [
            "10GB-x", "10GB", "", "Gi", "1..2", "1.2.3Gi", "1e", "1e+-3", "abc", "10 Gi", "1gi",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn whole_numbers() {
        for s in [
            "1", "1Gi", "1.5Ki", "2e3", "0.5Gi", "500M", "1000m", "0.001k", "0",
        ] {
            assert!(q(s).is_whole(), "{s}");
        }
        for s in ["500m", "1.5", "1n", "0.1", "1e-1", "0.0001Ki"] {
            assert!(!q(s).is_whole(), "{s}");
        }
    }

    #[test]
    fn compares_binary_and_decimal_exactly() {
        assert!(q("1Gi") > q("1G"));
        assert!(q("1024Mi") == q("1Gi"));
        assert_eq!(q("1024Mi").cmp_exact(&q("1Gi")), Ordering::Equal);
        assert_eq!(q("1000M").cmp_exact(&q("1G")), Ordering::Equal);
        assert!(q("1.5Gi") > q("1Gi"));
        assert!(q("500Mi") < q("1Gi"));
        assert!(q("2e9") > q("1Gi"));
        assert!(q("-1") < q("0"));
        assert_eq!(q("0.5Gi").cmp_exact(&q("512Mi")), Ordering::Equal);
    }
}
