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

#[inline]
fn decimal(bytes: &[u8], field: &'static str) -> Result<i64, DecodeError> {
    rt_core::parse_units(bytes).map_err(|source| DecodeError::BadDecimal { field, source })
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

/// A decimal field: parsed on the fast path, or kept raw (to be parsed, and refused if bad, only
/// when the message turns out to need it: other messages may put anything in these keys).
#[derive(Clone, Copy)]
enum Dec<'a> {
    Units(i64),
    Raw(&'a [u8]),
}

impl Dec<'_> {
    #[inline]
    fn units(self, field: &'static str) -> Result<i64, DecodeError> {
        match self {
            Dec::Units(v) => Ok(v),
            Dec::Raw(bytes) => decimal(bytes, field),
        }
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

/// A cursor over a frame. Every access is bounds-checked; errors carry the offset.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn ws(&mut self) {
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
    fn peek(&mut self) -> Result<u8, DecodeError> {
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
    fn next_byte(&mut self) -> Result<u8, DecodeError> {
        let c = self.peek()?;
        self.i += 1;
        Ok(c)
    }

    #[inline]
    fn expect(&mut self, want: u8, expected: &'static str) -> Result<(), DecodeError> {
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
    fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        self.expect(b'"', "'\"'")?;
        let b = self.b;
        let start = self.i;
        let mut i = start;
        loop {
            if let Some(v) = load8(b, i) {
                let hits = has_byte(v, b'"') | has_byte(v, b'\\');
                if hits == 0 {
                    i += 8;
                    continue;
                }
                // The lowest flag is exact: it points at the first quote or backslash.
                i += (hits.trailing_zeros() / 8) as usize;
            }
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => i += 2,
                Some(_) => i += 1,
                None => return Err(DecodeError::Truncated { at: b.len() }),
            }
        }
        self.i = i + 1;
        b.get(start..i)
            .ok_or(DecodeError::Truncated { at: b.len() })
    }

    /// A string's bytes, or a bare number token (decimals may come unquoted).
    #[inline]
    fn scalar(&mut self) -> Result<&'a [u8], DecodeError> {
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
    fn dec(&mut self) -> Result<Dec<'a>, DecodeError> {
        if let Some((units, end)) = fast_decimal(self.b, self.i) {
            self.i = end;
            return Ok(Dec::Units(units));
        }
        self.scalar().map(Dec::Raw)
    }

    #[inline(always)]
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
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

    fn boolean(&mut self) -> Result<bool, DecodeError> {
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
    fn levels(&mut self, out: &mut Vec<Level>, field: &'static str) -> Result<(), DecodeError> {
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
    fn skip_value(&mut self) -> Result<(), DecodeError> {
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

    fn unexpected(&self, expected: &'static str) -> DecodeError {
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

/// `["p","q"]` at `b[i]`: price, qty and the index after the `]`.
#[inline(always)]
fn fast_level(b: &[u8], i: usize) -> Option<(i64, i64, usize)> {
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
fn fast_decimal(b: &[u8], i: usize) -> Option<(i64, usize)> {
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

/// Digits one by one (up to 10) from `b[j]`: the value and the index after them.
#[inline]
fn int_digits(b: &[u8], mut j: usize) -> Option<(i64, usize)> {
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

const ZEROS: u64 = 0x3030_3030_3030_3030;

#[inline(always)]
fn load8(b: &[u8], j: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(j..j + 8)?.try_into().ok()?))
}

/// Flags (high bit of the byte) where `v` holds `byte`; the lowest flag is exact, higher ones
/// may be spurious (borrows), which is all a search for the first match needs.
#[inline(always)]
fn has_byte(v: u64, byte: u8) -> u64 {
    let x = v ^ (0x0101_0101_0101_0101 * u64::from(byte));
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080
}

/// How many of the 8 bytes (in memory order) are ASCII digits before the first that is not.
#[inline(always)]
fn digit_run(v: u64) -> usize {
    // A byte is a digit when its high nibble is 3 and still is after adding 6. A carry out of a
    // non-digit byte can only spoil the bytes after it, which do not count.
    let bad = ((v & 0xF0F0_F0F0_F0F0_F0F0) ^ ZEROS)
        | ((v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ ZEROS);
    (bad.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits (first byte most significant), branch-free.
#[inline(always)]
fn swar_value(v: u64) -> i64 {
    let v = v - ZEROS;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    let v = (v.wrapping_mul(10_000) + (v >> 32)) & 0x0000_0000_FFFF_FFFF;
    v as i64
}

const POW10_U64: [u64; 9] = [
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

const POW10: [i64; 9] = [
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
fn eight_digits(bytes: &[u8]) -> Option<i64> {
    let v = u64::from_le_bytes(bytes.try_into().ok()?);
    (digit_run(v) == 8).then(|| swar_value(v))
}

#[cfg(test)]
mod tests {
    use super::*;

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
