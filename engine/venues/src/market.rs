//! The market-data venue interface: everything the engine's feed needs to know of a venue's
//! public market data, behind one trait ([`MarketData`]), so that the feed (and the core,
//! strategies and risk behind it) name no venue.
//!
//! A venue's market data is:
//! - its **endpoints** (the defaults a config starts from: [`MarketData::default_endpoints`])
//!   and the URL the feed connects to ([`MarketData::stream_url`]);
//! - its **subscriptions**: frames sent after connecting, per instrument and channel
//!   ([`MarketData::subscribe`], and [`MarketData::resubscribe`] for one instrument's book;
//!   Binance names its streams in the URL and sends none);
//! - **decoding**: each frame into the core's events (book snapshot and diff, trade, best bid
//!   and offer), handed one by one to the caller ([`MarketData::decode`]);
//! - the **book's sync rule** ([`SyncRule`]): Binance's books come from a REST snapshot bridged
//!   by the stream's update ids, and a break is repaired with a new snapshot; OKX's and
//!   Kraken's come from the stream's own snapshot and are verified by the venue's checksum after
//!   every message (or every n-th: [`MarketData::set_check_every`]), and a mismatch, a sequence
//!   gap or a stale book is repaired by unsubscribing and subscribing the instrument again. Both
//!   end in the same core events: a book that breaks is handed to the core as a gap in its
//!   update ids, so `rt_core::BookSync` drops it at once and no strategy acts on it until the
//!   next snapshot;
//! - the mapping between config names and **venue symbols** ([`venue_symbol`]).
//!
//! [`for_exchange`] picks the implementation of a manifest exchange by its `venue` (and
//! `market`): the one place a venue is chosen. Implementations: [`BinanceMarket`] (Spot and
//! USD-M, also what the sim venue speaks), [`ChecksumMarket`] for OKX v5 (`books`, `trades`)
//! and Kraken v1 (`book`, `trade`).

use std::fmt;

use rt_core::{MarketEvent, Nanos, SymbolId};
use rt_manifest::model::{Exchange, Market, Venue as VenueKind};

use crate::binance::{DecodeError, Decoder};
use crate::checksum::{CheckCounters, Checked};
use crate::checksummed::ChecksumDecoder;
use crate::verify::Venue;

/// How a venue's books are kept in sync, and how a broken one is repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRule {
    /// A REST depth snapshot bridged by the diffs' update ids; a break (a gap, a crossed book,
    /// a lost event) is repaired by fetching a new snapshot ([`MarketData::snapshot_path`]).
    RestSnapshot,
    /// The stream sends its own snapshot on subscription, and every book message carries the
    /// venue's checksum of its book; a mismatch, a sequence gap or a stale book is repaired by
    /// unsubscribing and subscribing the instrument again.
    Resubscribe,
}

/// A venue's public endpoints (what a config names by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub ws: &'static str,
    pub rest: &'static str,
}

/// What the last decoded frame found about one instrument's book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookNews {
    /// A snapshot (from the stream): the book is valid from here.
    Snapshot,
    /// A message whose checksum matched the rebuilt book.
    Verified,
    /// A message applied without a checksum comparison (none sent, or not its turn).
    Unchecked,
    /// The venue's checksum differs from the rebuilt book's: the book is invalid.
    Mismatch,
    /// The venue's sequence ids skipped a message: the book is invalid.
    Gap,
    /// Dropped: the book is invalid, waiting for a snapshot.
    Dropped,
}

impl BookNews {
    /// The book broke on this message.
    pub const fn broke(self) -> bool {
        matches!(self, BookNews::Mismatch | BookNews::Gap)
    }
}

/// What decoding one frame gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Events handed to the caller.
    pub events: u32,
    /// Events the caller refused (`each` returned `false`: lost).
    pub lost: u32,
    /// The book message's news, if the frame was one: (symbol, news).
    pub book: Option<(SymbolId, BookNews)>,
}

/// The checksum counters of a venue's books, summed over its instruments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookChecks {
    /// Checksums compared with the rebuilt book, and how many matched.
    pub checked: u64,
    pub matched: u64,
    /// Sequence gaps found (OKX `prevSeqId`).
    pub gaps: u64,
    /// Book messages dropped while their book was invalid.
    pub unverified: u64,
}

impl BookChecks {
    pub const fn mismatched(&self) -> u64 {
        self.checked - self.matched
    }
}

/// One venue's public market data, without I/O (see the module documentation).
pub trait MarketData: fmt::Debug + Send {
    /// The venue's name, for logs.
    fn name(&self) -> &'static str;
    fn sync_rule(&self) -> SyncRule;
    fn default_endpoints(&self) -> Endpoints;
    /// The venue symbols, in the order of the symbol ids the events carry.
    fn symbols(&self) -> &[String];
    /// The URL to connect to, from the configured WebSocket endpoint.
    fn stream_url(&self, ws: &str) -> String;
    /// Frames that subscribe the instruments `symbols` (ids) to books and trades.
    fn subscribe(&self, symbols: &[SymbolId]) -> Vec<String>;
    /// Frames that unsubscribe the books of `symbols` and subscribe them again (the venue
    /// answers with a fresh snapshot); trades stay subscribed.
    fn resubscribe(&self, symbols: &[SymbolId]) -> Vec<String>;
    /// [`SyncRule::RestSnapshot`]: the REST path of symbol `symbol`'s depth snapshot of `limit`
    /// levels; `None` for a venue that sends its snapshots on the stream.
    fn snapshot_path(&self, symbol: SymbolId, limit: u32) -> Option<String>;
    /// Decodes a REST snapshot body of `symbol`.
    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        local_ns: Nanos,
    ) -> Result<MarketEvent<'_>, DecodeError>;
    /// Decodes one frame received at `local_ns`, handing each event to `each` (which returns
    /// `false` when it lost it). Frames that are no market data (acks, heartbeats) give none.
    fn decode(
        &mut self,
        frame: &[u8],
        local_ns: Nanos,
        each: &mut dyn FnMut(&MarketEvent<'_>) -> bool,
    ) -> Result<Decoded, DecodeError>;
    /// Drops `symbol`'s book until the venue's next snapshot (a stale book, a resubscription),
    /// handing `each` the event that makes the core drop its copy too, if the venue has one.
    fn invalidate(
        &mut self,
        symbol: SymbolId,
        local_ns: Nanos,
        each: &mut dyn FnMut(&MarketEvent<'_>) -> bool,
    );
    /// Verify every `n`-th checksum of an instrument (1: every message).
    fn set_check_every(&mut self, _n: u64) {}
    /// The checksum counters so far.
    fn checks(&self) -> BookChecks {
        BookChecks::default()
    }
}

/// The venue symbol of an instrument: the listing's symbol where the venue has one (OKX's
/// `instId`, Kraken's `wsname`), else the config name (Binance's symbols are the config names).
/// The other way, a config name is the venue symbol without its `-` and `/` separators
/// (`BTC-USDT` -> `BTCUSDT`), which the manifest checks (`instrument.venue_symbol`).
pub fn venue_symbol(config_name: &str, listing_symbol: Option<&str>) -> String {
    listing_symbol.unwrap_or(config_name).to_owned()
}

/// The market-data implementation of a manifest exchange (its instruments in the manifest's
/// order), chosen by its venue: the one place a venue is picked.
pub fn for_exchange(exchange: &Exchange) -> Box<dyn MarketData> {
    for_venue(exchange.venue, exchange.market, &venue_symbols(exchange))
}

/// The venue symbols of an exchange's instruments, in the manifest's order.
pub fn venue_symbols(exchange: &Exchange) -> Vec<String> {
    exchange
        .instruments
        .iter()
        .map(|(name, i)| venue_symbol(name, i.listing.as_ref().map(|l| l.symbol.as_str())))
        .collect()
}

/// The market-data implementation of `venue` (speaking `market` where the venue has several)
/// for these venue symbols.
pub fn for_venue<S: AsRef<str>>(
    venue: VenueKind,
    market: Market,
    symbols: &[S],
) -> Box<dyn MarketData> {
    match venue {
        VenueKind::BinanceSpot | VenueKind::BinanceUsdm | VenueKind::Sim => {
            Box::new(BinanceMarket::new(market, symbols))
        }
        VenueKind::Okx => Box::new(ChecksumMarket::new(Venue::Okx, symbols)),
        VenueKind::Kraken => Box::new(ChecksumMarket::new(Venue::Kraken, symbols)),
    }
}

/// Whether the engine has order entry on `venue` (a gateway venue, an account, a user stream):
/// OKX has (`okx::execution`: spot, swaps and futures), Kraken is read for its market data
/// only in this version.
pub const fn has_order_entry(venue: VenueKind) -> bool {
    match venue {
        VenueKind::BinanceSpot | VenueKind::BinanceUsdm | VenueKind::Sim | VenueKind::Okx => true,
        VenueKind::Kraken => false,
    }
}

/// Whether an engine opens order entry (a gateway venue, its private stream and account) on an
/// exchange of `venue` that a strategy of the engine trades (`traded`) or not: always where
/// the venue has order entry, but on OKX only when traded (an engine may read OKX's market
/// data without an account).
pub const fn order_entry_wanted(venue: VenueKind, traded: bool) -> bool {
    has_order_entry(venue) && (traded || !matches!(venue, VenueKind::Okx))
}

/// Binance Spot and USD-M market data: the combined stream of every instrument's depth diffs,
/// trades and best bid/offer, books from REST snapshots (`/api/v3/depth`, `/fapi/v1/depth`).
#[derive(Debug)]
pub struct BinanceMarket {
    market: Market,
    decoder: Decoder,
    symbols: Vec<String>,
}

impl BinanceMarket {
    pub fn new<S: AsRef<str>>(market: Market, symbols: &[S]) -> BinanceMarket {
        BinanceMarket {
            market,
            decoder: Decoder::with_symbols(symbols),
            symbols: symbols.iter().map(|s| s.as_ref().to_owned()).collect(),
        }
    }
}

impl MarketData for BinanceMarket {
    fn name(&self) -> &'static str {
        match self.market {
            Market::Spot => "binance_spot",
            Market::Usdm => "binance_usdm",
        }
    }

    fn sync_rule(&self) -> SyncRule {
        SyncRule::RestSnapshot
    }

    fn default_endpoints(&self) -> Endpoints {
        match self.market {
            Market::Spot => Endpoints {
                ws: "wss://stream.binance.com:9443",
                rest: "https://api.binance.com",
            },
            Market::Usdm => Endpoints {
                ws: "wss://fstream.binance.com",
                rest: "https://fapi.binance.com",
            },
        }
    }

    fn symbols(&self) -> &[String] {
        &self.symbols
    }

    fn stream_url(&self, ws: &str) -> String {
        let trade = match self.market {
            Market::Spot => "trade",
            Market::Usdm => "aggTrade",
        };
        let streams: Vec<String> = self
            .symbols
            .iter()
            .flat_map(|s| {
                let s = s.to_ascii_lowercase();
                [
                    format!("{s}@depth@100ms"),
                    format!("{s}@{trade}"),
                    format!("{s}@bookTicker"),
                ]
            })
            .collect();
        format!(
            "{}/stream?streams={}",
            ws.trim_end_matches('/'),
            streams.join("/")
        )
    }

    fn subscribe(&self, _symbols: &[SymbolId]) -> Vec<String> {
        Vec::new()
    }

    fn resubscribe(&self, _symbols: &[SymbolId]) -> Vec<String> {
        Vec::new()
    }

    fn snapshot_path(&self, symbol: SymbolId, limit: u32) -> Option<String> {
        let path = match self.market {
            Market::Spot => "/api/v3/depth",
            Market::Usdm => "/fapi/v1/depth",
        };
        let name = self.symbols.get(symbol as usize)?;
        Some(format!("{path}?symbol={name}&limit={limit}"))
    }

    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        local_ns: Nanos,
    ) -> Result<MarketEvent<'_>, DecodeError> {
        self.decoder.decode_snapshot(body, symbol, local_ns)
    }

    #[inline]
    fn decode(
        &mut self,
        frame: &[u8],
        local_ns: Nanos,
        each: &mut dyn FnMut(&MarketEvent<'_>) -> bool,
    ) -> Result<Decoded, DecodeError> {
        let mut out = Decoded::default();
        if let Some(ev) = self.decoder.decode(frame, local_ns)? {
            out.events = 1;
            if !each(&ev) {
                out.lost = 1;
            }
        }
        Ok(out)
    }

    fn invalidate(
        &mut self,
        _symbol: SymbolId,
        _local_ns: Nanos,
        _each: &mut dyn FnMut(&MarketEvent<'_>) -> bool,
    ) {
        // The core's sync rule finds Binance's breaks itself (update ids); a new REST snapshot
        // repairs them.
    }
}

/// Kraken's book depth subscribed (its capture's, and the deepest v1 book).
pub const KRAKEN_BOOK_DEPTH: u32 = 1000;

/// OKX v5 and Kraken v1 public market data: books with the venue's checksum, and trades.
#[derive(Debug)]
pub struct ChecksumMarket {
    venue: Venue,
    decoder: ChecksumDecoder,
}

impl ChecksumMarket {
    /// `venue` is [`Venue::Okx`] or [`Venue::Kraken`] (anything else is read as Kraken).
    pub fn new<S: AsRef<str>>(venue: Venue, symbols: &[S]) -> ChecksumMarket {
        ChecksumMarket {
            venue,
            decoder: ChecksumDecoder::with_symbols(venue, symbols),
        }
    }

    fn names(&self, symbols: &[SymbolId]) -> Vec<&str> {
        symbols
            .iter()
            .filter_map(|&k| self.decoder.symbols().get(k as usize))
            .map(String::as_str)
            .collect()
    }

    /// OKX: `{"op":..,"args":[{"channel":..,"instId":..},..]}`.
    fn okx_op(&self, op: &str, symbols: &[SymbolId], channels: &[&str]) -> Vec<String> {
        let args: Vec<String> = self
            .names(symbols)
            .into_iter()
            .flat_map(|s| {
                channels
                    .iter()
                    .map(move |c| format!("{{\"channel\":\"{c}\",\"instId\":{}}}", json_str(s)))
            })
            .collect();
        if args.is_empty() {
            return Vec::new();
        }
        vec![format!("{{\"op\":\"{op}\",\"args\":[{}]}}", args.join(","))]
    }

    /// Kraken: `{"event":..,"pair":[..],"subscription":{..}}`.
    fn kraken_event(&self, event: &str, symbols: &[SymbolId], subscription: &str) -> String {
        let pairs: Vec<String> = self.names(symbols).into_iter().map(json_str).collect();
        format!(
            "{{\"event\":\"{event}\",\"pair\":[{}],\"subscription\":{subscription}}}",
            pairs.join(",")
        )
    }
}

/// `s` as a JSON string (venue symbols are plain ASCII; quotes and backslashes escaped anyway).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl MarketData for ChecksumMarket {
    fn name(&self) -> &'static str {
        self.venue.name()
    }

    fn sync_rule(&self) -> SyncRule {
        SyncRule::Resubscribe
    }

    fn default_endpoints(&self) -> Endpoints {
        match self.venue {
            Venue::Okx => Endpoints {
                ws: "wss://ws.okx.com:8443/ws/v5/public",
                rest: "https://www.okx.com",
            },
            _ => Endpoints {
                ws: "wss://ws.kraken.com",
                rest: "https://api.kraken.com",
            },
        }
    }

    fn symbols(&self) -> &[String] {
        self.decoder.symbols()
    }

    fn stream_url(&self, ws: &str) -> String {
        ws.to_owned()
    }

    fn subscribe(&self, symbols: &[SymbolId]) -> Vec<String> {
        if symbols.is_empty() {
            return Vec::new();
        }
        match self.venue {
            Venue::Okx => self.okx_op("subscribe", symbols, &["books", "trades"]),
            _ => vec![
                self.kraken_event(
                    "subscribe",
                    symbols,
                    &format!("{{\"name\":\"book\",\"depth\":{KRAKEN_BOOK_DEPTH}}}"),
                ),
                self.kraken_event("subscribe", symbols, "{\"name\":\"trade\"}"),
            ],
        }
    }

    fn resubscribe(&self, symbols: &[SymbolId]) -> Vec<String> {
        if symbols.is_empty() {
            return Vec::new();
        }
        match self.venue {
            Venue::Okx => {
                let mut out = self.okx_op("unsubscribe", symbols, &["books"]);
                out.extend(self.okx_op("subscribe", symbols, &["books"]));
                out
            }
            _ => {
                let book = format!("{{\"name\":\"book\",\"depth\":{KRAKEN_BOOK_DEPTH}}}");
                vec![
                    self.kraken_event("unsubscribe", symbols, &book),
                    self.kraken_event("subscribe", symbols, &book),
                ]
            }
        }
    }

    fn snapshot_path(&self, _symbol: SymbolId, _limit: u32) -> Option<String> {
        None
    }

    fn decode_snapshot(
        &mut self,
        _body: &[u8],
        _symbol: SymbolId,
        _local_ns: Nanos,
    ) -> Result<MarketEvent<'_>, DecodeError> {
        Err(DecodeError::MissingField {
            event: "snapshot",
            field: "(this venue sends its snapshots on the stream)",
        })
    }

    fn decode(
        &mut self,
        frame: &[u8],
        local_ns: Nanos,
        each: &mut dyn FnMut(&MarketEvent<'_>) -> bool,
    ) -> Result<Decoded, DecodeError> {
        let mut out = Decoded::default();
        let mut more = self.decoder.decode_in_place(frame, local_ns)?;
        let snapshot = matches!(self.decoder.event(), Some(MarketEvent::Snapshot(_)));
        out.book = self.decoder.last_check().map(|(symbol, checked)| {
            let news = match checked {
                Checked::Verified | Checked::Unchecked if snapshot => BookNews::Snapshot,
                Checked::Verified => BookNews::Verified,
                Checked::Unchecked => BookNews::Unchecked,
                Checked::Mismatch { .. } => BookNews::Mismatch,
                Checked::Gap => BookNews::Gap,
                Checked::Invalid => BookNews::Dropped,
            };
            (symbol, news)
        });
        while more {
            if let Some(ev) = self.decoder.event() {
                out.events += 1;
                if !each(&ev) {
                    out.lost += 1;
                }
            }
            more = self.decoder.next_pending();
        }
        Ok(out)
    }

    fn invalidate(
        &mut self,
        symbol: SymbolId,
        local_ns: Nanos,
        each: &mut dyn FnMut(&MarketEvent<'_>) -> bool,
    ) {
        if self.decoder.invalidate(symbol, local_ns) {
            if let Some(ev) = self.decoder.event() {
                each(&ev);
            }
        }
    }

    fn set_check_every(&mut self, n: u64) {
        self.decoder.set_check_every(n);
    }

    fn checks(&self) -> BookChecks {
        let (c, gaps): (CheckCounters, u64) = self.decoder.check_totals();
        BookChecks {
            checked: c.checked,
            matched: c.matched,
            gaps,
            unverified: c.unverified,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::recording::FrameReader;
    use std::path::Path;

    fn data(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel)
    }

    /// Every received frame of a bundled capture through `m`: (events, book news).
    fn replay(m: &mut dyn MarketData, rel: &str) -> (u64, Vec<(SymbolId, BookNews)>) {
        let mut reader = FrameReader::open(&data(rel)).unwrap();
        let mut events = 0u64;
        let mut news = Vec::new();
        while let Some(frame) = reader.next_frame() {
            let frame = frame.unwrap();
            let d = m
                .decode(frame.bytes, frame.local_ns, &mut |_| true)
                .unwrap();
            events += u64::from(d.events);
            news.extend(d.book);
        }
        (events, news)
    }

    #[test]
    fn binance_names_its_streams_in_the_url_and_fetches_rest_snapshots() {
        let m = BinanceMarket::new(Market::Spot, &["BTCUSDT"]);
        assert_eq!(m.sync_rule(), SyncRule::RestSnapshot);
        assert_eq!(
            m.stream_url("ws://127.0.0.1:1/"),
            "ws://127.0.0.1:1/stream?streams=btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
        );
        assert!(m.subscribe(&[0]).is_empty() && m.resubscribe(&[0]).is_empty());
        assert_eq!(
            m.snapshot_path(0, 1000).unwrap(),
            "/api/v3/depth?symbol=BTCUSDT&limit=1000"
        );
        assert_eq!(m.snapshot_path(1, 1000), None);
        let u = BinanceMarket::new(Market::Usdm, &["BTCUSDT"]);
        assert!(u.stream_url("ws://h").contains("btcusdt@aggTrade"));
        assert!(u.snapshot_path(0, 5).unwrap().starts_with("/fapi/v1/depth"));
        assert_eq!(u.default_endpoints().rest, "https://fapi.binance.com");
    }

    #[test]
    fn binance_decodes_the_bundled_capture_into_core_events() {
        let mut m = BinanceMarket::new(Market::Spot, &["BTCUSDT"]);
        let mut reader = FrameReader::open(&data("data/binance/spot_btcusdt_20240808.gz")).unwrap();
        let (mut depth, mut n) = (0, 0);
        while let Some(frame) = reader.next_frame() {
            let frame = frame.unwrap();
            n += 1;
            if n > 2000 {
                break;
            }
            let d = m
                .decode(frame.bytes, frame.local_ns, &mut |ev| {
                    if matches!(ev, MarketEvent::Depth(_)) {
                        depth += 1;
                    }
                    true
                })
                .unwrap();
            assert_eq!(d.book, None, "Binance has no checksum news");
        }
        assert!(depth > 10, "{depth}");
    }

    #[test]
    fn okx_subscribes_books_and_trades_and_resubscribes_books() {
        let m = ChecksumMarket::new(Venue::Okx, &["BTC-USDT", "UNI-USD-SWAP"]);
        assert_eq!(m.sync_rule(), SyncRule::Resubscribe);
        assert_eq!(
            m.subscribe(&[1]),
            [
                r#"{"op":"subscribe","args":[{"channel":"books","instId":"UNI-USD-SWAP"},{"channel":"trades","instId":"UNI-USD-SWAP"}]}"#
            ]
        );
        assert_eq!(
            m.resubscribe(&[0]),
            [
                r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#,
                r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#
            ]
        );
        assert_eq!(m.snapshot_path(0, 10), None);
        assert_eq!(m.stream_url("ws://h/ws/v5/public"), "ws://h/ws/v5/public");
    }

    #[test]
    fn kraken_subscribes_its_book_depth_and_trades() {
        let m = ChecksumMarket::new(Venue::Kraken, &["XBT/CHF"]);
        assert_eq!(
            m.subscribe(&[0]),
            [
                r#"{"event":"subscribe","pair":["XBT/CHF"],"subscription":{"name":"book","depth":1000}}"#,
                r#"{"event":"subscribe","pair":["XBT/CHF"],"subscription":{"name":"trade"}}"#
            ]
        );
        assert_eq!(
            m.resubscribe(&[0]),
            [
                r#"{"event":"unsubscribe","pair":["XBT/CHF"],"subscription":{"name":"book","depth":1000}}"#,
                r#"{"event":"subscribe","pair":["XBT/CHF"],"subscription":{"name":"book","depth":1000}}"#
            ]
        );
    }

    #[test]
    fn okx_capture_verifies_every_checksum_through_the_interface() {
        let mut m = ChecksumMarket::new(Venue::Okx, &["BTC-USDT", "UNI-USD-SWAP"]);
        let (events, news) = replay(&mut m, "data/okx/cryptofeed_OKX.ws.1.0");
        let c = m.checks();
        assert_eq!((c.checked, c.matched, c.gaps), (191, 191, 0));
        assert_eq!(news.iter().filter(|n| n.1 == BookNews::Snapshot).count(), 2);
        assert!(news.iter().all(|n| !n.1.broke()));
        assert!(events > 191, "{events}");
    }

    #[test]
    fn kraken_capture_verifies_every_checksum_through_the_interface() {
        let pairs = ["XBT/CHF", "ETH/CHF", "XMR/USD", "ADA/XBT", "OMG/USD"];
        let mut m = ChecksumMarket::new(Venue::Kraken, &pairs);
        replay(&mut m, "data/kraken/cryptofeed_KRAKEN.ws.50.0");
        let c = m.checks();
        assert_eq!((c.checked, c.matched), (2372, 2372));
    }

    #[test]
    fn instruments_outside_the_table_are_ignored() {
        let mut m = ChecksumMarket::new(Venue::Okx, &["UNI-USD-SWAP"]);
        replay(&mut m, "data/okx/cryptofeed_OKX.ws.1.0");
        let c = m.checks();
        assert!(c.checked > 0 && c.checked < 191, "{c:?}");
        assert_eq!(c.matched, c.checked);
    }

    #[test]
    fn an_altered_level_is_a_mismatch_on_that_message_and_a_gap_for_the_core() {
        let mut m = ChecksumMarket::new(Venue::Okx, &["BTC-USDT"]);
        let snap = br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1","checksum":-1}]}"#;
        // Compute the real checksum of the one-level book, then send it right.
        let crc = crc32fast::hash(b"8476.97:256:8476.98:415") as i32;
        let snap = String::from_utf8_lossy(snap).replace("-1}", &format!("{crc}}}"));
        let mut ids = Vec::new();
        let mut push = |ev: &MarketEvent<'_>| {
            ids.push(match ev {
                MarketEvent::Snapshot(s) => (0, s.last_update_id),
                MarketEvent::Depth(d) => (d.first_id, d.final_id),
                _ => (9, 9),
            });
            true
        };
        let d = m.decode(snap.as_bytes(), 1, &mut push).unwrap();
        assert_eq!(d.book, Some((0, BookNews::Snapshot)));
        // An update claiming the book is unchanged, but with a level altered.
        let upd = format!(
            r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"update","data":[{{"asks":[],"bids":[["8476.97","257","0","12"]],"ts":"2","checksum":{crc}}}]}}"#
        );
        let d = m.decode(upd.as_bytes(), 2, &mut push).unwrap();
        assert_eq!(d.book, Some((0, BookNews::Mismatch)));
        let d = m.decode(upd.as_bytes(), 3, &mut push).unwrap();
        assert_eq!((d.book, d.events), (Some((0, BookNews::Dropped)), 0));
        m.invalidate(0, 4, &mut push);
        assert_eq!(ids, [(0, 1), (3, 3), (5, 5)], "the mismatch skips an id");
        let d = m.decode(snap.as_bytes(), 5, &mut |_| true).unwrap();
        assert_eq!(d.book, Some((0, BookNews::Snapshot)));
        let c = m.checks();
        assert_eq!((c.checked, c.matched, c.unverified), (3, 2, 1));
    }

    /// `book_checksum_every` N: every N-th book message of an instrument is verified (the
    /// snapshot is its first), the counters say how many, and a book corrupted by a message
    /// that was not verified is found at the next verified one.
    #[test]
    fn with_an_interval_a_corrupted_book_is_found_at_the_next_checked_message() {
        let okx = "data/okx/cryptofeed_OKX.ws.1.0";
        let mut every = ChecksumMarket::new(Venue::Okx, &["BTC-USDT"]);
        let (_, news) = replay(&mut every, okx);
        let messages = news.len() as u64;
        assert_eq!(every.checks().checked, messages);
        let mut fourth = ChecksumMarket::new(Venue::Okx, &["BTC-USDT"]);
        fourth.set_check_every(4);
        let (_, news) = replay(&mut fourth, okx);
        let c = fourth.checks();
        assert_eq!((c.checked, c.matched), (messages / 4, messages / 4));
        assert_eq!(
            news.iter().filter(|n| n.1 == BookNews::Verified).count() as u64,
            messages / 4
        );

        // The second book message gets a bid the venue never had (at the top: within the
        // checksummed levels, and never removed by the venue's later updates).
        let mut m = ChecksumMarket::new(Venue::Okx, &["BTC-USDT"]);
        m.set_check_every(4);
        let mut reader = FrameReader::open(&data(okx)).unwrap();
        let mut seen = Vec::new();
        while let Some(frame) = reader.next_frame() {
            let frame = frame.unwrap();
            let mut text = String::from_utf8_lossy(frame.bytes).into_owned();
            let book =
                text.contains("\"channel\":\"books\"") && text.contains("\"instId\":\"BTC-USDT\"");
            if book && seen.len() == 1 {
                text = text.replacen(
                    "\"bids\":[",
                    "\"bids\":[[\"99999.9\",\"1\",\"0\",\"1\"],",
                    1,
                );
            }
            let d = m
                .decode(text.as_bytes(), frame.local_ns, &mut |_| true)
                .unwrap();
            if let Some((0, news)) = d.book {
                seen.push(news);
            }
            if seen.len() == 5 {
                break;
            }
        }
        assert_eq!(
            seen,
            [
                BookNews::Snapshot,
                BookNews::Unchecked,
                BookNews::Unchecked,
                BookNews::Mismatch,
                BookNews::Dropped
            ]
        );
        let c = m.checks();
        assert_eq!((c.checked, c.matched, c.unverified), (1, 0, 1));
    }

    #[test]
    fn config_names_map_to_venue_symbols() {
        assert_eq!(venue_symbol("BTCUSDT", Some("BTC-USDT")), "BTC-USDT");
        assert_eq!(venue_symbol("BTCUSDT", None), "BTCUSDT");
    }
}
