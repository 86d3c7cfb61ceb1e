//! OKX's level lists (`"asks"`, `"bids"` of `books`) read the way OKX writes them: every level
//! `["<price>","<size>","0","<orders>"]` with no blank, decimals of at most 7 integer and 8
//! fraction digits (15 bytes), the list's levels separated by a bare `,`. One level is a few
//! word loads and masks (a decimal is the word after its opening quote, and the next one where
//! the fraction runs past it), one digit conversion per decimal (none for a deletion's `"0"`),
//! and the two texts copied as 16-byte words.
//!
//! Anything else anywhere in a list (a blank, an escape, another tail, a longer decimal, the
//! frame ending within a word of it) makes the whole list read again by the general reader,
//! [`text_levels`], from its `[`: what a list gives, values, texts or the error, is always what
//! that reader gives. The tests check this on the capture and on arbitrary lists.

use crate::binance::DecodeError;
use crate::checksum::{text_levels, Text, TextLevel};
use crate::scan::{digit_run, load8, swar_value, Scan, POW10, ZEROS};

/// `[ level, .. ]` at the scanner into `out` (appended), as [`text_levels`] reads it (without
/// checksum marks, which OKX's checksum does not need).
#[inline]
pub(crate) fn levels(s: &mut Scan<'_>, out: &mut Vec<TextLevel>) -> Result<(), DecodeError> {
    let (start, had) = (s.i, out.len());
    if let Some(end) = fast_levels(s.b, s.i, out) {
        s.i = end;
        return Ok(());
    }
    out.truncate(had);
    s.i = start;
    text_levels(s, out, false)
}

/// The list at `b[i]` (its `[`), every level written as OKX writes it: the index after its `]`,
/// or `None` (with some levels perhaps pushed) at the first thing that is not.
#[inline(always)]
fn fast_levels(b: &[u8], i: usize, out: &mut Vec<TextLevel>) -> Option<usize> {
    if *b.get(i)? != b'[' {
        return None;
    }
    let mut i = i + 1;
    if *b.get(i)? == b']' {
        return Some(i + 1);
    }
    loop {
        let end = level(b, i, out)?;
        match *b.get(end)? {
            b',' => i = end + 1,
            b']' => return Some(end + 1),
            _ => return None,
        }
    }
}

/// One level at `b[i]` (its `[`) pushed on `out`: the index after its `]`.
#[inline(always)]
fn level(b: &[u8], i: usize, out: &mut Vec<TextLevel>) -> Option<usize> {
    // `["`
    if load8(b, i)? & 0xFFFF != u64::from(u16::from_le_bytes(*b"[\"")) {
        return None;
    }
    let p = i + 2;
    let (price, j) = decimal(b, p)?;
    // `","` between the price's closing quote and the size's text.
    if load8(b, j)? & 0xFF_FFFF != u64::from_le_bytes(*b"\",\"\0\0\0\0\0") {
        return None;
    }
    let q = j + 3;
    // Two sizes before the general decimal: a deletion's `"0"` (a third of an update's
    // levels) and `"0.<digits>"` (most spot sizes).
    let head = load8(b, q)? & 0xFFFF;
    let (qty, k) = if head == u64::from(u16::from_le_bytes(*b"0\"")) {
        (0, q + 1)
    } else if head == u64::from(u16::from_le_bytes(*b"0.")) {
        below_one(b, q)?
    } else {
        decimal(b, q)?
    };
    // `","0","<1 to 6 digits>"]` after the size's text; the usual single digit in one word.
    let tail = load8(b, k)?;
    if tail & 0x00FF_FFFF_FFFF_FFFF != u64::from_le_bytes(*b"\",\"0\",\"\0") {
        return None;
    }
    let n = if ((tail >> 56) as u8).wrapping_sub(b'0') < 10 && *b.get(k + 8)? == b'"' {
        1
    } else {
        let orders = load8(b, k + 7)?;
        let n = digit_run(orders);
        if n == 0 || n > 6 || (orders >> (8 * n)) as u8 != b'"' {
            return None;
        }
        n
    };
    if *b.get(k + 8 + n)? != b']' {
        return None;
    }
    out.push(TextLevel {
        price,
        qty,
        price_text: Text::from_frame(b, p, j, false)?,
        qty_text: Text::from_frame(b, q, k, false)?,
    });
    Some(k + 9 + n)
}

/// `<digits>[.<digits>]"` at `b[p]` (the text after the opening quote), 1 to 7 integer digits
/// and, when there is a point, 1 to 8 fraction digits, at most 15 bytes in all: the value in
/// units of 10^-8 and the index of the closing quote.
#[inline(always)]
fn decimal(b: &[u8], p: usize) -> Option<(i64, usize)> {
    let v = load8(b, p)?;
    let odd = non_digits(v);
    let n = (odd.trailing_zeros() / 8) as usize;
    if n == 0 || n == 8 {
        return None;
    }
    match (v >> (8 * n)) as u8 {
        b'"' => return Some((right_aligned(v, n) * rt_core::SCALE, p + n)),
        b'.' => {}
        _ => return None,
    }
    let rest = odd & (odd - 1);
    if rest != 0 {
        // The text ends within the word: its digits without the point, as one number.
        let end = (rest.trailing_zeros() / 8) as usize;
        let decimals = end - n - 1;
        if decimals == 0 || (v >> (8 * end)) as u8 != b'"' {
            return None;
        }
        let low = (1u64 << (8 * n)) - 1;
        let digits = (v & low) | ((v >> 8) & !low);
        return Some((
            right_aligned(digits, end - 1) * POW10[8 - decimals],
            p + end,
        ));
    }
    // The fraction runs into the next word.
    let w = load8(b, p + 8)?;
    let m = (non_digits(w).trailing_zeros() / 8) as usize;
    let decimals = 7 - n + m;
    if m == 8 || decimals == 0 || decimals > 8 || (w >> (8 * m)) as u8 != b'"' {
        return None;
    }
    // The fraction's bytes from both words.
    let frac = fraction((v >> (8 * n + 7) >> 1) | (w << (8 * (7 - n))), decimals);
    let int = if n == 1 {
        i64::from((v as u8).wrapping_sub(b'0'))
    } else {
        right_aligned(v, n)
    };
    Some((int * rt_core::SCALE + frac, p + 8 + m))
}

/// `0.<1 to 8 digits>"` at `b[p]`, most of OKX's spot sizes: [`decimal`] for that shape, with
/// the fraction's 8 bytes loaded as one word.
#[inline(always)]
fn below_one(b: &[u8], p: usize) -> Option<(i64, usize)> {
    let f = load8(b, p + 2)?;
    let decimals = (non_digits(f).trailing_zeros() / 8) as usize;
    let close = if decimals == 8 {
        *b.get(p + 10)?
    } else {
        (f >> (8 * decimals)) as u8
    };
    if decimals == 0 || close != b'"' {
        return None;
    }
    Some((fraction(f, decimals), p + 2 + decimals))
}

/// The value in units of 10^-8 of a fraction's first `decimals` bytes of `f` (digits,
/// 1 <= decimals <= 8), padded with trailing '0's.
#[inline(always)]
fn fraction(f: u64, decimals: usize) -> i64 {
    let keep = if decimals == 8 {
        !0
    } else {
        (1u64 << (8 * decimals)) - 1
    };
    swar_value((f & keep) | (ZEROS & !keep))
}

/// The value of the first `n` bytes of `v` (digits, 1 <= n <= 7).
#[inline(always)]
fn right_aligned(v: u64, n: usize) -> i64 {
    let shift = 8 * (8 - n) as u32;
    swar_value((v << shift) | (ZEROS >> (64 - shift)))
}

/// The high bit of every byte of `v` that is not an ASCII digit, exactly up to and including the
/// first byte from 0x80 (a carry can only leave such a byte): in particular the first non-digit,
/// and when that is a `.`, the next one.
#[inline(always)]
fn non_digits(v: u64) -> u64 {
    let t = v ^ ZEROS;
    (t | t.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// `list` (at offset 8 of a frame that goes on after it) through this reader and through
    /// the general one: the same levels, the same end, the same error.
    fn both(list: &[u8]) -> (Result<(Vec<TextLevel>, usize), DecodeError>, bool) {
        let frame = [
            br#"{"asks":"#,
            list,
            br#","ts":"1597026383085","checksum":-1}]}"#,
        ]
        .concat();
        let run = |fast: bool| {
            let mut s = Scan { b: &frame, i: 8 };
            let mut out = Vec::new();
            let r = if fast {
                levels(&mut s, &mut out)
            } else {
                text_levels(&mut s, &mut out, false)
            };
            r.map(|()| (out, s.i))
        };
        let fast = run(true);
        assert_eq!(fast, run(false), "{}", String::from_utf8_lossy(list));
        let took_fast = fast_levels(&frame, 8, &mut Vec::new()).is_some();
        (fast, took_fast)
    }

    fn digits(n: usize, seed: u64) -> String {
        (0..n)
            .map(|k| char::from(b'0' + ((seed >> (4 * (k % 16))) % 10) as u8))
            .collect()
    }

    /// A decimal of `int` integer and `frac` fraction digits (none: no point).
    fn decimal_text(int: usize, frac: usize, seed: u64) -> String {
        let mut t = digits(int, seed);
        if frac > 0 {
            t += ".";
            t += &digits(frac, seed.rotate_left(17));
        }
        t
    }

    fn level_text(px: &str, sz: &str, orders: &str) -> String {
        format!(r#"["{px}","{sz}","0","{orders}"]"#)
    }

    /// Every split of integer and fraction digits the fast reader takes, and those just past
    /// what it takes (which the general reader then reads, or refuses), in lists of one level
    /// and of several.
    #[test]
    fn every_decimal_shape_reads_as_the_general_reader_does() {
        for int in 0..=11 {
            for frac in 0..=10 {
                for (seed, orders) in [(0x1234_5678_9abc_def0, "3"), (u64::MAX, "123456")] {
                    let d = decimal_text(int, frac, seed);
                    let one = format!("[{}]", level_text(&d, "0.5", orders));
                    let takes = (1..=7).contains(&int) && frac <= 8 && int + frac < 15;
                    assert_eq!(both(one.as_bytes()).1, takes, "{one}");
                    let below_one = format!("0.{}", digits(frac, seed));
                    let many = format!(
                        "[{},{},{},{}]",
                        level_text("30236.4", &d, orders),
                        level_text(&d, &d, "1"),
                        level_text("5.127", "0", "0"),
                        level_text("2.1", &below_one, "0"),
                    );
                    let _ = both(many.as_bytes());
                }
            }
        }
    }

    #[test]
    fn okx_lists_as_captured_take_the_fast_reader() {
        let list =
            br#"[["8476.98","415","0","13"],["8477","7","0","2"],["0.1","0.00542046","0","0"]]"#;
        let (got, fast) = both(list);
        assert!(fast);
        let (levels, end) = got.unwrap();
        assert_eq!(end, 8 + list.len());
        assert_eq!(levels[2].qty, 542_046);
        assert_eq!(levels[0].price, 847_698_000_000);
        assert_eq!(levels[1].qty_text.as_bytes(), b"7");
    }

    #[test]
    fn malformed_lists_are_the_general_readers_errors() {
        for bad in [
            &br#"[["1.x","2","0","1"]]"#[..],
            br#"[["1.","2","0","1"]]"#,
            br#"[["1234567.","2","0","1"]]"#,
            br#"[["1","0.123456789","0","1"]]"#,
            br#"[["1","0.","0","1"]]"#,
            br#"[["1","0.1x","0","1"]]"#,
            br#"[[".5","2","0","1"]]"#,
            br#"[["1","2","0","1"]"#,
            br#"[["1","2","0","1"],]"#,
            br#"[["1","2","0","1"]x"#,
            br#"[["1","2","0"#,
            br#"[["1","#,
            br#"[["#,
            br#"[["1","2","0","1"}]"#,
            br#"[["1","2","0","1234567"]"#,
            br#"[["1","-2","0","1"]]"#,
        ] {
            let (got, fast) = both(bad);
            assert!(!fast && got.is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // Truncated frames: the list at the very end.
        for cut in 0..40 {
            let full = br#"{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]]"#;
            let frame = &full[..full.len() - cut];
            let mut s = Scan { b: frame, i: 8 };
            let mut out = Vec::new();
            let r = levels(&mut s, &mut out);
            let mut g = Scan { b: frame, i: 8 };
            let mut gout = Vec::new();
            assert_eq!(r, text_levels(&mut g, &mut gout, false));
            assert_eq!((out, s.i), (gout, g.i));
        }
    }

    /// A level list made of well-formed levels (of every decimal shape) and then bytes changed,
    /// inserted or removed anywhere.
    fn list_strategy() -> impl Strategy<Value = Vec<u8>> {
        let decimal = (0usize..=10, 0usize..=10, any::<u64>())
            .prop_map(|(int, frac, seed)| decimal_text(int, frac, seed));
        let level = (decimal.clone(), decimal, 0usize..=8, any::<u64>())
            .prop_map(|(px, sz, n, seed)| level_text(&px, &sz, &digits(n, seed)));
        let edits =
            prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..3);
        (prop::collection::vec(level, 0..6), edits).prop_map(|(levels, edits)| {
            let mut list = format!("[{}]", levels.join(",")).into_bytes();
            for (at, what, byte) in edits {
                let byte = b"0123456789.,\"[] -x\\\x80"[usize::from(byte) % 19];
                let k = at.index(list.len() + 1);
                match what {
                    0 if k < list.len() => list[k] = byte,
                    1 => list.insert(k, byte),
                    _ if k < list.len() => {
                        list.remove(k);
                    }
                    _ => {}
                }
            }
            list
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_list_reads_as_the_general_reader_does(list in list_strategy()) {
            let _ = both(&list);
        }

        /// Where the decimal reader takes a text, the engine's one parser gives the same value.
        #[test]
        fn the_decimal_agrees_with_the_one_parser(
            text in prop::collection::vec(prop::sample::select(b"0123456789.\"x".to_vec()), 0..20),
        ) {
            let mut b = text.clone();
            b.extend_from_slice(b"\"]\"]\"]\"]\"]\"]\"]\"]");
            if let Some((v, end)) = decimal(&b, 0) {
                prop_assert_eq!(b[end], b'"');
                prop_assert_eq!(rt_core::parse_units(&b[..end]), Ok(v));
            }
            let b = [&b"0."[..], &b].concat();
            if let Some((v, end)) = below_one(&b, 0) {
                prop_assert_eq!(b[end], b'"');
                prop_assert_eq!(rt_core::parse_units(&b[..end]), Ok(v));
                prop_assert_eq!(decimal(&b, 0), Some((v, end)));
            }
        }
    }
}
