//! Resource quantities (`500m`, `1Gi`, `1e3`): parsing and comparison, as `resource.Quantity` reads them.

use std::cmp::Ordering;

/// The message Kubernetes gives for a malformed quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity, held as a count of nano-units (saturating at the i128 range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

const NANO: i128 = 1_000_000_000;

fn pow10(e: u32) -> i128 {
    10i128.checked_pow(e).unwrap_or(i128::MAX)
}

impl Quantity {
    /// Parses a quantity string; `Err` carries [`QUANTITY_FORMAT_ERROR`] (or a more specific reason).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into());
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let num_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[num_start..i];
        let suffix = &s[i..];
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return Err(QUANTITY_FORMAT_ERROR.into());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // (multiplier numerator, denominator exponent of ten) of the suffix, relative to 1 unit.
        let (mul, exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            other => {
                let rest = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or_else(|| QUANTITY_FORMAT_ERROR.to_string())?;
                let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QUANTITY_FORMAT_ERROR.into());
                }
                let e: i32 = rest
                    .parse()
                    .map_err(|_| QUANTITY_FORMAT_ERROR.to_string())?;
                (1, e)
            }
        };
        // value = 0.<int><frac> scaled: digits * 10^(exp10 + 9 - frac_len) * mul, in nanos.
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let mantissa: i128 = if digits.is_empty() {
            0
        } else if digits.len() > 36 {
            i128::MAX
        } else {
            digits
                .parse()
                .map_err(|_| QUANTITY_FORMAT_ERROR.to_string())?
        };
        let frac_len = i32::try_from(frac_part.len()).unwrap_or(i32::MAX);
        let shift = exp10.saturating_add(9).saturating_sub(frac_len);
        let scaled = if shift >= 0 {
            mantissa.saturating_mul(pow10(shift.unsigned_abs()))
        } else {
            let d = pow10(shift.unsigned_abs());
            // Round up toward +inf as Quantity does when it loses precision below nano.
            if d == i128::MAX {
                i128::from(mantissa > 0)
            } else {
                mantissa.saturating_add(d - 1) / d
            }
        };
        let nanos = scaled.saturating_mul(mul);
        Ok(Self {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The value in whole units, rounded up (`500m` → 1), as `Quantity.Value()`.
    pub fn value(&self) -> i128 {
        let q = self.nanos / NANO;
        if self.nanos % NANO > 0 {
            q + 1
        } else {
            q
        }
    }

    /// The value in milli-units, rounded up, as `Quantity.MilliValue()`.
    pub fn milli_value(&self) -> i128 {
        let q = self.nanos / 1_000_000;
        if self.nanos % 1_000_000 > 0 {
            q + 1
        } else {
            q
        }
    }

    /// Compares two quantities by value.
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Keys whose values are maps of resource name to quantity in the kinds Navarch serves.
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "capacity", "allocatable", "overhead"];

/// Rewrites numeric quantities (`cpu: 1` in YAML) as strings, as Kubernetes stores them, and returns
/// the paths and values of malformed ones (e.g. `spec.containers[0].resources.limits[memory]`, `1Gx`).
pub fn normalize_quantities(v: &mut serde_json::Value) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    walk(v, "", false, &mut bad);
    bad
}

fn walk(
    v: &mut serde_json::Value,
    path: &str,
    quantity_map: bool,
    bad: &mut Vec<(String, String)>,
) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if quantity_map {
                    let p = format!("{path}[{k}]");
                    match child {
                        Value::Number(n) => *child = Value::String(n.to_string()),
                        Value::String(s) if Quantity::parse(s).is_err() => {
                            bad.push((p, s.clone()));
                        }
                        _ => {}
                    }
                } else {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(child, &p, QUANTITY_MAPS.contains(&k.as_str()), bad);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{path}[{i}]"), false, bad);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_suffixes() {
        assert_eq!(q("1").value(), 1);
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E-3").milli_value(), 1);
        assert_eq!(q("100n").milli_value(), 1, "rounds up");
        assert_eq!(q("+2k").value(), 2000);
        assert!(q("-1").is_negative());
        assert_eq!(q("1000m").cmp_value(&q("1")), Ordering::Equal);
        assert_eq!(q("1Mi").cmp_value(&q("1M")), Ordering::Greater);
        assert_eq!(q("8Ei").cmp_value(&q("1")), Ordering::Greater);
        // Huge values saturate instead of overflowing.
        let huge = format!("1{}e-5", "0".repeat(45));
        assert!(q(&huge).value() > 0);
        assert!(q("999999999999999999999999999999Ei").value() > 0);
        assert!(q("1e-300").milli_value() == 1);
    }

    #[test]
    fn normalizes_and_reports() {
        let mut v = serde_json::json!({"spec": {"containers": [{"resources": {
            "limits": {"cpu": 1, "memory": "1Gx"}, "requests": {"cpu": 0.5}}}]}});
        let bad = normalize_quantities(&mut v);
        assert_eq!(
            bad,
            vec![(
                "spec.containers[0].resources.limits[memory]".to_string(),
                "1Gx".to_string()
            )]
        );
        assert_eq!(
            v.pointer("/spec/containers/0/resources/limits/cpu"),
            Some(&serde_json::json!("1"))
        );
        assert_eq!(
            v.pointer("/spec/containers/0/resources/requests/cpu"),
            Some(&serde_json::json!("0.5"))
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "1Gx", "", "abc", "1..2", "Gi", "1 Gi", "1e", "1ee3", "--1", "1Ki2", ".",
        ] {
            assert_eq!(
                Quantity::parse(bad),
                Err(QUANTITY_FORMAT_ERROR.to_string()),
                "{bad}"
            );
        }
    }
}
