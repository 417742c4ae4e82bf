//! Kubernetes resource quantities (`"100m"`, `"1Gi"`, `"0.5"`, `"1e3"`) parsed exactly.
//!
//! Grammar (k8s.io/apimachinery `resource.Quantity`):
//! `<sign>? <digits>[.<digits>] (Ki|Mi|Gi|Ti|Pi|Ei | m|k|M|G|T|P|E | e<int>|E<int>)?`.
//! The value is kept as `mantissa × 10^exp10 × 2^exp2` and scaled with rounding away from
//! zero, like `Quantity.MilliValue()` / `Quantity.Value()` (which round up).

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity {0:?}: empty")]
    Empty(String),
    #[error("quantity {0:?}: no digits")]
    NoDigits(String),
    #[error("quantity {0:?}: unknown suffix {1:?}")]
    Suffix(String, String),
    #[error("quantity {0:?}: more than 36 significant digits")]
    TooPrecise(String),
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2` (sign included in the mantissa).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Parse a quantity string (surrounding whitespace is not allowed, as in Kubernetes).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Empty(s.to_string()));
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i128 = 0;
        let mut digits = 0usize;
        let mut significant = 0usize;
        let mut frac_digits: i32 = 0;
        let mut seen_dot = false;
        while i < bytes.len() {
            match bytes[i] {
                b'0'..=b'9' => {
                    digits += 1;
                    let d = i128::from(bytes[i] - b'0');
                    if mantissa != 0 || d != 0 {
                        significant += 1;
                    }
                    if significant > 36 {
                        return Err(QuantityError::TooPrecise(s.to_string()));
                    }
                    mantissa = mantissa * 10 + d;
                    if seen_dot {
                        frac_digits += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            i += 1;
        }
        if digits == 0 {
            return Err(QuantityError::NoDigits(s.to_string()));
        }
        let (exp10, exp2) = parse_suffix(&s[i..])
            .ok_or_else(|| QuantityError::Suffix(s.to_string(), s[i..].to_string()))?;
        Ok(Self {
            mantissa: if negative { -mantissa } else { mantissa },
            exp10: exp10 - frac_digits,
            exp2,
        })
    }

    /// The value in thousandths (CPU millicores), rounded away from zero, saturating.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }

    /// The integer value (bytes, pod counts), rounded away from zero, saturating.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// `self × 10^scale`, rounded away from zero and saturated to `i64`.
    fn scaled(&self, scale: i32) -> i64 {
        if self.mantissa == 0 {
            return 0;
        }
        let negative = self.mantissa < 0;
        let saturated = if negative { i64::MIN } else { i64::MAX };
        let mut n = self.mantissa.unsigned_abs();
        // Multiply by 2^exp2 first: it is never a division.
        for _ in 0..self.exp2 {
            match n.checked_mul(2) {
                Some(v) => n = v,
                None => return saturated,
            }
        }
        let exp = self.exp10 + scale;
        let magnitude = if exp >= 0 {
            let mut v = n;
            for _ in 0..exp {
                match v.checked_mul(10) {
                    Some(x) => v = x,
                    None => return saturated,
                }
            }
            v
        } else {
            // Divide by 10^-exp rounding up; past 10^38 the quotient is below one.
            let mut div: u128 = 1;
            for _ in 0..(-exp) {
                match div.checked_mul(10) {
                    Some(d) => div = d,
                    None => return if negative { -1 } else { 1 },
                }
            }
            n.div_ceil(div)
        };
        match i64::try_from(magnitude) {
            Ok(v) if negative => -v,
            Ok(v) => v,
            Err(_) => saturated,
        }
    }
}

/// `(decimal exponent, binary exponent)` of a suffix, `None` if it is not one.
fn parse_suffix(suffix: &str) -> Option<(i32, u32)> {
    let known = match suffix {
        "" => Some((0, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        "Ki" => Some((0, 10)),
        "Mi" => Some((0, 20)),
        "Gi" => Some((0, 30)),
        "Ti" => Some((0, 40)),
        "Pi" => Some((0, 50)),
        "Ei" => Some((0, 60)),
        _ => None,
    };
    if known.is_some() {
        return known;
    }
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    let unsigned = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exp: i32 = rest.parse().ok()?;
    // Anything beyond this saturates or rounds to the smallest unit anyway.
    (-100..=100).contains(&exp).then_some((exp, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i64 {
        Quantity::parse(s).unwrap().milli_value()
    }

    fn value(s: &str) -> i64 {
        Quantity::parse(s).unwrap().value()
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("2."), 2000);
        assert_eq!(milli("1.5"), 1500);
        assert_eq!(milli("+250m"), 250);
        assert_eq!(milli("0"), 0);
        assert_eq!(milli("0.0001"), 1, "rounds up like MilliValue");
        assert_eq!(milli("1e-3"), 1);
        assert_eq!(milli("1e3"), 1_000_000);
        assert_eq!(milli("1k"), 1_000_000);
    }

    #[test]
    fn memory_forms() {
        assert_eq!(value("1Gi"), 1 << 30);
        assert_eq!(value("1.5Gi"), 3 << 29);
        assert_eq!(value("128Mi"), 128 << 20);
        assert_eq!(value("1Ki"), 1024);
        assert_eq!(value("1Ti"), 1 << 40);
        assert_eq!(value("1M"), 1_000_000);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1E"), 1_000_000_000_000_000_000);
        assert_eq!(value("1E3"), 1000, "E followed by digits is an exponent");
        assert_eq!(value("12e6"), 12_000_000);
        assert_eq!(value("129e6"), 129_000_000);
        assert_eq!(value("100m"), 1, "fractional bytes round up");
        assert_eq!(value("1500m"), 2);
    }

    #[test]
    fn negative_and_saturation() {
        assert_eq!(milli("-100m"), -100);
        assert_eq!(value("-1.5"), -2, "rounds away from zero");
        assert_eq!(value("8Ei"), i64::MAX);
        assert_eq!(milli("1e30"), i64::MAX);
        assert_eq!(milli("1e-90"), 1);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "m", "abc", "1x", "1Gb", "1..5", "1e", "1e+", "--1", "1 ", " 1", "1KI",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            Quantity::parse("1234567890123456789012345678901234567"),
            Err(QuantityError::TooPrecise(_))
        ));
        assert_eq!(
            Quantity::parse("1Gb").unwrap_err().to_string(),
            "quantity \"1Gb\": unknown suffix \"Gb\""
        );
    }
}
