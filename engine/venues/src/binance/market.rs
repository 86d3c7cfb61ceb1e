//! Binance market-data codec: WebSocket frames and REST depth snapshots to [`MarketEvent`]s.
//!
//! Handles the combined-stream envelope `{"stream": .., "data": {..}}` as well as bare events,
//! for `depthUpdate` (spot, and USD-M with `pu`), `bookTicker` (spot without `e`, USD-M with
//! it), `trade`, `aggTrade`, and the REST snapshot `{"lastUpdateId": .., "bids": .., "asks": ..}`.
//! Other well-formed messages (klines, subscription replies, ...) are *ignored*
//! (`Ok(None)`), not errors.
//!
//! The decoder is a hand-written, single-pass scanner over the frame's bytes: fields may come in
//! any order, unknown fields of any type are skipped, decimals go straight from the wire bytes
//! to fixed point ([`rt_core::parse_units`], no floats). Level lists are written into the
//! decoder's reusable vectors, so decoding allocates nothing once they have grown (a new symbol
//! name is the one exception). Anything malformed is a typed [`DecodeError`], counted, never a
//! panic: every byte access is bounds-checked and nesting is skipped without recursion.

use rt_core::{
    Bbo, DepthDiff, Header, Level, MarketEvent, Nanos, ParseDecimalError, Price, Qty, Side,
    Snapshot, SymbolId, Trade,
};

use crate::scan::{Dec, Scan};

/// Most distinct symbols one decoder accepts (a guard against a hostile feed).
pub const MAX_SYMBOLS: usize = 65_536;

/// Why a frame could not be decoded. Offsets are byte positions in the frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame ends early at byte {at}")]
    Truncated { at: usize },
    #[error("unexpected byte {byte:#04x} at byte {at}, expected {expected}")]
    Unexpected {
        byte: u8,
        at: usize,
        expected: &'static str,
    },
    #[error("field `{field}` is not an unsigned integer (at byte {at})")]
    BadInteger { field: &'static str, at: usize },
    #[error("field `{field}` is not a decimal: {source}")]
    BadDecimal {
        field: &'static str,
        source: ParseDecimalError,
    },
    #[error("`{event}` message without field `{field}`")]
    MissingField {
        event: &'static str,
        field: &'static str,
    },
    #[error("field `{field}` = {ms} ms is out of the timestamp range")]
    TimeOutOfRange { field: &'static str, ms: u64 },
    #[error("more than {MAX_SYMBOLS} symbols")]
    TooManySymbols,
    #[error("bytes after the end of the message at byte {at}")]
    Trailing { at: usize },
}

/// Frames seen by a [`Decoder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeCounters {
    pub frames: u64,
    /// Frames that gave a market event.
    pub events: u64,
    /// Well-formed messages that are not market events (klines, replies, ...).
    pub ignored: u64,
    /// Malformed frames.
    pub errors: u64,
}

/// The last decoded event, owned, minus its level lists (those stay in the decoder's vectors).
#[derive(Clone, Copy, Debug)]
enum Last {
    None,
    Depth {
        header: Header,
        first_id: u64,
        final_id: u64,
        prev_final_id: Option<u64>,
    },
    Snapshot {
        header: Header,
        last_update_id: u64,
    },
    Trade(Trade),
    Bbo(Bbo),
}

/// A stateful, allocation-free Binance decoder with its own symbol table.
#[derive(Debug)]
pub struct Decoder {
    symbols: Vec<String>,
    /// Symbol of the most recent message that named one: a REST snapshot names none.
    current_symbol: SymbolId,
    bids: Vec<Level>,
    asks: Vec<Level>,
    last: Last,
    counters: DecodeCounters,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            symbols: Vec::new(),
            current_symbol: 0,
            bids: Vec::with_capacity(1024),
            asks: Vec::with_capacity(1024),
            last: Last::None,
            counters: DecodeCounters::default(),
        }
    }

    /// A decoder whose table starts with these symbols (ids 0, 1, .. in this order), e.g. the
    /// manifest's instruments, so that ids do not depend on which message comes first.
    pub fn with_symbols<S: AsRef<str>>(symbols: &[S]) -> Decoder {
        let mut decoder = Decoder::new();
        for s in symbols {
            decoder.symbols.push(s.as_ref().to_owned());
        }
        decoder
    }

    /// The symbol table: a [`SymbolId`] indexes it. Names are as Binance sends them in `s`.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The id of a symbol, adding it to the table when new.
    pub fn symbol_id(&mut self, name: &str) -> Result<SymbolId, DecodeError> {
        self.intern(name.as_bytes())
    }

    pub fn counters(&self) -> DecodeCounters {
        self.counters
    }

    /// Decodes one frame received at `local_ns`. `Ok(None)` for a well-formed message that is
    /// not a market event. A REST snapshot (which names no symbol) is attributed to the symbol
    /// of the latest message that named one (0 before any); see [`Decoder::decode_snapshot`].
    #[inline]
    pub fn decode(
        &mut self,
        frame: &[u8],
        local_ns: Nanos,
    ) -> Result<Option<MarketEvent<'_>>, DecodeError> {
        Ok(if self.decode_in_place(frame, local_ns)? {
            self.event()
        } else {
            None
        })
    }

    /// Decodes a REST depth snapshot body for a given symbol.
    pub fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        local_ns: Nanos,
    ) -> Result<MarketEvent<'_>, DecodeError> {
        let saved = self.current_symbol;
        self.current_symbol = symbol;
        let decoded = self.decode_in_place(body, local_ns);
        self.current_symbol = saved;
        match (decoded?, self.last) {
            (true, Last::Snapshot { .. }) => self.event().ok_or(DecodeError::MissingField {
                event: "snapshot",
                field: "lastUpdateId",
            }),
            _ => Err(DecodeError::MissingField {
                event: "snapshot",
                field: "lastUpdateId",
            }),
        }
    }

    /// Like [`Decoder::decode`], but leaves the event in the decoder: `Ok(true)` when there is
    /// one, to be read with [`Decoder::event`]. Lets a caller loop over frames without holding a
    /// borrow of the decoder across iterations.
    pub fn decode_in_place(&mut self, frame: &[u8], local_ns: Nanos) -> Result<bool, DecodeError> {
        self.counters.frames += 1;
        self.last = Last::None;
        match self.parse(frame, local_ns) {
            Ok(true) => {
                self.counters.events += 1;
                Ok(true)
            }
            Ok(false) => {
                self.counters.ignored += 1;
                Ok(false)
            }
            Err(e) => {
                self.counters.errors += 1;
                self.last = Last::None;
                Err(e)
            }
        }
    }

    /// The event of the last successful [`Decoder::decode_in_place`] (`None` if it gave none).
    #[inline]
    pub fn event(&self) -> Option<MarketEvent<'_>> {
        Some(match self.last {
            Last::None => return None,
            Last::Depth {
                header,
                first_id,
                final_id,
                prev_final_id,
            } => MarketEvent::Depth(DepthDiff {
                header,
                first_id,
                final_id,
                prev_final_id,
                bids: &self.bids,
                asks: &self.asks,
            }),
            Last::Snapshot {
                header,
                last_update_id,
            } => MarketEvent::Snapshot(Snapshot {
                header,
                last_update_id,
                bids: &self.bids,
                asks: &self.asks,
            }),
            Last::Trade(t) => MarketEvent::Trade(t),
            Last::Bbo(b) => MarketEvent::Bbo(b),
        })
    }

    fn intern(&mut self, name: &[u8]) -> Result<SymbolId, DecodeError> {
        let current = self.current_symbol as usize;
        if self
            .symbols
            .get(current)
            .is_some_and(|s| s.as_bytes() == name)
        {
            return Ok(self.current_symbol);
        }
        if let Some(i) = self.symbols.iter().position(|s| s.as_bytes() == name) {
            return Ok(i as SymbolId);
        }
        if self.symbols.len() >= MAX_SYMBOLS {
            return Err(DecodeError::TooManySymbols);
        }
        self.symbols
            .push(String::from_utf8_lossy(name).into_owned());
        Ok((self.symbols.len() - 1) as SymbolId)
    }

    fn parse(&mut self, frame: &[u8], local_ns: Nanos) -> Result<bool, DecodeError> {
        let mut f = Fields::default();
        let mut scan = Scan { b: frame, i: 0 };
        self.bids.clear();
        self.asks.clear();
        parse_object(&mut scan, &mut f, &mut self.bids, &mut self.asks, true)?;
        scan.ws();
        if scan.i < frame.len() {
            return Err(DecodeError::Trailing { at: scan.i });
        }
        let symbol = match f.symbol {
            Some(name) => {
                let id = self.intern(name)?;
                self.current_symbol = id;
                id
            }
            None => self.current_symbol,
        };
        let header = |exchange_ms: Option<u64>, field| -> Result<Header, DecodeError> {
            Ok(Header {
                symbol,
                exchange_ns: ms_to_ns(exchange_ms, field)?,
                local_ns,
            })
        };
        self.last = match f.event {
            Some(b"depthUpdate") => {
                const EV: &str = "depthUpdate";
                if !(f.bid_levels && f.ask_levels) {
                    let field = if f.bid_levels { "a" } else { "b" };
                    return Err(DecodeError::MissingField { event: EV, field });
                }
                Last::Depth {
                    header: header(f.event_ms, "E")?,
                    first_id: required(f.first_id, EV, "U")?,
                    final_id: required(f.final_id, EV, "u")?,
                    prev_final_id: f.prev_final_id,
                }
            }
            Some(b"bookTicker") => self.bbo(&f, header(f.event_ms, "E")?)?,
            Some(b"trade") => {
                const EV: &str = "trade";
                Last::Trade(Trade {
                    header: header(f.trade_ms.or(f.event_ms), "T")?,
                    id: required(f.trade_id, EV, "t")?,
                    price: Price(required(f.price, EV, "p")?.units("p")?),
                    qty: Qty(required(f.qty, EV, "q")?.units("q")?),
                    aggressor: aggressor(required(f.maker, EV, "m")?),
                })
            }
            Some(b"aggTrade") => {
                const EV: &str = "aggTrade";
                Last::Trade(Trade {
                    header: header(f.trade_ms.or(f.event_ms), "T")?,
                    id: required(f.agg_id, EV, "a")?,
                    price: Price(required(f.price, EV, "p")?.units("p")?),
                    qty: Qty(required(f.qty, EV, "q")?.units("q")?),
                    aggressor: aggressor(required(f.maker, EV, "m")?),
                })
            }
            Some(_) => return Ok(false),
            None if f.last_update_id.is_some() => {
                const EV: &str = "snapshot";
                if !(f.bid_levels && f.ask_levels) {
                    let field = if f.bid_levels { "asks" } else { "bids" };
                    return Err(DecodeError::MissingField { event: EV, field });
                }
                Last::Snapshot {
                    header: header(f.event_ms, "E")?,
                    last_update_id: required(f.last_update_id, EV, "lastUpdateId")?,
                }
            }
            // Spot bookTicker carries no `e`: recognised by its fields.
            None if f.final_id.is_some() && f.bid_str.is_some() && f.ask_str.is_some() => {
                self.bbo(&f, header(f.event_ms, "E")?)?
            }
            None => return Ok(false),
        };
        Ok(true)
    }

    fn bbo(&self, f: &Fields<'_>, header: Header) -> Result<Last, DecodeError> {
        const EV: &str = "bookTicker";
        Ok(Last::Bbo(Bbo {
            header,
            update_id: required(f.final_id, EV, "u")?,
            bid: Level::new(
                Price(required(f.bid_str, EV, "b")?.units("b")?),
                Qty(required(f.bid_qty, EV, "B")?.units("B")?),
            ),
            ask: Level::new(
                Price(required(f.ask_str, EV, "a")?.units("a")?),
                Qty(required(f.ask_qty, EV, "A")?.units("A")?),
            ),
        }))
    }
}

/// `m == true`: the buyer is the maker, so the aggressor sold.
fn aggressor(buyer_is_maker: bool) -> Side {
    if buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    }
}

#[inline]
fn required<T>(v: Option<T>, event: &'static str, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField { event, field })
}

/// Milliseconds to nanoseconds; a missing time is 0 (spot `bookTicker` and snapshots have none).
#[inline]
fn ms_to_ns(ms: Option<u64>, field: &'static str) -> Result<Nanos, DecodeError> {
    match ms {
        None => Ok(0),
        Some(ms) => ms
            .checked_mul(1_000_000)
            .and_then(|ns| Nanos::try_from(ns).ok())
            .ok_or(DecodeError::TimeOutOfRange { field, ms }),
    }
}

/// What one pass over a message collects (slices borrow the frame).
#[derive(Default)]
struct Fields<'a> {
    event: Option<&'a [u8]>,
    event_ms: Option<u64>,
    trade_ms: Option<u64>,
    symbol: Option<&'a [u8]>,
    first_id: Option<u64>,
    final_id: Option<u64>,
    prev_final_id: Option<u64>,
    last_update_id: Option<u64>,
    trade_id: Option<u64>,
    agg_id: Option<u64>,
    bid_str: Option<Dec<'a>>,
    ask_str: Option<Dec<'a>>,
    bid_qty: Option<Dec<'a>>,
    ask_qty: Option<Dec<'a>>,
    price: Option<Dec<'a>>,
    qty: Option<Dec<'a>>,
    maker: Option<bool>,
    bid_levels: bool,
    ask_levels: bool,
}

/// Parses one JSON object's fields into `f`. At the top level a `data` object (the combined
/// stream envelope) is parsed into the same fields.
fn parse_object<'a>(
    s: &mut Scan<'a>,
    f: &mut Fields<'a>,
    bids: &mut Vec<Level>,
    asks: &mut Vec<Level>,
    top: bool,
) -> Result<(), DecodeError> {
    s.expect(b'{', "'{'")?;
    if s.peek()? == b'}' {
        s.i += 1;
        return Ok(());
    }
    loop {
        let key = s.string()?;
        s.expect(b':', "':'")?;
        // One-byte keys (nearly all of Binance's) dispatch on the byte alone.
        match *key {
            [b'e'] => f.event = Some(s.string()?),
            [b'E'] => f.event_ms = Some(s.u64("E")?),
            [b'T'] => f.trade_ms = Some(s.u64("T")?),
            [b's'] => f.symbol = Some(s.string()?),
            [b'U'] => f.first_id = Some(s.u64("U")?),
            [b'u'] => f.final_id = Some(s.u64("u")?),
            [b'b'] => match s.peek()? {
                b'[' => {
                    s.levels(bids, "b")?;
                    f.bid_levels = true;
                }
                _ => f.bid_str = Some(s.dec()?),
            },
            [b'a'] => match s.peek()? {
                b'[' => {
                    s.levels(asks, "a")?;
                    f.ask_levels = true;
                }
                b'"' => f.ask_str = Some(s.dec()?),
                // aggTrade: `a` is the aggregate trade id.
                _ => f.agg_id = Some(s.u64("a")?),
            },
            [b'B'] => f.bid_qty = Some(s.dec()?),
            [b'A'] => f.ask_qty = Some(s.dec()?),
            [b't'] => f.trade_id = Some(s.u64("t")?),
            [b'p'] => f.price = Some(s.dec()?),
            [b'q'] => f.qty = Some(s.dec()?),
            [b'm'] => f.maker = Some(s.boolean()?),
            [_] => s.skip_value()?,
            _ => match key {
                b"pu" => f.prev_final_id = Some(s.u64("pu")?),
                b"lastUpdateId" => f.last_update_id = Some(s.u64("lastUpdateId")?),
                b"bids" => {
                    s.levels(bids, "bids")?;
                    f.bid_levels = true;
                }
                b"asks" => {
                    s.levels(asks, "asks")?;
                    f.ask_levels = true;
                }
                b"data" if top && s.peek()? == b'{' => parse_object(s, f, bids, asks, false)?,
                _ => s.skip_value()?,
            },
        }
        match s.next_byte()? {
            b',' => continue,
            b'}' => return Ok(()),
            byte => {
                return Err(DecodeError::Unexpected {
                    byte,
                    at: s.i - 1,
                    expected: "',' or '}'",
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{eight_digits, fast_decimal};

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap_or_default()
    }
    fn qt(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn fast_decimals_agree_with_the_reference_parser() {
        let cases = [
            "0",
            "7",
            "0.1",
            "61837.63000000",
            "0.00000000",
            "3.330",
            "1234567890.12345678",
            "12345678901",
            "1.",
            ".5",
            "1.123456789",
            "1.123456780",
            "99.9999999x",
            "-1",
            "1e5",
            "",
            "00000000001.5",
            "42.12345678",
            "9999999999.99999999",
        ];
        for text in cases {
            let quoted = format!("\"{text}\",");
            let fast = fast_decimal(quoted.as_bytes(), 0).map(|(v, _)| v);
            let slow = rt_core::parse_units(text.as_bytes()).ok();
            if let Some(v) = fast {
                assert_eq!(Some(v), slow, "{text}");
            }
            // Where the fast path declines, the general path decides.
            let mut scan = Scan {
                b: quoted.as_bytes(),
                i: 0,
            };
            assert_eq!(
                scan.dec().ok().and_then(|d| d.units("x").ok()),
                slow,
                "{text}"
            );
        }
        for n in [0u64, 1, 12_345_678, 99_999_999, 10_000_000, 7] {
            let text = format!("{n:08}");
            assert_eq!(eight_digits(text.as_bytes()), Some(n as i64));
        }
        // Random short strings over the relevant alphabet, with the quote anywhere.
        let alphabet = b"0123456789.\"-e ";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut text = vec![b'"'];
            let mut y = x;
            for _ in 0..len {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pick = if (y >> 60) < 12 {
                    (y >> 33) % 10
                } else {
                    (y >> 33) % alphabet.len() as u64
                };
                text.push(alphabet[pick as usize]);
            }
            text.extend_from_slice(b"\",\"1\"]]");
            let close = text[1..].iter().position(|&c| c == b'"').map(|p| p + 1);
            let inner = close.map(|c| &text[1..c]);
            let want = inner.and_then(|t| rt_core::parse_units(t).ok());
            if let Some((v, end)) = fast_decimal(&text, 0) {
                assert_eq!(Some(v), want, "{}", String::from_utf8_lossy(&text));
                assert_eq!(Some(end), close.map(|c| c + 1));
            }
            let mut scan = Scan { b: &text, i: 0 };
            let got = scan.dec().ok().and_then(|d| d.units("x").ok());
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&text));
        }
        assert_eq!(eight_digits(b"1234567a"), None);
        assert_eq!(eight_digits(b"1234/678"), None);
        assert_eq!(eight_digits(b"12345:78"), None);
    }

    #[test]
    fn integers_parse_exactly() {
        let cases: [(&str, Option<u64>); 10] = [
            ("0,", Some(0)),
            ("7}", Some(7)),
            ("1723161255208,", Some(1_723_161_255_208)),
            ("5123107832006]", Some(5_123_107_832_006)),
            ("18446744073709551615,", Some(u64::MAX)),
            ("18446744073709551616,", None),
            ("99999999999999999999,", None),
            ("12345678", Some(12_345_678)),
            ("1.5,", None),
            ("-1,", None),
        ];
        for (text, want) in cases {
            let mut scan = Scan {
                b: text.as_bytes(),
                i: 0,
            };
            assert_eq!(scan.u64("x").ok(), want, "{text}");
        }
        for n in (0..64)
            .map(|k| 1u64 << k)
            .chain((1..20).map(|k| 10u64.pow(k) - 1))
        {
            let text = format!("{n},\"x\":1");
            let mut scan = Scan {
                b: text.as_bytes(),
                i: 0,
            };
            assert_eq!(scan.u64("x"), Ok(n));
            assert_eq!(scan.i, n.to_string().len());
        }
    }

    #[test]
    fn spot_depth_update() {
        let mut d = Decoder::new();
        let frame = br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":50093239189,"u":50093239202,"b":[["61737.63000000","0.00000000"]],"a":[["61837.64000000","1.54698000"],["61839.85000000","0.00000000"]]}}"#;
        let Ok(Some(MarketEvent::Depth(e))) = d.decode(frame, 7) else {
            panic!("not a depth diff");
        };
        assert_eq!(e.header.symbol, 0);
        assert_eq!(e.header.exchange_ns, 1_723_161_255_208_000_000);
        assert_eq!(e.header.local_ns, 7);
        assert_eq!(
            (e.first_id, e.final_id, e.prev_final_id),
            (50093239189, 50093239202, None)
        );
        assert_eq!(e.bids, &[Level::new(px("61737.63"), Qty(0))]);
        assert_eq!(e.asks.len(), 2);
        assert_eq!(e.asks[0], Level::new(px("61837.64"), qt("1.54698")));
        assert_eq!(d.symbols(), &["BTCUSDT".to_owned()]);
    }

    #[test]
    fn usdm_depth_update_with_pu() {
        let mut d = Decoder::new();
        let frame = br#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,"b":[["58710.20","0.014"]],"a":[]}}"#;
        let Ok(Some(MarketEvent::Depth(e))) = d.decode(frame, 0) else {
            panic!("not a depth diff");
        };
        assert_eq!(e.prev_final_id, Some(5123107831937));
        assert_eq!(e.bids, &[Level::new(px("58710.2"), qt("0.014"))]);
        assert!(e.asks.is_empty());
    }

    #[test]
    fn book_tickers_spot_and_usdm() {
        let mut d = Decoder::new();
        let spot = br#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
        let Ok(Some(MarketEvent::Bbo(b))) = d.decode(spot, 1) else {
            panic!("not a bbo");
        };
        assert_eq!(b.update_id, 50093239212);
        assert_eq!(b.bid, Level::new(px("61837.63"), qt("3.78826")));
        assert_eq!(b.ask, Level::new(px("61837.64"), qt("1.54698")));
        assert_eq!(b.header.exchange_ns, 0);
        let usdm = br#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256314}}"#;
        let Ok(Some(MarketEvent::Bbo(b))) = d.decode(usdm, 1) else {
            panic!("not a bbo");
        };
        assert_eq!(b.header.exchange_ns, 1_723_161_256_314_000_000);
        assert_eq!(b.ask.qty, qt("2.51"));
    }

    #[test]
    fn trades_and_agg_trades() {
        let mut d = Decoder::new();
        let trade = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
        let Ok(Some(MarketEvent::Trade(t))) = d.decode(trade, 1) else {
            panic!("not a trade");
        };
        assert_eq!(t.id, 3735683259);
        assert_eq!(t.aggressor, Side::Sell);
        assert_eq!(t.header.exchange_ns, 1_723_161_255_342_000_000);
        let agg = br#"{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,"l":23961322,"T":1626992741421,"m":false}}"#;
        let Ok(Some(MarketEvent::Trade(t))) = d.decode(agg, 1) else {
            panic!("not a trade");
        };
        assert_eq!(
            (t.id, t.qty, t.aggressor),
            (16599292, Qty::from_int(10), Side::Buy)
        );
        assert_eq!(t.header.symbol, 1);
        assert_eq!(d.symbols().len(), 2);
    }

    #[test]
    fn rest_snapshot_takes_the_current_symbol() {
        let mut d = Decoder::with_symbols(&["ETHUSDT", "BTCUSDT"]);
        let tick = br#"{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}"#;
        assert!(d.decode(tick, 0).is_ok());
        let snap = br#"{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":[["61800.20","2.909"]],"asks":[["61800.30","1.000"],["61800.40","2"]]}"#;
        let Ok(Some(MarketEvent::Snapshot(s))) = d.decode(snap, 3) else {
            panic!("not a snapshot");
        };
        assert_eq!(s.header.symbol, 1);
        assert_eq!(s.last_update_id, 5123107852948);
        assert_eq!((s.bids.len(), s.asks.len()), (1, 2));
        let Ok(MarketEvent::Snapshot(s)) = d.decode_snapshot(snap, 0, 3) else {
            panic!("not a snapshot");
        };
        assert_eq!(s.header.symbol, 0);
        assert!(d.decode_snapshot(tick, 0, 0).is_err());
    }

    #[test]
    fn other_messages_are_ignored() {
        let mut d = Decoder::new();
        let kline = br#"{"stream":"ctkusdt@kline_1m","data":{"e":"kline","E":1626992741424,"s":"CTKUSDT","k":{"t":1626992700000,"T":1626992759999,"s":"CTKUSDT","i":"1m","f":23961275,"L":23961322,"o":"1.01000","c":"1.01100","h":"1.01100","l":"1.01000","v":"3917","n":48,"x":false,"q":"3957.89900","V":"1729","Q":"1748.01900","B":"0"}}}"#;
        assert_eq!(d.decode(kline, 0), Ok(None));
        assert_eq!(d.decode(br#"{"result":null,"id":1}"#, 0), Ok(None));
        assert_eq!(d.decode(b" { } ", 0), Ok(None));
        assert_eq!(d.counters().ignored, 3);
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        let mut d = Decoder::new();
        let full = br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":2,"u":3,"b":[["1.5","2"]],"a":[]}}"#;
        // Every truncation of a valid frame is an error, never a panic.
        for n in 0..full.len() {
            assert!(d.decode(&full[..n], 0).is_err(), "prefix {n} decoded");
        }
        assert!(d.decode(full, 0).is_ok());
        let cases: [&[u8]; 10] = [
            br#"{"e":"depthUpdate","E":1,"U":2,"u":3,"b":[["x","2"]],"a":[]}"#,
            br#"{"e":"depthUpdate","E":1,"U":2,"u":3,"b":[["1","-2"]],"a":[]}"#,
            br#"{"e":"depthUpdate","E":1,"U":2,"u":3,"b":[]}"#,
            br#"{"e":"depthUpdate","E":1,"U":-2,"u":3,"b":[],"a":[]}"#,
            br#"{"e":"depthUpdate","E":1,"U":99999999999999999999,"u":3,"b":[],"a":[]}"#,
            br#"{"e":"trade","E":1,"t":1,"p":"1","q":"1","m":maybe}"#,
            br#"{"e":"trade","E":18446744073709551615,"t":1,"p":"1","q":"1","m":true}"#,
            br#"{"e":"trade","t":1,"p":"1","q":"1","m":true} x"#,
            br#"{"e":"bookTicker","u":1,"b":"1","B":"1","a":"1"}"#,
            br#"[1,2,3]"#,
        ];
        for c in cases {
            assert!(d.decode(c, 0).is_err(), "{}", String::from_utf8_lossy(c));
        }
        assert_eq!(d.counters().errors, full.len() as u64 + cases.len() as u64);
        let deep = [b'['; 100_000];
        let mut frame = br#"{"x":"#.to_vec();
        frame.extend_from_slice(&deep);
        assert!(d.decode(&frame, 0).is_err());
    }
}
