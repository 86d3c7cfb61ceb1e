//! OKX v5 public market data: `books` (a snapshot, then incremental updates, each verified
//! against the CRC32 checksum OKX computes over its own book), `trades` and `tickers`.
//!
//! Frame shape: `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot"|"update",
//! "data":[{"asks":[["px","sz","0","orders"],..],"bids":[..],"ts":"ms","checksum":-123,
//! "seqId":..,"prevSeqId":..}]}`. A level's size of `"0"` deletes it. The checksum is the CRC32,
//! as a signed 32-bit integer, of `bid1px:bid1sz:ask1px:ask1sz:bid2px:...` over the best 25
//! levels a side with the strings exactly as received; where one side has fewer levels, the
//! other side's remaining levels follow alone. `seqId`/`prevSeqId` (sent by today's API, absent
//! from older captures) are checked when present: an update whose `prevSeqId` is not the last
//! `seqId` is a gap. A mismatch or a gap makes the instrument's book invalid until the next
//! snapshot (live: the feed resubscribes the instrument), and nothing on it is trusted meanwhile.
//!
//! Parsing uses the same bounds-checked scanner as the Binance codec, borrowing from the frame;
//! level texts are kept inline, so a message allocates nothing once the buffers have grown.

pub mod account;
pub mod execution;
mod levels;
pub mod limits;
pub mod signing;

use crate::binance::DecodeError;
use crate::checksum::{
    BookMessage, Checked, CheckedBooks, Text, TextBook, TextLevel, TEXT_CAP, TEXT_SLACK,
};
use crate::scan::{quote_or_escape, Scan};

/// Levels per side in OKX's checksum.
pub const CHECKSUM_DEPTH: usize = 25;

/// The channel a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Books,
    Trades,
    Tickers,
    /// Another channel, or an event (`subscribe`, `error`): not market data.
    Other,
}

/// One public trade (`trades`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OkxTrade {
    pub price: i64,
    pub size: i64,
    /// The taker's side was buy.
    pub buy: bool,
    pub ts_ms: u64,
}

/// The best bid and ask of a `tickers` message (units of 10^-8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OkxTicker {
    pub bid_px: i64,
    pub bid_sz: i64,
    pub ask_px: i64,
    pub ask_sz: i64,
    pub ts_ms: u64,
}

/// A decoded frame; level and trade lists live in the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OkxFrame<'a> {
    pub channel: Channel,
    pub inst_id: &'a [u8],
    pub snapshot: bool,
    pub ts_ms: u64,
    pub checksum: Option<i64>,
    pub seq_id: Option<i64>,
    pub prev_seq_id: Option<i64>,
    pub ticker: Option<OkxTicker>,
}

/// Decodes OKX public frames into reusable buffers.
#[derive(Default, Debug)]
pub struct OkxDecoder {
    pub bids: Vec<TextLevel>,
    pub asks: Vec<TextLevel>,
    pub trades: Vec<OkxTrade>,
}

#[derive(Default)]
struct Data<'a> {
    ts: Option<u64>,
    checksum: Option<i64>,
    seq_id: Option<i64>,
    prev_seq_id: Option<i64>,
    px: Option<&'a [u8]>,
    sz: Option<&'a [u8]>,
    side: Option<&'a [u8]>,
    bid_px: Option<&'a [u8]>,
    bid_sz: Option<&'a [u8]>,
    ask_px: Option<&'a [u8]>,
    ask_sz: Option<&'a [u8]>,
}

impl OkxDecoder {
    pub fn new() -> OkxDecoder {
        OkxDecoder::default()
    }

    /// Decodes one frame. Events and unknown channels come back as [`Channel::Other`].
    pub fn decode<'a>(&mut self, frame: &'a [u8]) -> Result<OkxFrame<'a>, DecodeError> {
        self.bids.clear();
        self.asks.clear();
        self.trades.clear();
        let mut s = Scan { b: frame, i: 0 };
        let mut out = OkxFrame {
            channel: Channel::Other,
            inst_id: b"",
            snapshot: false,
            ts_ms: 0,
            checksum: None,
            seq_id: None,
            prev_seq_id: None,
            ticker: None,
        };
        let mut event = false;
        let mut data_seen = false;
        match fast_arg(frame, &mut out) {
            Some(end) => {
                if out.channel == Channel::Books {
                    match self.fast_books(frame, end, &mut out) {
                        Some(Ok(())) => return Ok(out),
                        Some(Err(e)) => return Err(e),
                        None => {
                            self.bids.clear();
                            self.asks.clear();
                        }
                    }
                }
                s.i = end;
                if !s.more(b'}')? {
                    // `arg` alone: no data.
                    out.channel = Channel::Other;
                    return Ok(out);
                }
            }
            None => {
                s.expect(b'{', "'{'")?;
                if s.peek()? == b'}' {
                    return Ok(out);
                }
            }
        }
        loop {
            let key = s.string()?;
            s.expect(b':', "':'")?;
            match key {
                b"arg" => self.arg(&mut s, &mut out)?,
                b"action" => out.snapshot = s.string()? == b"snapshot",
                b"event" => {
                    event = true;
                    s.skip_value()?;
                }
                b"data" if s.peek()? == b'[' => {
                    data_seen = true;
                    self.data(&mut s, &mut out)?;
                }
                _ => s.skip_value()?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
        if event || !data_seen {
            out.channel = Channel::Other;
        }
        Ok(out)
    }

    /// A `books` frame's rest, from after its `arg`, as OKX writes it:
    /// `,"action":"<update|snapshot>","data":[{"asks":[..],"bids":[..]` then `ts`, `checksum`,
    /// `seqId`, `prevSeqId` (any of them, in any order) and `}]}`. Each part is read by the
    /// same call, at the same place, as on the general path, so a value or an error is the
    /// general path's; `None` (levels perhaps pushed) at anything else, which the general path
    /// then reads from the start.
    #[inline]
    fn fast_books<'a>(
        &mut self,
        frame: &'a [u8],
        at: usize,
        out: &mut OkxFrame<'a>,
    ) -> Option<Result<(), DecodeError>> {
        const UPDATE: &[u8] = br#","action":"update","data":[{"asks":"#;
        const SNAPSHOT: &[u8] = br#","action":"snapshot","data":[{"asks":"#;
        const BIDS: &[u8] = br#","bids":"#;
        let rest = frame.get(at..)?;
        let (snapshot, skip) = if rest.starts_with(UPDATE) {
            (false, UPDATE.len())
        } else if rest.starts_with(SNAPSHOT) {
            (true, SNAPSHOT.len())
        } else {
            return None;
        };
        let mut s = Scan {
            b: frame,
            i: at + skip,
        };
        if let Err(e) = levels::levels(&mut s, &mut self.asks) {
            return Some(Err(e));
        }
        if !frame.get(s.i..)?.starts_with(BIDS) {
            return None;
        }
        s.i += BIDS.len();
        if let Err(e) = levels::levels(&mut s, &mut self.bids) {
            return Some(Err(e));
        }
        let (mut ts, mut checksum, mut seq_id, mut prev_seq_id) = (None, None, None, None);
        while *frame.get(s.i)? == b',' {
            s.i += 1;
            let field = match s.string() {
                Ok(key) => key,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = s.expect(b':', "':'") {
                return Some(Err(e));
            }
            let value = match field {
                b"ts" | b"checksum" | b"seqId" | b"prevSeqId" => match s.scalar() {
                    Ok(value) => value,
                    Err(e) => return Some(Err(e)),
                },
                _ => return None,
            };
            let read = match field {
                b"ts" => unsigned(value, "ts").map(|v| ts = Some(v)),
                b"checksum" => signed(value, "checksum").map(|v| checksum = Some(v)),
                b"seqId" => signed(value, "seqId").map(|v| seq_id = Some(v)),
                _ => signed(value, "prevSeqId").map(|v| prev_seq_id = Some(v)),
            };
            if let Err(e) = read {
                return Some(Err(e));
            }
        }
        if frame.get(s.i..s.i + 3)? != b"}]}" {
            return None;
        }
        out.snapshot = snapshot;
        out.ts_ms = ts.unwrap_or(0);
        out.checksum = checksum;
        out.seq_id = seq_id;
        out.prev_seq_id = prev_seq_id;
        Some(Ok(()))
    }

    fn arg<'a>(&mut self, s: &mut Scan<'a>, out: &mut OkxFrame<'a>) -> Result<(), DecodeError> {
        s.expect(b'{', "'{'")?;
        if s.peek()? == b'}' {
            s.i += 1;
            return Ok(());
        }
        loop {
            let key = s.string()?;
            s.expect(b':', "':'")?;
            match key {
                b"channel" => {
                    out.channel = match s.string()? {
                        b"books" => Channel::Books,
                        b"trades" => Channel::Trades,
                        b"tickers" => Channel::Tickers,
                        _ => Channel::Other,
                    }
                }
                b"instId" => out.inst_id = s.string()?,
                _ => s.skip_value()?,
            }
            if !s.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// `"data": [ {..}, .. ]`: books and tickers send one object, trades one per trade.
    fn data<'a>(&mut self, s: &mut Scan<'a>, out: &mut OkxFrame<'a>) -> Result<(), DecodeError> {
        s.expect(b'[', "'['")?;
        if s.peek()? == b']' {
            s.i += 1;
            return Ok(());
        }
        loop {
            let mut d = Data::default();
            self.data_object(s, &mut d)?;
            out.ts_ms = d.ts.unwrap_or(out.ts_ms);
            out.checksum = d.checksum.or(out.checksum);
            out.seq_id = d.seq_id.or(out.seq_id);
            out.prev_seq_id = d.prev_seq_id.or(out.prev_seq_id);
            if let (Some(px), Some(sz)) = (d.px, d.sz) {
                self.trades.push(OkxTrade {
                    price: crate::checksum::units(px, "px")?,
                    size: crate::checksum::units(sz, "sz")?,
                    buy: d.side == Some(b"buy"),
                    ts_ms: d.ts.unwrap_or(0),
                });
            }
            if let (Some(bp), Some(bs), Some(ap), Some(az)) =
                (d.bid_px, d.bid_sz, d.ask_px, d.ask_sz)
            {
                out.ticker = Some(OkxTicker {
                    bid_px: crate::checksum::units(bp, "bidPx")?,
                    bid_sz: crate::checksum::units(bs, "bidSz")?,
                    ask_px: crate::checksum::units(ap, "askPx")?,
                    ask_sz: crate::checksum::units(az, "askSz")?,
                    ts_ms: d.ts.unwrap_or(0),
                });
            }
            if !s.more(b']')? {
                return Ok(());
            }
        }
    }

    fn data_object<'a>(&mut self, s: &mut Scan<'a>, d: &mut Data<'a>) -> Result<(), DecodeError> {
        s.expect(b'{', "'{'")?;
        if s.peek()? == b'}' {
            s.i += 1;
            return Ok(());
        }
        loop {
            let key = s.string()?;
            s.expect(b':', "':'")?;
            match key {
                b"asks" => levels::levels(s, &mut self.asks)?,
                b"bids" => levels::levels(s, &mut self.bids)?,
                b"ts" => d.ts = Some(unsigned(s.scalar()?, "ts")?),
                b"checksum" => d.checksum = Some(signed(s.scalar()?, "checksum")?),
                b"seqId" => d.seq_id = Some(signed(s.scalar()?, "seqId")?),
                b"prevSeqId" => d.prev_seq_id = Some(signed(s.scalar()?, "prevSeqId")?),
                b"px" => d.px = Some(s.string()?),
                b"sz" => d.sz = Some(s.string()?),
                b"side" => d.side = Some(s.string()?),
                b"bidPx" => d.bid_px = Some(s.string()?),
                b"bidSz" => d.bid_sz = Some(s.string()?),
                b"askPx" => d.ask_px = Some(s.string()?),
                b"askSz" => d.ask_sz = Some(s.string()?),
                _ => s.skip_value()?,
            }
            if !s.more(b'}')? {
                return Ok(());
            }
        }
    }
}

/// `{"arg":{"channel":"<books|trades|tickers>","instId":"<name>"}` at the start of `frame`,
/// as OKX writes its data frames: the channel and instrument set in `out` and the index after
/// the `arg` object; `None` for anything else (the general path then reads it).
#[inline]
fn fast_arg<'a>(frame: &'a [u8], out: &mut OkxFrame<'a>) -> Option<usize> {
    const HEAD: &[u8] = br#"{"arg":{"channel":""#;
    const INST: &[u8] = br#"","instId":""#;
    let rest = frame.strip_prefix(HEAD)?;
    let (channel, name) = [
        (Channel::Books, &b"books"[..]),
        (Channel::Trades, b"trades"),
        (Channel::Tickers, b"tickers"),
    ]
    .into_iter()
    .find(|(_, name)| rest.starts_with(name) && rest[name.len()..].starts_with(INST))?;
    let start = HEAD.len() + name.len() + INST.len();
    let end = quote_or_escape(frame, start);
    if frame.get(end..end + 2)? != b"\"}" {
        return None;
    }
    out.channel = channel;
    out.inst_id = &frame[start..end];
    Some(end + 2)
}

/// An integer written bare or quoted (`"1652459225696"`, `-1`).
pub(crate) fn signed(text: &[u8], field: &'static str) -> Result<i64, DecodeError> {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let value = unsigned(digits, field)?;
    let value = i64::try_from(value).map_err(|_| DecodeError::BadInteger { field, at: 0 })?;
    Ok(if neg { -value } else { value })
}

pub(crate) fn unsigned(text: &[u8], field: &'static str) -> Result<u64, DecodeError> {
    if text.is_empty() || text.len() > 19 {
        return Err(DecodeError::BadInteger { field, at: 0 });
    }
    text.iter().try_fold(0u64, |acc, &c| {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(DecodeError::BadInteger { field, at: 0 });
        }
        Ok(acc * 10 + u64::from(d))
    })
}

/// Every instrument's book on one OKX connection, verified message by message (the rule is
/// [`CheckedBooks`]'s; this reads OKX frames into it).
#[derive(Debug)]
pub struct OkxBooks(pub CheckedBooks);

impl Default for OkxBooks {
    fn default() -> OkxBooks {
        OkxBooks(CheckedBooks::new())
    }
}

impl std::ops::Deref for OkxBooks {
    type Target = CheckedBooks;
    fn deref(&self) -> &CheckedBooks {
        &self.0
    }
}

impl std::ops::DerefMut for OkxBooks {
    fn deref_mut(&mut self) -> &mut CheckedBooks {
        &mut self.0
    }
}

impl OkxBooks {
    pub fn new() -> OkxBooks {
        OkxBooks::default()
    }

    /// Applies a decoded `books` frame (other channels are ignored: `None`).
    pub fn apply(&mut self, frame: &OkxFrame<'_>, decoder: &OkxDecoder) -> Option<Checked> {
        if frame.channel != Channel::Books {
            return None;
        }
        let msg = BookMessage {
            snapshot: frame.snapshot,
            bids: &decoder.bids,
            asks: &decoder.asks,
            depth: None,
            seq_id: frame.seq_id,
            prev_seq_id: frame.prev_seq_id,
            // OKX sends the CRC as a signed 32-bit integer: compare the bits.
            checksum: frame.checksum.map(|c| c as i32 as u32),
        };
        Some(self.0.apply(frame.inst_id, &msg, checksum))
    }
}

/// OKX's checksum of `book` (see the module doc), using `buf` as scratch.
pub fn checksum(book: &TextBook, buf: &mut Vec<u8>) -> u32 {
    let len = checksum_text(book, buf);
    crc32fast::hash(&buf[..len])
}

/// The text OKX's checksum is the CRC32 of, written at the start of `buf` (its length is
/// returned; `buf` keeps its size from one call to the next, so it is not cleared each time).
/// Texts are written with fixed-size copies.
pub fn checksum_text(book: &TextBook, buf: &mut Vec<u8>) -> usize {
    let room = 2 * CHECKSUM_DEPTH * 2 * (TEXT_CAP + 1) + TEXT_SLACK;
    if buf.len() < room {
        buf.resize(room, 0);
    }
    let mut pos = 0;
    let mut bids = book.bids();
    let mut asks = book.asks();
    for _ in 0..CHECKSUM_DEPTH {
        match (bids.next(), asks.next()) {
            (Some(bid), Some(ask)) => {
                pos = level(buf, pos, bid);
                pos = level(buf, pos, ask);
            }
            (Some(one), None) | (None, Some(one)) => pos = level(buf, pos, one),
            (None, None) => break,
        }
    }
    pos.saturating_sub(1)
}

/// `px:sz:` at `out[pos..]` (with [`TEXT_SLACK`] bytes of room after it); the index after it.
#[inline(always)]
fn level(out: &mut [u8], pos: usize, (px, sz): (&Text, &Text)) -> usize {
    let pos = px.write(out, pos);
    out[pos] = b':';
    let pos = sz.write(out, pos + 1);
    out[pos] = b':';
    pos + 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SNAPSHOT: &[u8] = br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],"ts":"1597026383085","checksum":0}]}"#;

    #[test]
    fn snapshot_levels_and_checksum_text() {
        let mut d = OkxDecoder::new();
        let f = d.decode(SNAPSHOT).unwrap();
        assert_eq!(f.channel, Channel::Books);
        assert_eq!(f.inst_id, b"BTC-USDT");
        assert!(f.snapshot);
        assert_eq!(f.ts_ms, 1_597_026_383_085);
        assert_eq!(d.asks.len(), 2);
        assert_eq!(d.bids[1].price, 847_555_000_000);
        let mut books = OkxBooks::new();
        let mut frame = f;
        // The documented example string: bids and asks interleaved, best first.
        let mut book = TextBook::default();
        for l in &d.bids {
            book.set(true, l);
        }
        for l in &d.asks {
            book.set(false, l);
        }
        let mut buf = Vec::new();
        let crc = checksum(&book, &mut buf);
        let len = checksum_text(&book, &mut buf);
        assert_eq!(&buf[..len], b"8476.97:256:8476.98:415:8475.55:101:8477:7");
        frame.checksum = Some(i64::from(crc as i32));
        assert_eq!(books.apply(&frame, &d), Some(Checked::Verified));
    }

    /// Where one side runs out, the other's levels follow alone (and past 25 a side, none).
    #[test]
    fn the_checksum_text_of_uneven_and_deep_sides() {
        let level = |p: String, q: &str| TextLevel::parse(p.as_bytes(), q.as_bytes()).unwrap();
        let mut book = TextBook::default();
        for k in 0..30 {
            book.set(true, &level(format!("{}.5", 100 - k), "1"));
        }
        book.set(false, &level("101".into(), "2"));
        let mut buf = Vec::new();
        let len = checksum_text(&book, &mut buf);
        let mut want = "100.5:1:101:2".to_owned();
        for k in 1..CHECKSUM_DEPTH {
            want += &format!(":{}.5:1", 100 - k);
        }
        assert_eq!(std::str::from_utf8(&buf[..len]).unwrap(), want);
        assert_eq!(checksum(&book, &mut buf), crc32fast::hash(want.as_bytes()));
    }

    #[test]
    fn a_wrong_checksum_invalidates_until_the_next_snapshot() {
        let mut d = OkxDecoder::new();
        let mut books = OkxBooks::new();
        let f = d.decode(SNAPSHOT).unwrap();
        assert!(matches!(
            books.apply(&f, &d),
            Some(Checked::Mismatch { .. })
        ));
        let update = br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[["8476.97","0","0","0"]],"ts":"1597026383086","checksum":1}]}"#;
        let f = d.decode(update).unwrap();
        assert_eq!(books.apply(&f, &d), Some(Checked::Invalid));
        let (_, book) = books.books().next().unwrap();
        assert_eq!(book.counters.unverified, 1);
        assert!(!book.valid);
    }

    #[test]
    fn a_sequence_gap_invalidates() {
        let mut d = OkxDecoder::new();
        let mut books = OkxBooks::new();
        let snap = br#"{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[],"bids":[],"ts":"1","seqId":10,"prevSeqId":-1}]}"#;
        let f = d.decode(snap).unwrap();
        assert_eq!(books.apply(&f, &d), Some(Checked::Unchecked));
        let next = br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"2","seqId":12,"prevSeqId":11}]}"#;
        let f = d.decode(next).unwrap();
        assert_eq!(books.apply(&f, &d), Some(Checked::Gap));
        assert_eq!(books.books().next().unwrap().1.gaps, 1);
        // Until the next snapshot, nothing is applied.
        assert_eq!(books.apply(&f, &d), Some(Checked::Invalid));
    }

    #[test]
    fn trades_tickers_and_events() {
        let mut d = OkxDecoder::new();
        let t = br#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"30236.1","sz":"0.001","side":"sell","ts":"1652459225611"},{"instId":"BTC-USDT","tradeId":"2","px":"30236","sz":"0.5","side":"buy","ts":"1652459225612"}]}"#;
        let f = d.decode(t).unwrap();
        assert_eq!(f.channel, Channel::Trades);
        assert_eq!(d.trades.len(), 2);
        assert!(!d.trades[0].buy && d.trades[1].buy);
        assert_eq!(d.trades[1].size, 50_000_000);
        let k = br#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"30236","askPx":"30228.7","askSz":"1.55896972","bidPx":"30228.6","bidSz":"0.23393","ts":"1652459224956"}]}"#;
        let f = d.decode(k).unwrap();
        assert_eq!(f.ticker.unwrap().ask_px, 3_022_870_000_000);
        let e = br#"{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}"#;
        assert_eq!(d.decode(e).unwrap().channel, Channel::Other);
    }

    /// Every frame of the capture, and a few of other shapes, read the same through the
    /// compact `arg` fast path (and for books, the rest of the frame's fast path) and the
    /// general one (taken for the same frame after a blank).
    #[test]
    fn the_arg_fast_path_reads_what_the_general_path_does() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/okx/cryptofeed_OKX.ws.1.0");
        let mut frames = crate::FrameReader::open(&path).unwrap();
        let mut all: Vec<Vec<u8>> = Vec::new();
        while let Some(frame) = frames.next_frame() {
            all.push(frame.unwrap().bytes.to_vec());
        }
        for extra in [
            &br#"{"arg":{"channel":"books","instId":"X"}}"#[..],
            br#"{"arg":{"channel":"books","instId":"X"},"event":"subscribe"}"#,
            br#"{"arg":{"channel":"books5","instId":"X"},"data":[{"asks":[]}]}"#,
            br#"{"arg":{"channel":"trades","instId":"A\"B"},"data":[]}"#,
            br#"{"arg":{"channel":"tickers","instId":"X","uid":"1"},"data":[]}"#,
            br#"{"arg":{"channel":"books","instId":"X"}"#,
            // The books fast path and the shapes it leaves to the general one.
            br#"{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[["1","2","0","1"]],"bids":[["0.5","3","0","2"]],"ts":"7","checksum":-5,"prevSeqId":-1,"seqId":9}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"seqId":3,"ts":"8","prevSeqId":2,"checksum":1}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8","checksum":1}]}trailing"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"prevSeqId":4}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[["1","2","0","1"]],"ts":"8","x":{"y":[1]},"checksum":1}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8"},{"asks":[["1","2","0","1"]],"bids":[]}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8"}],"event":"error"}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"bids":[],"asks":[["1","2","0","1"]],"ts":"8"}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1","2","0","1"]] ,"bids":[],"ts":"8"}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[], "ts":"8" } ] }"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8","ts":"9"}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1","2","0","1"]],"bids":[],"ts":"8x","checksum":1}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8","checksum":1.5}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8","checksum""#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[["1","x","0","1"]],"ts":"8"}]}"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1","2","0","1"]],"bids":[]"#,
            br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"8","checksum":1}]"#,
        ] {
            all.push(extra.to_vec());
        }
        let mut fast_books = 0;
        for frame in &all {
            let blank = [b" ", frame.as_slice()].concat();
            let (mut fast, mut general) = (OkxDecoder::new(), OkxDecoder::new());
            let a = fast.decode(frame).map_err(|e| e.to_string());
            let b = general.decode(&blank).map_err(|_| ());
            assert_eq!(
                a.as_ref().map_err(|_| ()).copied(),
                b,
                "{}",
                String::from_utf8_lossy(frame)
            );
            assert_eq!(
                (fast.bids, fast.asks, fast.trades),
                (general.bids, general.asks, general.trades)
            );
            fast_books += usize::from(matches!(a, Ok(f) if f.channel == Channel::Books));
        }
        assert!(fast_books >= 191, "{fast_books}");
    }

    /// Every trade and ticker of the capture: the values the one decimal parser gives for the
    /// strings serde_json finds there.
    #[test]
    fn trades_and_tickers_of_the_capture_read_as_the_one_parser_does() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/okx/cryptofeed_OKX.ws.1.0");
        let mut frames = crate::FrameReader::open(&path).unwrap();
        let mut d = OkxDecoder::new();
        let units = |v: &serde_json::Value, k: &str| {
            rt_core::parse_units(v[k].as_str().unwrap().as_bytes()).unwrap()
        };
        let (mut trades, mut tickers) = (0, 0);
        while let Some(frame) = frames.next_frame() {
            let bytes = frame.unwrap().bytes;
            let f = d.decode(bytes).unwrap();
            let json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            match f.channel {
                Channel::Trades => {
                    let data = json["data"].as_array().unwrap();
                    assert_eq!(d.trades.len(), data.len());
                    for (t, v) in d.trades.iter().zip(data) {
                        assert_eq!((t.price, t.size), (units(v, "px"), units(v, "sz")));
                        trades += 1;
                    }
                }
                Channel::Tickers => {
                    let v = &json["data"][0];
                    let t = f.ticker.unwrap();
                    assert_eq!(
                        (t.bid_px, t.bid_sz, t.ask_px, t.ask_sz),
                        (
                            units(v, "bidPx"),
                            units(v, "bidSz"),
                            units(v, "askPx"),
                            units(v, "askSz")
                        )
                    );
                    tickers += 1;
                }
                _ => {}
            }
        }
        assert!(trades >= 70 && tickers == 26, "{trades} {tickers}");
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let mut d = OkxDecoder::new();
        for bad in [
            &br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1.x","2"]]}]}"#[..],
            br#"{"arg":{"channel":"books""#,
            br#"{"data":[{"checksum":"abc"}]}"#,
            br#"[1,2]"#,
            b"",
        ] {
            assert!(d.decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
