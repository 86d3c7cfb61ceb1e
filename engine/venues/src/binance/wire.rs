//! Decimals and JSON as Binance writes them: 10^-8 units formatted with exactly 8 fractional
//! digits (`"61837.63000000"`) and read back exactly, the shortest form for query strings, and the
//! small JSON writer the sim venue formats responses and events with.

use std::fmt::{self, Write as _};

use rt_core::{Price, SCALE};
use serde::Deserialize;

use super::errors::{OrderError, PRECISION};

/// Formats 10^-8 units with exactly 8 fractional digits (`"61837.63000000"`, `"-0.00100000"`).
pub fn format_units(units: i64) -> String {
    let mut out = String::with_capacity(24);
    write_units(&mut out, units);
    out
}

pub(super) fn write_units(out: &mut String, units: i64) {
    if units < 0 {
        out.push('-');
    }
    let abs = units.unsigned_abs();
    let scale = SCALE as u64;
    let _ = write!(out, "{}.{:08}", abs / scale, abs % scale);
}

/// Parses a signed decimal string into 10^-8 units with the engine's one decimal parser
/// (`rt_core::parse_signed_units`); the error names the field, as Binance's would.
pub fn parse_decimal(text: &str, name: &'static str) -> Result<i64, OrderError> {
    rt_core::parse_signed_units(text.as_bytes()).map_err(|e| OrderError::Invalid {
        name,
        value: text.to_owned(),
        reason: match e {
            rt_core::ParseDecimalError::TooPrecise => PRECISION,
            rt_core::ParseDecimalError::TooLarge => "too large",
            _ => "not a decimal number",
        },
    })
}

/// An unsigned decimal parameter (price, quantity): refuses a sign.
pub(super) fn parse_unsigned(text: &str, name: &'static str) -> Result<i64, OrderError> {
    if text.starts_with('-') {
        return Err(OrderError::Invalid {
            name,
            value: text.to_owned(),
            reason: "must not be negative",
        });
    }
    parse_decimal(text, name)
}

/// The shortest decimal form, for query strings (`"0.1"`, `"61837.63"`).
pub(super) fn short_units(units: i64) -> String {
    Price(units).to_string()
}

pub(super) fn json<'a, T: Deserialize<'a>>(
    text: &'a str,
    what: &'static str,
) -> Result<T, OrderError> {
    serde_json::from_str(text).map_err(|e| OrderError::Response {
        what,
        reason: e.to_string(),
    })
}

/// Appends a JSON string literal.
pub(super) fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `"key":"<decimal>",`.
pub(super) fn put_dec(out: &mut String, key: &str, units: i64) {
    let _ = write!(out, "\"{key}\":\"");
    write_units(out, units);
    out.push_str("\",");
}

pub(super) fn put_str(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, "\"{key}\":");
    json_string(out, value);
    out.push(',');
}

pub(super) fn put_num(out: &mut String, key: &str, value: impl fmt::Display) {
    let _ = write!(out, "\"{key}\":{value},");
}

pub(super) fn close_object(out: &mut String) {
    if out.ends_with(',') {
        out.pop();
    }
    out.push('}');
}

pub(super) fn dec_field(text: &str, name: &'static str) -> Result<i64, OrderError> {
    parse_decimal(text, name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(format_units(6_183_763_000_000), "61837.63000000");
        assert_eq!(format_units(-100_000), "-0.00100000");
        assert_eq!(format_units(0), "0.00000000");
        assert_eq!(parse_decimal("-0.00100000", "n"), Ok(-100_000));
        assert_eq!(parse_decimal("61837.63000000", "p"), Ok(6_183_763_000_000));
        for units in [0, 1, -1, 99_999_999, 123_456_789_012_345] {
            assert_eq!(parse_decimal(&format_units(units), "x"), Ok(units));
        }
    }
}
