//! Kraken WebSocket v1 public market data: `book` (snapshot, then updates, each verified against
//! Kraken's CRC32 checksum) and `trade`. Market data only: py_rt sends no orders to Kraken.
//!
//! Frames are JSON arrays: `[channelID, {"as":[..],"bs":[..]}, "book-1000", "XBT/CHF"]` for a
//! snapshot, `[channelID, {"a":[..]}, {"b":[..],"c":"123"}, "book-1000", "XBT/CHF"]` for an
//! update (one or two objects; the checksum `c` is in the last), each level `[price, volume,
//! timestamp]` (a fourth field `"r"` marks a republished level), a volume of zero deleting it.
//! After each update the book is cut back to the subscribed depth (`book-<depth>`).
//!
//! The checksum `c` is the CRC32 (unsigned, a decimal string) of the best 10 asks (ascending)
//! then the best 10 bids (descending), each level written as its price then its volume with the
//! `.` removed and leading zeros stripped, concatenated, from the texts exactly as the feed sent
//! them (which carry the pair's fixed decimals of the time: `354.15000000`, `0.000022900`; the
//! decimals in today's `AssetPairs` may differ, and reformatting with them breaks the checksum).

use std::collections::HashMap;

use crate::binance::DecodeError;
use crate::checksum::{
    text_levels, BookMessage, Checked, CheckedBooks, TextBook, TextLevel, TEXT_CAP, TEXT_SLACK,
};
use crate::okx::unsigned;
use crate::scan::Scan;

/// Levels per side in Kraken's checksum.
pub const CHECKSUM_DEPTH: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Book,
    Trade,
    /// An event (`heartbeat`, `systemStatus`, `subscriptionStatus`) or another channel.
    Other,
}

/// One public trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KrakenTrade {
    pub price: i64,
    pub volume: i64,
    /// `"b"`: the taker bought.
    pub buy: bool,
}

/// A decoded frame; levels and trades live in the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KrakenFrame<'a> {
    pub kind: Kind,
    pub pair: &'a [u8],
    /// The subscribed depth (`book-1000`: 1000).
    pub depth: usize,
    pub snapshot: bool,
    pub checksum: Option<u32>,
}

#[derive(Default, Debug)]
pub struct KrakenDecoder {
    pub bids: Vec<TextLevel>,
    pub asks: Vec<TextLevel>,
    pub trades: Vec<KrakenTrade>,
}

impl KrakenDecoder {
    pub fn new() -> KrakenDecoder {
        KrakenDecoder::default()
    }

    pub fn decode<'a>(&mut self, frame: &'a [u8]) -> Result<KrakenFrame<'a>, DecodeError> {
        self.bids.clear();
        self.asks.clear();
        self.trades.clear();
        let mut out = KrakenFrame {
            kind: Kind::Other,
            pair: b"",
            depth: 0,
            snapshot: false,
            checksum: None,
        };
        let mut s = Scan { b: frame, i: 0 };
        if s.peek()? == b'{' {
            s.skip_value()?; // an event
            return Ok(out);
        }
        s.expect(b'[', "'['")?;
        s.scalar()?; // the channel id
        let mut strings: [&[u8]; 2] = [b"", b""];
        let mut n_strings = 0;
        let mut trade_list = false;
        while s.more(b']')? {
            match s.peek()? {
                b'{' => self.book_object(&mut s, &mut out)?,
                b'[' => {
                    trade_list = true;
                    self.trade_list(&mut s)?;
                }
                b'"' => {
                    let text = s.string()?;
                    if n_strings < 2 {
                        strings[n_strings] = text;
                    }
                    n_strings += 1;
                }
                _ => s.skip_value()?,
            }
        }
        let (channel, pair) = (strings[0], strings[1]);
        out.pair = pair;
        if let Some(depth) = channel.strip_prefix(b"book-") {
            out.kind = Kind::Book;
            out.depth = usize::try_from(unsigned(depth, "book depth")?).map_err(|_| {
                DecodeError::BadInteger {
                    field: "book depth",
                    at: 0,
                }
            })?;
        } else if channel == b"trade" && trade_list {
            out.kind = Kind::Trade;
        }
        Ok(out)
    }

    fn book_object<'a>(
        &mut self,
        s: &mut Scan<'a>,
        out: &mut KrakenFrame<'a>,
    ) -> Result<(), DecodeError> {
        s.expect(b'{', "'{'")?;
        if s.peek()? == b'}' {
            s.i += 1;
            return Ok(());
        }
        loop {
            let key = s.string()?;
            s.expect(b':', "':'")?;
            match key {
                b"as" | b"bs" => {
                    out.snapshot = true;
                    let side = if key == b"as" {
                        &mut self.asks
                    } else {
                        &mut self.bids
                    };
                    text_levels(s, side, true)?;
                }
                b"a" => text_levels(s, &mut self.asks, true)?,
                b"b" => text_levels(s, &mut self.bids, true)?,
                b"c" => {
                    let v = unsigned(s.scalar()?, "c")?;
                    out.checksum = Some(
                        u32::try_from(v)
                            .map_err(|_| DecodeError::BadInteger { field: "c", at: 0 })?,
                    );
                }
                _ => s.skip_value()?,
            }
            if !s.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// `[["price","volume","time","side","type","misc"], ..]`.
    fn trade_list(&mut self, s: &mut Scan<'_>) -> Result<(), DecodeError> {
        s.expect(b'[', "'['")?;
        if s.peek()? == b']' {
            s.i += 1;
            return Ok(());
        }
        loop {
            s.expect(b'[', "'['")?;
            let price = crate::checksum::units(s.string()?, "trade price")?;
            s.expect(b',', "','")?;
            let volume = crate::checksum::units(s.string()?, "trade volume")?;
            let mut buy = false;
            let mut field = 2;
            while s.more(b']')? {
                if field == 3 && s.peek()? == b'"' {
                    buy = s.string()? == b"b";
                } else {
                    s.skip_value()?;
                }
                field += 1;
            }
            self.trades.push(KrakenTrade { price, volume, buy });
            if !s.more(b']')? {
                return Ok(());
            }
        }
    }
}

/// A pair's fixed decimals (AssetPairs `pair_decimals`, `lot_decimals`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairDecimals {
    pub price: usize,
    pub volume: usize,
}

/// `wsname` -> decimals, from the JSON of `GET /0/public/AssetPairs` (`{"result": {..}}`, or
/// the bare map): the metadata instruments are declared and checked against.
pub fn asset_pairs(json: &str) -> Result<HashMap<String, PairDecimals>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let pairs = value.get("result").unwrap_or(&value);
    let map = pairs
        .as_object()
        .ok_or("expected an object of pairs (AssetPairs' `result`)")?;
    let mut out = HashMap::new();
    for (name, pair) in map {
        let field = |key: &str| {
            pair.get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(format!("pair {name}: `{key}` is missing or not an integer"))
        };
        let wsname = pair
            .get("wsname")
            .and_then(serde_json::Value::as_str)
            .ok_or(format!("pair {name}: `wsname` is missing"))?;
        out.insert(
            wsname.to_string(),
            PairDecimals {
                price: field("pair_decimals")?,
                volume: field("lot_decimals")?,
            },
        );
    }
    Ok(out)
}

/// Every pair's book on one Kraken connection, verified message by message (the rule is
/// [`CheckedBooks`]'s; this reads Kraken frames into it).
#[derive(Debug)]
pub struct KrakenBooks(pub CheckedBooks);

impl Default for KrakenBooks {
    fn default() -> KrakenBooks {
        KrakenBooks(CheckedBooks::new())
    }
}

impl std::ops::Deref for KrakenBooks {
    type Target = CheckedBooks;
    fn deref(&self) -> &CheckedBooks {
        &self.0
    }
}

impl std::ops::DerefMut for KrakenBooks {
    fn deref_mut(&mut self) -> &mut CheckedBooks {
        &mut self.0
    }
}

impl KrakenBooks {
    pub fn new() -> KrakenBooks {
        KrakenBooks::default()
    }

    /// Applies a decoded book frame (others are ignored: `None`).
    pub fn apply(&mut self, frame: &KrakenFrame<'_>, decoder: &KrakenDecoder) -> Option<Checked> {
        if frame.kind != Kind::Book {
            return None;
        }
        let msg = BookMessage {
            snapshot: frame.snapshot,
            bids: &decoder.bids,
            asks: &decoder.asks,
            depth: (frame.depth > 0).then_some(frame.depth),
            seq_id: None,
            prev_seq_id: None,
            checksum: frame.checksum,
        };
        Some(self.0.apply(frame.pair, &msg, checksum))
    }
}

/// Kraken's checksum of `book` (see the module doc), using `buf` as scratch.
pub fn checksum(book: &TextBook, buf: &mut Vec<u8>) -> u32 {
    let len = checksum_text(book, buf);
    crc32fast::hash(&buf[..len])
}

/// The text Kraken's checksum is the CRC32 of, written at the start of `buf` (its length is
/// returned; `buf` keeps its size from one call to the next). Each text's checksum form (no
/// `.`, no leading zeros) comes from positions found when it was parsed, written with
/// fixed-size copies.
pub fn checksum_text(book: &TextBook, buf: &mut Vec<u8>) -> usize {
    let room = 2 * 2 * CHECKSUM_DEPTH * TEXT_CAP + TEXT_SLACK;
    if buf.len() < room {
        buf.resize(room, 0);
    }
    let mut pos = 0;
    let asks = book.asks().take(CHECKSUM_DEPTH);
    for (price, volume) in asks.chain(book.bids().take(CHECKSUM_DEPTH)) {
        pos = price.write_digits(buf, pos);
        pos = volume.write_digits(buf, pos);
    }
    pos
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snapshot_update_and_two_object_frames() {
        let mut d = KrakenDecoder::new();
        let snap = br#"[1360,{"as":[["0.000022900","13355.87450757","1618678123.481570"]],"bs":[["0.000022890","100.00000000","1618678123.1"]]},"book-1000","ADA/XBT"]"#;
        let f = d.decode(snap).unwrap();
        assert_eq!((f.kind, f.snapshot, f.depth), (Kind::Book, true, 1000));
        assert_eq!(f.pair, b"ADA/XBT");
        assert_eq!(d.asks[0].price, 2290);
        let two = br#"[992,{"a":[["354.20000000","1.00000000","1618678133.1","r"]]},{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},"book-1000","XMR/USD"]"#;
        let f = d.decode(two).unwrap();
        assert!(!f.snapshot);
        assert_eq!((d.asks.len(), d.bids.len()), (1, 1));
        assert_eq!(f.checksum, Some(2_583_817_756));
    }

    #[test]
    fn checksum_text_is_the_digits_as_received() {
        let mut book = TextBook::default();
        book.set(false, &TextLevel::parse(b"0.05005", b"0.00000500").unwrap());
        book.set(
            true,
            &TextLevel::parse(b"354.15000000", b"5.00000000").unwrap(),
        );
        let mut buf = Vec::new();
        let len = checksum_text(&book, &mut buf);
        // Asks first: 0.05005 -> "5005", 0.00000500 -> "500"; then bids.
        assert_eq!(&buf[..len], b"500550035415000000500000000");
        assert_eq!(checksum(&book, &mut buf), crc32fast::hash(&buf[..len]));
    }

    #[test]
    fn trades_and_events() {
        let mut d = KrakenDecoder::new();
        let t = br#"[0,[["5541.20000","0.15850568","1534614057.321597","s","l",""],["6060.00000","0.02455000","1534614057.324998","b","l",""]],"trade","XBT/USD"]"#;
        let f = d.decode(t).unwrap();
        assert_eq!(f.kind, Kind::Trade);
        assert_eq!(d.trades.len(), 2);
        assert!(!d.trades[0].buy && d.trades[1].buy);
        let e = br#"{"event":"heartbeat"}"#;
        assert_eq!(d.decode(e).unwrap().kind, Kind::Other);
    }

    #[test]
    fn asset_pairs_metadata() {
        let json = r#"{"error":[],"result":{"XXMRZUSD":{"wsname":"XMR/USD","pair_decimals":2,"lot_decimals":8}}}"#;
        let pairs = asset_pairs(json).unwrap();
        assert_eq!(
            pairs["XMR/USD"],
            PairDecimals {
                price: 2,
                volume: 8
            }
        );
        assert!(asset_pairs("{\"result\":{\"X\":{}}}").is_err());
        assert!(asset_pairs("nope").is_err());
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let mut d = KrakenDecoder::new();
        for bad in [
            &br#"[1,{"a":[["1.x","2","3"]]},"book-10","X"]"#[..],
            br#"[1,{"c":"-5"},"book-10","X"]"#,
            br#"[1,{"a":[["1","2""#,
            br#"[1,{},"book-x","X"]"#,
            b"",
        ] {
            assert!(d.decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
