//! A JSON scanner for exchange frames: a bounds-checked cursor that reads exactly the fields a
//! codec asks for, borrowing from the frame (no allocation), with fast paths for the quoted
//! decimals and integers every venue sends (8 bytes at a time). Shared by the Binance, OKX and
//! Kraken codecs; each keeps its own field dispatch.

use rt_core::{Level, Price, Qty};

use crate::binance::DecodeError;

#[inline]
pub(crate) fn decimal(bytes: &[u8], field: &'static str) -> Result<i64, DecodeError> {
    rt_core::parse_units(bytes).map_err(|source| DecodeError::BadDecimal { field, source })
}

/// A decimal field: parsed on the fast path, or kept raw (to be parsed, and refused if bad, only
/// when the message turns out to need it: other messages may put anything in these keys).
#[derive(Clone, Copy)]
pub(crate) enum Dec<'a> {
    Units(i64),
    Raw(&'a [u8]),
}

impl Dec<'_> {
    #[inline]
    pub(crate) fn units(self, field: &'static str) -> Result<i64, DecodeError> {
        match self {
            Dec::Units(v) => Ok(v),
            Dec::Raw(bytes) => decimal(bytes, field),
        }
    }
}

/// A cursor over a frame. Every access is bounds-checked; errors carry the offset.
pub(crate) struct Scan<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    pub(crate) fn ws(&mut self) {
        let mut i = self.i;
        while let Some(&c) = self.b.get(i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            i += 1;
        }
        self.i = i;
    }

    /// The next non-blank byte, not consumed.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Result<u8, DecodeError> {
        // Binance sends compact JSON: the next byte is almost always the token itself.
        if let Some(&c) = self.b.get(self.i) {
            if c > b' ' {
                return Ok(c);
            }
        }
        self.ws();
        self.b
            .get(self.i)
            .copied()
            .ok_or(DecodeError::Truncated { at: self.i })
    }

    /// The next non-blank byte, consumed.
    #[inline]
    pub(crate) fn next_byte(&mut self) -> Result<u8, DecodeError> {
        let c = self.peek()?;
        self.i += 1;
        Ok(c)
    }

    #[inline]
    pub(crate) fn expect(&mut self, want: u8, expected: &'static str) -> Result<(), DecodeError> {
        let c = self.peek()?;
        if c != want {
            return Err(DecodeError::Unexpected {
                byte: c,
                at: self.i,
                expected,
            });
        }
        self.i += 1;
        Ok(())
    }

    /// A string's raw bytes, between the quotes (escapes are skipped over, not decoded: no
    /// field this decoder reads contains one). Looks at 8 bytes at a time for the closing quote.
    #[inline]
    pub(crate) fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        self.expect(b'"', "'\"'")?;
        let b = self.b;
        let start = self.i;
        let mut i = start;
        loop {
            i = quote_or_escape(b, i);
            match b.get(i) {
                Some(b'"') => break,
                Some(_) => i += 2,
                None => return Err(DecodeError::Truncated { at: b.len() }),
            }
        }
        self.i = i + 1;
        b.get(start..i)
            .ok_or(DecodeError::Truncated { at: b.len() })
    }

    /// A string's bytes, or a bare number token (decimals may come unquoted).
    #[inline]
    pub(crate) fn scalar(&mut self) -> Result<&'a [u8], DecodeError> {
        if self.peek()? == b'"' {
            return self.string();
        }
        let start = self.i;
        let mut i = start;
        while let Some(&c) = self.b.get(i) {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            i += 1;
        }
        self.i = i;
        if i == start {
            return Err(self.unexpected("a value"));
        }
        Ok(&self.b[start..i])
    }

    /// A decimal value: the common `"123.45"` is parsed in the same pass that finds its end;
    /// anything else (whitespace, a bare number, a sign, too many digits) comes back raw.
    #[inline(always)]
    pub(crate) fn dec(&mut self) -> Result<Dec<'a>, DecodeError> {
        if let Some((units, end)) = fast_decimal(self.b, self.i) {
            self.i = end;
            return Ok(Dec::Units(units));
        }
        self.scalar().map(Dec::Raw)
    }

    #[inline(always)]
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let at = self.i;
        self.ws();
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut v: u64 = 0;
        // Eight bytes at a time while the frame has them (ids and times are 10 to 13 digits).
        while let Some(w) = load8(b, i) {
            let n = digit_run(w);
            if n == 0 || i - start + n > 19 {
                break;
            }
            let digits = if n == 8 {
                w
            } else {
                let shift = 8 * (8 - n) as u32;
                (w << shift) | (ZEROS >> (64 - shift))
            };
            v = v * POW10_U64[n] + swar_value(digits) as u64;
            i += n;
            if n < 8 {
                break;
            }
        }
        // The rest one by one; up to 19 digits cannot overflow, from the 20th it is checked.
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if i - start < 19 {
                v = v * 10 + u64::from(d);
            } else {
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d)))
                    .ok_or(DecodeError::BadInteger { field, at })?;
            }
            i += 1;
        }
        self.i = i;
        let ends_well = matches!(
            b.get(i),
            None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
        );
        if i == start || !ends_well {
            return Err(DecodeError::BadInteger { field, at: start });
        }
        Ok(v)
    }

    pub(crate) fn boolean(&mut self) -> Result<bool, DecodeError> {
        self.ws();
        let rest = self.b.get(self.i..).unwrap_or_default();
        if rest.starts_with(b"true") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Ok(false)
        } else {
            Err(self.unexpected("true or false"))
        }
    }

    /// `[["price","qty"], ...]` into `out` (cleared first).
    #[inline]
    pub(crate) fn levels(
        &mut self,
        out: &mut Vec<Level>,
        field: &'static str,
    ) -> Result<(), DecodeError> {
        out.clear();
        self.expect(b'[', "'['")?;
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            // Fast path: `["p","q"]` exactly as Binance writes it.
            if let Some((price, qty, end)) = fast_level(self.b, self.i) {
                self.i = end;
                out.push(Level::new(Price(price), Qty(qty)));
            } else {
                self.expect(b'[', "'['")?;
                let price = self.dec()?.units(field)?;
                self.expect(b',', "','")?;
                let qty = self.dec()?.units(field)?;
                self.expect(b']', "']'")?;
                out.push(Level::new(Price(price), Qty(qty)));
            }
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => match self.next_byte()? {
                    b',' => {}
                    b']' => return Ok(()),
                    byte => {
                        return Err(DecodeError::Unexpected {
                            byte,
                            at: self.i - 1,
                            expected: "',' or ']'",
                        })
                    }
                },
            }
        }
    }

    /// Skips any JSON value. Containers are skipped by counting brackets outside strings,
    /// without recursion, so deep nesting cannot overflow the stack.
    pub(crate) fn skip_value(&mut self) -> Result<(), DecodeError> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut in_string = false;
                while let Some(&c) = self.b.get(self.i) {
                    self.i += 1;
                    if in_string {
                        match c {
                            b'\\' => self.i += 1,
                            b'"' => in_string = false,
                            _ => {}
                        }
                        continue;
                    }
                    match c {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                }
                Err(DecodeError::Truncated { at: self.b.len() })
            }
            _ => self.scalar().map(|_| ()),
        }
    }

    /// After a member of a list or object: `true` at a `,` (another member follows), `false`
    /// at `close` (consumed either way).
    #[inline]
    pub(crate) fn more(&mut self, close: u8) -> Result<bool, DecodeError> {
        match self.next_byte()? {
            b',' => Ok(true),
            c if c == close => Ok(false),
            byte => Err(DecodeError::Unexpected {
                byte,
                at: self.i - 1,
                expected: if close == b']' {
                    "',' or ']'"
                } else {
                    "',' or '}'"
                },
            }),
        }
    }

    pub(crate) fn unexpected(&self, expected: &'static str) -> DecodeError {
        match self.b.get(self.i) {
            Some(&byte) => DecodeError::Unexpected {
                byte,
                at: self.i,
                expected,
            },
            None => DecodeError::Truncated { at: self.i },
        }
    }
}

/// The index of the first `"` or `\\` at or after `b[i]` (`b.len()` or beyond when none),
/// looking at 8 bytes at a time.
#[inline(always)]
pub(crate) fn quote_or_escape(b: &[u8], mut i: usize) -> usize {
    while let Some(v) = load8(b, i) {
        let hits = has_byte(v, b'"') | has_byte(v, b'\\');
        if hits != 0 {
            // The lowest flag is exact: it points at the first quote or backslash.
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' {
            return i;
        }
        i += 1;
    }
    i
}

/// `["p","q"]` at `b[i]`: price, qty and the index after the `]`.
#[inline(always)]
pub(crate) fn fast_level(b: &[u8], i: usize) -> Option<(i64, i64, usize)> {
    if *b.get(i)? != b'[' {
        return None;
    }
    let (price, j) = fast_decimal(b, i + 1)?;
    if *b.get(j)? != b',' {
        return None;
    }
    let (qty, k) = fast_decimal(b, j + 1)?;
    if *b.get(k)? != b']' {
        return None;
    }
    Some((price, qty, k + 1))
}

/// Parses `"<digits>[.<digits>]"` starting at `b[i]` (the opening quote) into units of 10^-8,
/// returning the value and the index after the closing quote; `None` for anything else (the
/// caller then takes the general path, which also gives the precise error). Runs of up to 8
/// digits are found and converted 8 bytes at a time (SWAR) when the frame has 8 bytes left.
#[inline(always)]
pub(crate) fn fast_decimal(b: &[u8], i: usize) -> Option<(i64, usize)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let mut j = i + 1;
    let int = match load8(b, j) {
        Some(v) if (1..8).contains(&digit_run(v)) => {
            let n = digit_run(v);
            j += n;
            // Right-align the n digits, padding with leading '0's.
            let shift = 8 * (8 - n) as u32;
            swar_value((v << shift) | (ZEROS >> (64 - shift)))
        }
        _ => {
            let (int, end) = int_digits(b, j)?;
            j = end;
            int
        }
    };
    let mut frac: i64 = 0;
    if *b.get(j)? == b'.' {
        j += 1;
        match load8(b, j) {
            Some(v) if digit_run(v) > 0 => {
                let n = digit_run(v);
                j += n;
                // Left-align the n digits, padding with trailing '0's: the value in 10^-8.
                let keep = if n == 8 { !0 } else { (1u64 << (8 * n)) - 1 };
                frac = swar_value((v & keep) | (ZEROS & !keep));
                // Zeros past the 8th decimal do not change the value (Kraken writes some
                // prices with 9 decimals); another digit there is the general path's error.
                if n == 8 {
                    while *b.get(j)? == b'0' {
                        j += 1;
                    }
                }
            }
            _ => {
                let mut digits = 0;
                loop {
                    let d = b.get(j)?.wrapping_sub(b'0');
                    if d > 9 {
                        break;
                    }
                    frac = frac * 10 + i64::from(d);
                    digits += 1;
                    j += 1;
                    if digits > 8 {
                        return None;
                    }
                }
                if digits == 0 {
                    return None;
                }
                frac *= POW10[8 - digits];
            }
        }
    }
    if *b.get(j)? != b'"' {
        return None;
    }
    Some((int * rt_core::SCALE + frac, j + 1))
}

/// [`fast_decimal`] for the decimals of OKX and Kraken levels, with one digit conversion
/// instead of two where it can: integer and fraction digits that fit in 8 bytes together
/// (`"30243.5"`, `"5.123"`) are joined into one word, and the fraction of a `"0.<digits>"` (a
/// size) is converted alone. Integers of 8 digits or more are [`fast_decimal`]'s.
#[inline(always)]
pub(crate) fn text_decimal(b: &[u8], i: usize) -> Option<(i64, usize)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let (Some(v), Some(w)) = (load8(b, i + 1), load8(b, i + 9)) else {
        return fast_decimal(b, i);
    };
    let n = digit_run(v);
    if n == 0 || n == 8 {
        return fast_decimal(b, i);
    }
    match (v >> (8 * n)) as u8 {
        b'"' => {
            // Integer digits alone, right-aligned over leading '0's.
            let shift = 8 * (8 - n) as u32;
            let int = swar_value((v << shift) | (ZEROS >> (64 - shift)));
            return Some((int * rt_core::SCALE, i + n + 2));
        }
        b'.' => {}
        _ => return None,
    }
    let j = i + n + 2;
    // The fraction's first 8 bytes: `w` moved back over the n + 1 bytes before them, the
    // gap filled from `v` (one load fewer than loading at `j`; `v` shifted in two steps, as
    // the gap is 64 bits where n is 7).
    let gap = 8 * (n + 1) as u32;
    let f = (w << (64 - gap)) | (v >> (gap - 1) >> 1);
    let m = digit_run(f);
    if m == 0 {
        return None;
    }
    let (frac, end) = if m < 8 {
        if (f >> (8 * m)) as u8 != b'"' {
            return None;
        }
        if n + m <= 8 {
            // The n integer and m fraction digits side by side, right-aligned over '0's
            // (two shifts: one by 64 would overflow where n + m is 8).
            let digits = (v & low_bytes(n)) | ((f & low_bytes(m)) << (8 * n));
            let shift = 8 * (8 - n - m) as u32;
            let value = swar_value((digits << shift) | (ZEROS >> 1 >> (63 - shift)));
            return Some((value * POW10[8 - m], j + m + 1));
        }
        // Left-aligned, padded with trailing '0's: the value in 10^-8.
        let keep = low_bytes(m);
        (swar_value((f & keep) | (ZEROS & !keep)), j + m)
    } else {
        // Zeros past the 8th decimal do not change the value (Kraken writes some prices with
        // 9 decimals); another digit there is the general path's error.
        let mut e = j + 8;
        while *b.get(e)? == b'0' {
            e += 1;
        }
        if *b.get(e)? != b'"' {
            return None;
        }
        (swar_value(f), e)
    };
    // A size below 1 (`0.`) needs no second conversion.
    let int = if n == 1 && v as u8 == b'0' {
        0
    } else {
        let shift = 8 * (8 - n) as u32;
        swar_value((v << shift) | (ZEROS >> (64 - shift)))
    };
    Some((int * rt_core::SCALE + frac, end + 1))
}

/// The low `n` bytes of a word (n < 8).
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    (1u64 << (8 * n)) - 1
}

/// Digits one by one (up to 10) from `b[j]`: the value and the index after them.
#[inline]
pub(crate) fn int_digits(b: &[u8], mut j: usize) -> Option<(i64, usize)> {
    const MAX_INT_DIGITS: usize = 10;
    let start = j;
    let mut int: i64 = 0;
    loop {
        let d = b.get(j)?.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        int = int * 10 + i64::from(d);
        j += 1;
        if j - start > MAX_INT_DIGITS {
            return None;
        }
    }
    (j > start).then_some((int, j))
}

pub(crate) const ZEROS: u64 = 0x3030_3030_3030_3030;

#[inline(always)]
pub(crate) fn load8(b: &[u8], j: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(j..j + 8)?.try_into().ok()?))
}

/// Flags (high bit of the byte) where `v` holds `byte`; the lowest flag is exact, higher ones
/// may be spurious (borrows), which is all a search for the first match needs.
#[inline(always)]
pub(crate) fn has_byte(v: u64, byte: u8) -> u64 {
    let x = v ^ (0x0101_0101_0101_0101 * u64::from(byte));
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080
}

/// How many of the 8 bytes (in memory order) are ASCII digits before the first that is not.
#[inline(always)]
pub(crate) fn digit_run(v: u64) -> usize {
    // XOR with '0' leaves a digit 0..=9; adding 0x76 sets the high bit of anything above 9,
    // and a byte that had it set already (not ASCII, or ASCII above '?') keeps it in the OR. A
    // carry out of a non-digit byte can only spoil the bytes after it, which do not count.
    let t = v ^ ZEROS;
    let bad = (t | t.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    (bad.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits (first byte most significant), branch-free: pairs of
/// digits first, then the four pairs in two multiplies (each pair times its power of 100,
/// the sum landing in the high half), one multiply fewer than three rounds of pairing; every
/// OKX or Kraken level takes four of these, so the multiplies are a large part of its cost.
#[inline(always)]
pub(crate) fn swar_value(v: u64) -> i64 {
    const PAIRS: u64 = 0x0000_00FF_0000_00FF;
    // 100 and 1_000_000 (pairs 0 and 2), 1 and 10_000 (pairs 1 and 3), into bits 32..64.
    const HIGH_PAIRS: u64 = 100 + (1_000_000 << 32);
    const LOW_PAIRS: u64 = 1 + (10_000 << 32);
    let v = v - ZEROS;
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v = (v & PAIRS)
        .wrapping_mul(HIGH_PAIRS)
        .wrapping_add(((v >> 16) & PAIRS).wrapping_mul(LOW_PAIRS));
    (v >> 32) as i64
}

pub(crate) const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

pub(crate) const POW10: [i64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Eight ASCII digits to their value; `None` unless all eight are digits.
#[cfg(test)]
pub(crate) fn eight_digits(bytes: &[u8]) -> Option<i64> {
    let v = u64::from_le_bytes(bytes.try_into().ok()?);
    (digit_run(v) == 8).then(|| swar_value(v))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The digit run against the plain count, for every byte value at every position after
    /// a run of digits (and the rest digits or not).
    #[test]
    fn digit_runs_count_the_leading_digits() {
        let plain = |w: &[u8; 8]| w.iter().take_while(|c| c.is_ascii_digit()).count();
        for pos in 0..8 {
            for byte in 0..=255u8 {
                for fill in [b'7', b'x', 0xFF, 0x00] {
                    let mut w = [fill; 8];
                    w[..pos].copy_from_slice(&b"12345678"[..pos]);
                    w[pos] = byte;
                    assert_eq!(digit_run(u64::from_le_bytes(w)), plain(&w), "{w:?}");
                }
            }
        }
    }

    /// The eight-digit value against the plain sum, on every digit at every position and
    /// on pseudo-random words.
    #[test]
    fn eight_digits_read_as_their_value() {
        let plain = |d: &[u8; 8]| d.iter().fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut cases = vec![*b"00000000", *b"99999999", *b"12345678", *b"00000001"];
        for pos in 0..8 {
            for d in b'0'..=b'9' {
                let mut c = *b"00000000";
                c[pos] = d;
                cases.push(c);
            }
        }
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(std::array::from_fn(|k| b'0' + (x >> (5 * k)) as u8 % 10));
        }
        for c in cases {
            assert_eq!(eight_digits(&c), Some(plain(&c)), "{:?}", c);
        }
    }

    /// The level decimal against the general one on crafted texts (every split of integer
    /// and fraction digits, zeros, too many digits, junk after them) in frames that end right
    /// after them or go on.
    #[test]
    fn the_level_decimal_reads_what_the_general_path_does() {
        let mut cases: Vec<String> = vec![
            "0".into(),
            "0.0".into(),
            "00.10".into(),
            "0.000000001".into(),
            "0.000000010".into(),
            "1.".into(),
            ".5".into(),
            "1.2.3".into(),
            "12a".into(),
            "1.5x".into(),
            "".into(),
        ];
        for n in 1..=12 {
            for m in 0..=10 {
                let int: String = (0..n).map(|k| char::from(b'1' + (k % 9) as u8)).collect();
                let frac: String = (0..m).map(|k| char::from(b'9' - (k % 10) as u8)).collect();
                cases.push(if m == 0 {
                    int.clone()
                } else {
                    format!("{int}.{frac}")
                });
                cases.push(format!("0.{frac}"));
            }
        }
        for case in &cases {
            for tail in ["", "\"", "\",\"0\",\"12\"]"] {
                let frame = format!("\"{case}{tail}");
                let b = frame.as_bytes();
                let want = fast_decimal(b, 0);
                assert_eq!(text_decimal(b, 0), want, "{frame}");
                if let Some((v, end)) = want {
                    assert_eq!(Ok(v), rt_core::parse_units(case.as_bytes()), "{frame}");
                    assert_eq!(end, case.len() + 2);
                }
            }
        }
    }

    /// Every quoted string of the bundled capture's first frames (prices, quantities, and
    /// whatever else is quoted): where the SWAR fast path reads a decimal, the engine's one
    /// parser (`rt_core::parse_units`) reads the same value, and the signed form (journal,
    /// commissions) agrees with it on every one.
    #[test]
    fn the_fast_path_agrees_with_the_one_parser_on_the_real_capture() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/binance/spot_btcusdt_20240808.gz");
        let mut frames = crate::FrameReader::open(&path).unwrap();
        let (mut checked, mut fast) = (0u64, 0u64);
        let mut n = 0;
        while let Some(frame) = frames.next_frame() {
            let b = frame.unwrap().bytes;
            let mut i = 0;
            while let Some(off) = b[i..].iter().position(|&c| c == b'"') {
                let start = i + off;
                let Some(len) = b[start + 1..].iter().position(|&c| c == b'"') else {
                    break;
                };
                let text = &b[start + 1..start + 1 + len];
                let slow = rt_core::parse_units(text).ok();
                if let Some((v, end)) = fast_decimal(b, start) {
                    assert_eq!(Some(v), slow, "{:?}", String::from_utf8_lossy(text));
                    assert_eq!(end, start + len + 2);
                    fast += 1;
                }
                assert_eq!(rt_core::parse_signed_units(text).ok(), slow);
                checked += 1;
                i = start + len + 2;
            }
            n += 1;
            if n == 20_000 {
                break;
            }
        }
        assert!(fast > 100_000, "{fast} decimals of {checked} strings");
    }
}
