//! `Fixed`: the manifest's decimal strings as `i64` fixed point with 8 decimals.
//!
//! Prices, sizes, limits and fees travel as decimal strings (`"0.01"`, `"-7.5"`) and are held as
//! integers counting units of 10^-8, so that nothing on the way to an order passes through a
//! float. Parsing is exact and refuses anything outside `^-?[0-9]{1,10}(\.[0-9]{1,8})?$`;
//! `Display` writes the shortest canonical form, the one the compiler writes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The grammar of a decimal string in the manifest (docs/manifest.md, "Encoding").
pub const DECIMAL_PATTERN: &str = r"^-?[0-9]{1,10}(\.[0-9]{1,8})?$";

const MAX_INT_DIGITS: usize = 10;
const MAX_FRAC_DIGITS: usize = 8;

/// A decimal string that does not match [`DECIMAL_PATTERN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("{text:?} is not a decimal string matching {DECIMAL_PATTERN}")]
    Malformed { text: String },
    #[error("{text:?} has {digits} integer digits, at most {MAX_INT_DIGITS} are allowed")]
    IntegerDigits { text: String, digits: usize },
    #[error("{text:?} has {digits} fractional digits, at most {MAX_FRAC_DIGITS} are allowed")]
    FractionDigits { text: String, digits: usize },
}

/// Why a decimal from the wire was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseDecimalError {
    #[error("empty decimal")]
    Empty,
    #[error("invalid byte {0:#04x} in a decimal")]
    InvalidByte(u8),
    #[error("more than {MAX_FRAC_DIGITS} fractional digits")]
    TooPrecise,
    #[error("more than {MAX_INT_DIGITS} integer digits")]
    TooLarge,
}

/// Parses an unsigned decimal such as `b"61837.63000000"` into units of 10^-8.
///
/// Extra trailing zeros beyond 8 fractional digits are accepted (they change nothing); any
/// other precision loss is an error.
#[inline]
pub fn parse_units(bytes: &[u8]) -> Result<i64, ParseDecimalError> {
    if bytes.is_empty() {
        return Err(ParseDecimalError::Empty);
    }
    let mut int: i64 = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'.' {
        let d = bytes[i].wrapping_sub(b'0');
        if d > 9 {
            return Err(ParseDecimalError::InvalidByte(bytes[i]));
        }
        int = int * 10 + i64::from(d);
        i += 1;
        if i > MAX_INT_DIGITS {
            return Err(ParseDecimalError::TooLarge);
        }
    }
    if i == 0 {
        return Err(ParseDecimalError::InvalidByte(bytes[0]));
    }
    let mut frac: i64 = 0;
    let mut digits = 0;
    if i < bytes.len() {
        i += 1; // the '.'
        if i == bytes.len() {
            return Err(ParseDecimalError::Empty);
        }
        while i < bytes.len() {
            let d = bytes[i].wrapping_sub(b'0');
            if d > 9 {
                return Err(ParseDecimalError::InvalidByte(bytes[i]));
            }
            if digits < MAX_FRAC_DIGITS {
                frac = frac * 10 + i64::from(d);
                digits += 1;
            } else if d != 0 {
                return Err(ParseDecimalError::TooPrecise);
            }
            i += 1;
        }
    }
    while digits < MAX_FRAC_DIGITS {
        frac *= 10;
        digits += 1;
    }
    Ok(int * Fixed::SCALE + frac)
}

/// Parses a decimal with an optional leading `-` (`b"-0.00100000"`, a commission or a journal's
/// cash) into units of 10^-8: [`parse_units`] on the digits, negated. The engine's one decimal
/// parser is `parse_units` (the Binance, OKX and Kraken codecs reach it through a SWAR fast path
/// that must agree with it, `rt_venues`' `scan::fast_decimal`); [`Fixed::parse`] checks the
/// manifest's stricter grammar (at most 8 fractional digits, named errors) and then calls it.
#[inline]
pub fn parse_signed_units(bytes: &[u8]) -> Result<i64, ParseDecimalError> {
    match bytes.split_first() {
        Some((b'-', digits)) => parse_units(digits).map(|units| -units),
        _ => parse_units(bytes),
    }
}

/// A decimal with 8 fractional digits, stored as an integer count of 10^-8.
///
/// Every string matching [`DECIMAL_PATTERN`] fits: 10 integer plus 8 fractional digits are at
/// most 10^18 - 1 units, below `i64::MAX` (about 9.2 * 10^18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fixed(i64);

impl Fixed {
    /// Units per 1: 10^8.
    pub const SCALE: i64 = 100_000_000;
    pub const ZERO: Fixed = Fixed(0);
    pub const ONE: Fixed = Fixed(Self::SCALE);

    /// The value in units of 10^-8.
    pub const fn from_raw(raw: i64) -> Fixed {
        Fixed(raw)
    }

    /// The raw count of 10^-8 units.
    pub const fn raw(self) -> i64 {
        self.0
    }

    /// Parses a decimal string; exact, no float involved.
    pub fn parse(text: &str) -> Result<Fixed, DecimalError> {
        let malformed = || DecimalError::Malformed {
            text: text.to_owned(),
        };
        let body = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = match body.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (body, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(malformed());
        }
        if int.len() > MAX_INT_DIGITS {
            return Err(DecimalError::IntegerDigits {
                text: text.to_owned(),
                digits: int.len(),
            });
        }
        let frac = frac.unwrap_or("");
        if frac.len() > MAX_FRAC_DIGITS {
            return Err(DecimalError::FractionDigits {
                text: text.to_owned(),
                digits: frac.len(),
            });
        }
        // The grammar holds: the engine's one parser gives the value (at most 18 digits in
        // all, so it cannot overflow).
        parse_signed_units(text.as_bytes())
            .map(Fixed)
            .map_err(|_| malformed())
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Whether `self` is an integer multiple of `step` (false for a zero step).
    pub const fn is_multiple_of(self, step: Fixed) -> bool {
        step.0 != 0 && self.0 % step.0 == 0
    }
}

impl fmt::Display for Fixed {
    /// The shortest canonical form: no trailing fractional zeros, no `.` for integers, no `-0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.0.unsigned_abs();
        let scale = Self::SCALE.unsigned_abs();
        let (int, mut frac) = (magnitude / scale, magnitude % scale);
        if self.0 < 0 {
            f.write_str("-")?;
        }
        write!(f, "{int}")?;
        if frac != 0 {
            let mut width = MAX_FRAC_DIGITS;
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            write!(f, ".{frac:0width$}")?;
        }
        Ok(())
    }
}

impl FromStr for Fixed {
    type Err = DecimalError;

    fn from_str(text: &str) -> Result<Fixed, DecimalError> {
        Fixed::parse(text)
    }
}

impl<'de> Deserialize<'de> for Fixed {
    /// Only from a string: a JSON number would already have passed through a float.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fixed, D::Error> {
        struct DecimalVisitor;

        impl Visitor<'_> for DecimalVisitor {
            type Value = Fixed;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Fixed, E> {
                Fixed::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(DecimalVisitor)
    }
}

impl Serialize for Fixed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for Fixed {
    fn schema_name() -> Cow<'static, str> {
        "Decimal".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DECIMAL_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn fx(text: &str) -> Fixed {
        Fixed::parse(text).unwrap()
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(fx("0").raw(), 0);
        assert_eq!(fx("-0").raw(), 0);
        assert_eq!(fx("0.01").raw(), 1_000_000);
        assert_eq!(fx("0.00000001").raw(), 1);
        assert_eq!(fx("-7.5").raw(), -750_000_000);
        assert_eq!(fx("5000").raw(), 500_000_000_000);
        assert_eq!(fx("0005.10").raw(), 510_000_000);
        assert_eq!(fx("9999999999.99999999").raw(), 999_999_999_999_999_999);
        assert_eq!(fx("-9999999999.99999999").raw(), -999_999_999_999_999_999);
        // 0.1 + 0.2 is exactly 0.3 here, unlike in binary floating point.
        assert_eq!(fx("0.1").raw() + fx("0.2").raw(), fx("0.3").raw());
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "", "-", ".", "1.", ".5", "-.5", "+1", " 5", "5 ", "1e3", "1E3", "1.2.3", "--1",
            "0x10", "1,5", "NaN", "inf", "١", "1_000", "-0.", "1.-5",
        ] {
            assert!(
                matches!(Fixed::parse(text), Err(DecimalError::Malformed { .. })),
                "{text:?} accepted"
            );
        }
        assert_eq!(
            Fixed::parse("12345678901"),
            Err(DecimalError::IntegerDigits {
                text: "12345678901".into(),
                digits: 11
            })
        );
        assert_eq!(
            Fixed::parse("0.000000001"),
            Err(DecimalError::FractionDigits {
                text: "0.000000001".into(),
                digits: 9
            })
        );
    }

    #[test]
    fn displays_shortest_form() {
        for (text, shown) in [
            ("0.01", "0.01"),
            ("5000", "5000"),
            ("5000.0", "5000"),
            ("-7.50", "-7.5"),
            ("-0", "0"),
            ("-0.00000001", "-0.00000001"),
            ("0.10000001", "0.10000001"),
            ("007", "7"),
        ] {
            assert_eq!(fx(text).to_string(), shown);
        }
    }

    #[test]
    fn multiples() {
        assert!(fx("0.002").is_multiple_of(fx("0.00001")));
        assert!(!fx("0.000015").is_multiple_of(fx("0.00001")));
        assert!(fx("-0.03").is_multiple_of(fx("0.01")));
        assert!(!fx("1").is_multiple_of(Fixed::ZERO));
    }

    #[test]
    fn serde_takes_strings_only() {
        assert_eq!(
            serde_json::from_str::<Fixed>(r#""2.5""#).unwrap(),
            fx("2.5")
        );
        for json in ["5", "2.5", "true", "null"] {
            let err = serde_json::from_str::<Fixed>(json).unwrap_err().to_string();
            assert!(err.contains("expected a decimal string"), "{json}: {err}");
        }
        let err = serde_json::from_str::<Fixed>(r#""1e3""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#""1e3" is not a decimal string"#), "{err}");
        assert_eq!(serde_json::to_string(&fx("-7.50")).unwrap(), r#""-7.5""#);
    }

    #[test]
    fn schema_is_a_patterned_string() {
        let schema = schemars::schema_for!(Fixed);
        assert_eq!(schema.get("type"), Some(&serde_json::json!("string")));
        assert_eq!(
            schema.get("pattern"),
            Some(&serde_json::json!(DECIMAL_PATTERN))
        );
    }

    /// An independent statement of the grammar, to check the parser against.
    fn matches_grammar(text: &str) -> bool {
        let body = text.strip_prefix('-').unwrap_or(text);
        let mut parts = body.splitn(2, '.');
        let digits = |s: &str, max: usize| {
            (1..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit())
        };
        let int = parts.next().unwrap_or("");
        digits(int, 10) && parts.next().map_or(true, |frac| digits(frac, 8))
    }

    /// The value of a matching string, computed through i128 arithmetic on its digits.
    fn reference_units(text: &str) -> i128 {
        let (negative, body) = text.strip_prefix('-').map_or((false, text), |b| (true, b));
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let padded = format!("{int}{frac:0<8}");
        let units: i128 = padded.parse().unwrap();
        if negative {
            -units
        } else {
            units
        }
    }

    proptest! {
        #[test]
        fn matching_strings_round_trip(text in r"-?[0-9]{1,10}(\.[0-9]{1,8})?") {
            let value = Fixed::parse(&text).unwrap();
            prop_assert_eq!(i128::from(value.raw()), reference_units(&text));
            let shown = value.to_string();
            prop_assert!(matches_grammar(&shown));
            prop_assert_eq!(Fixed::parse(&shown).unwrap(), value);
            // Canonical: printing is a fixed point and never leaves a trailing zero or "-0".
            prop_assert!(!(shown.contains('.') && shown.ends_with('0')));
            prop_assert!(shown != "-0");
        }

        #[test]
        fn raw_values_round_trip(raw in -999_999_999_999_999_999_i64..=999_999_999_999_999_999) {
            let value = Fixed::from_raw(raw);
            prop_assert_eq!(Fixed::parse(&value.to_string()).unwrap(), value);
        }

        #[test]
        fn non_matching_strings_are_refused(text in r"[-+0-9. eE]{0,22}") {
            prop_assert_eq!(Fixed::parse(&text).is_ok(), matches_grammar(&text));
        }

        #[test]
        fn arbitrary_strings_are_refused_unless_matching(text in any::<String>()) {
            prop_assert_eq!(Fixed::parse(&text).is_ok(), matches_grammar(&text));
        }
    }
}
