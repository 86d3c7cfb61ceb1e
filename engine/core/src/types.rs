//! Fixed-point prices and quantities, sides and ids: the vocabulary every other module speaks.
//!
//! `Price` and `Qty` count units of 10^-8 in an `i64`, the scale of the manifest's decimal
//! strings (`rt_manifest::Fixed`), so a limit from the manifest and a price from the wire compare
//! without conversion. Parsing from wire bytes is exact and allocation-free; nothing on the way
//! to an order passes through a float.

use std::fmt;

use rt_manifest::Fixed;

/// Units per 1.0 for [`Price`] and [`Qty`]: 10^8.
pub const SCALE: i64 = 100_000_000;
/// The engine's one decimal parser lives in the lowest crate, rt-manifest, beside the
/// manifest's `Fixed` (which checks its stricter grammar and then calls it): re-exported here
/// for the codecs, the journal and the sim.
pub use rt_manifest::{parse_signed_units, parse_units, ParseDecimalError};

fn write_units(f: &mut fmt::Formatter<'_>, units: i64) -> fmt::Result {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let int = abs / SCALE as u64;
    let frac = abs % SCALE as u64;
    if frac == 0 {
        return write!(f, "{sign}{int}");
    }
    let mut text = format!("{frac:08}");
    while text.ends_with('0') {
        text.pop();
    }
    write!(f, "{sign}{int}.{text}")
}

macro_rules! fixed_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(transparent)]
        pub struct $name(pub i64);

        impl $name {
            pub const ZERO: $name = $name(0);

            /// Parses an unsigned wire decimal (`b"0.00100000"`).
            #[inline]
            pub fn parse(bytes: &[u8]) -> Result<$name, ParseDecimalError> {
                parse_units(bytes).map($name)
            }

            /// Whole units of 1.0 (`1` means 10^8 raw units).
            pub const fn from_int(value: i64) -> $name {
                $name(value * SCALE)
            }

            pub const fn raw(self) -> i64 {
                self.0
            }

            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }

            /// True when this value is a whole multiple of `step` (a tick or a lot).
            pub const fn is_multiple_of(self, step: $name) -> bool {
                step.0 > 0 && self.0 % step.0 == 0
            }
        }

        impl From<Fixed> for $name {
            fn from(value: Fixed) -> $name {
                $name(value.raw())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_units(f, self.0)
            }
        }

        impl std::ops::Add for $name {
            type Output = $name;
            #[inline]
            fn add(self, rhs: $name) -> $name {
                $name(self.0 + rhs.0)
            }
        }

        impl std::ops::Sub for $name {
            type Output = $name;
            #[inline]
            fn sub(self, rhs: $name) -> $name {
                $name(self.0 - rhs.0)
            }
        }

        impl std::ops::Neg for $name {
            type Output = $name;
            #[inline]
            fn neg(self) -> $name {
                $name(-self.0)
            }
        }
    };
}

fixed_newtype!(
    /// A price in units of 10^-8 of the quote currency.
    Price
);
fixed_newtype!(
    /// A quantity (or a signed position) in units of 10^-8 of the base asset.
    Qty
);

/// Notional value `price * qty` in units of 10^-8 of the quote currency, computed in i128 so
/// that it cannot overflow on the way.
#[inline]
pub fn notional(price: Price, qty: Qty) -> i128 {
    i128::from(price.0) * i128::from(qty.0) / i128::from(SCALE)
}

/// Order or aggressor side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// +1 for a buy, -1 for a sell: the sign a fill gives to the position.
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

/// Nanoseconds since the Unix epoch. The core never reads a clock: time arrives with events.
pub type Nanos = i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binance_decimals_exactly() {
        assert_eq!(
            Price::parse(b"61837.63000000"),
            Ok(Price(6_183_763_000_000))
        );
        assert_eq!(Qty::parse(b"0.00100000"), Ok(Qty(100_000)));
        assert_eq!(Qty::parse(b"3.330"), Ok(Qty(333_000_000)));
        assert_eq!(Qty::parse(b"0"), Ok(Qty(0)));
        assert_eq!(Price::parse(b"1.0000000000"), Ok(Price(SCALE)));
    }

    #[test]
    fn refuses_what_is_not_a_decimal() {
        assert_eq!(Price::parse(b""), Err(ParseDecimalError::Empty));
        assert_eq!(Price::parse(b"1."), Err(ParseDecimalError::Empty));
        assert_eq!(
            Price::parse(b".5"),
            Err(ParseDecimalError::InvalidByte(b'.'))
        );
        assert_eq!(
            Price::parse(b"1e3"),
            Err(ParseDecimalError::InvalidByte(b'e'))
        );
        assert_eq!(
            Price::parse(b"-1"),
            Err(ParseDecimalError::InvalidByte(b'-'))
        );
        assert_eq!(
            Price::parse(b"0.000000001"),
            Err(ParseDecimalError::TooPrecise)
        );
        assert_eq!(
            Price::parse(b"12345678901"),
            Err(ParseDecimalError::TooLarge)
        );
    }

    #[test]
    fn signed_decimals_negate_the_unsigned_parse() {
        assert_eq!(parse_signed_units(b"-0.00100000"), Ok(-100_000));
        assert_eq!(parse_signed_units(b"61837.63"), Ok(6_183_763_000_000));
        assert_eq!(parse_signed_units(b"-0"), Ok(0));
        assert_eq!(parse_signed_units(b"-"), Err(ParseDecimalError::Empty));
        assert_eq!(
            parse_signed_units(b"--1"),
            Err(ParseDecimalError::InvalidByte(b'-'))
        );
        assert_eq!(
            parse_signed_units(b"+1"),
            Err(ParseDecimalError::InvalidByte(b'+'))
        );
    }

    proptest::proptest! {
        /// On the manifest's grammar (`-?[0-9]{1,10}(.[0-9]{1,8})?`) the one parser and the
        /// manifest's `Fixed` agree, and `Fixed` accepts nothing the parser refuses.
        #[test]
        fn the_manifest_grammar_parses_alike(
            text in "-?[0-9]{1,10}(\\.[0-9]{1,8})?",
        ) {
            let fixed = Fixed::parse(&text).map(Fixed::raw);
            proptest::prop_assert_eq!(fixed.ok(), parse_signed_units(text.as_bytes()).ok());
        }

        /// Anything else `Fixed` reads, the parser reads the same (the parser also takes
        /// zeros past the 8th decimal, as the venues send them).
        #[test]
        fn fixed_never_reads_what_the_parser_reads_differently(text in "[-0-9.eE+ ]{0,24}") {
            if let Ok(fixed) = Fixed::parse(&text) {
                proptest::prop_assert_eq!(parse_signed_units(text.as_bytes()), Ok(fixed.raw()));
            }
        }

        /// The previous signed parsers (the journal's `signed_units`, the Binance order codec's
        /// `parse_decimal`: strip one `-`, parse the rest, negate) and this one agree.
        #[test]
        fn agrees_with_the_previous_signed_parsers(text in "-?[-0-9.]{0,22}") {
            let previous = match text.strip_prefix('-') {
                Some(rest) => parse_units(rest.as_bytes()).map(|u| -u),
                None => parse_units(text.as_bytes()),
            };
            proptest::prop_assert_eq!(parse_signed_units(text.as_bytes()), previous);
        }
    }

    #[test]
    fn displays_the_shortest_form() {
        assert_eq!(Price(6_183_763_000_000).to_string(), "61837.63");
        assert_eq!(Qty(-150_000_000).to_string(), "-1.5");
        assert_eq!(Qty(0).to_string(), "0");
    }

    #[test]
    fn notional_does_not_overflow() {
        let price = Price::from_int(9_000_000_000);
        let qty = Qty::from_int(9_000_000_000);
        assert_eq!(
            notional(price, qty),
            81_000_000_000_000_000_000 * i128::from(SCALE)
        );
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_round_trips(units in 0i64..10_000_000_000 * SCALE) {
            let text = Price(units).to_string();
            proptest::prop_assert_eq!(Price::parse(text.as_bytes()), Ok(Price(units)));
        }
    }
}
