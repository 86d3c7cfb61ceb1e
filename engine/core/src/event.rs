//! Normalised market events: what a venue codec produces and what the book, the strategies and
//! the matching engine consume, in live trading and in backtests alike.
//!
//! Level lists borrow from the decoder's reusable buffers, so decoding a frame allocates nothing.

use crate::types::{Nanos, Price, Qty, Side};

/// Index of an instrument in the feed's symbol table (0 for a single-instrument feed).
pub type SymbolId = u32;

/// One price level: the new absolute size at `price` (a zero size deletes the level).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub price: Price,
    pub qty: Qty,
}

impl Level {
    pub const fn new(price: Price, qty: Qty) -> Level {
        Level { price, qty }
    }
}

/// Where and when an event happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub symbol: SymbolId,
    /// The exchange's event time (Binance `E`, or `T` for trades).
    pub exchange_ns: Nanos,
    /// When this process (or the recorder) received it. Not ordered with `exchange_ns`.
    pub local_ns: Nanos,
}

/// An incremental depth update (Binance `depthUpdate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthDiff<'a> {
    pub header: Header,
    /// `U`: first update id in this event.
    pub first_id: u64,
    /// `u`: final update id in this event.
    pub final_id: u64,
    /// `pu` (USD-M only): the previous event's final update id.
    pub prev_final_id: Option<u64>,
    pub bids: &'a [Level],
    pub asks: &'a [Level],
}

/// A full depth snapshot (Binance REST `GET /depth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot<'a> {
    pub header: Header,
    pub last_update_id: u64,
    pub bids: &'a [Level],
    pub asks: &'a [Level],
}

/// A public trade (Binance `trade` or `aggTrade`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub header: Header,
    pub id: u64,
    pub price: Price,
    pub qty: Qty,
    /// The side that crossed the spread (Binance `m == true` means a sell aggressor).
    pub aggressor: Side,
}

/// Best bid and offer (Binance `bookTicker`); `update_id` shares the depth id sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bbo {
    pub header: Header,
    pub update_id: u64,
    pub bid: Level,
    pub ask: Level,
}

/// Any market event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketEvent<'a> {
    Depth(DepthDiff<'a>),
    Snapshot(Snapshot<'a>),
    Trade(Trade),
    Bbo(Bbo),
}

impl MarketEvent<'_> {
    pub const fn header(&self) -> &Header {
        match self {
            MarketEvent::Depth(e) => &e.header,
            MarketEvent::Snapshot(e) => &e.header,
            MarketEvent::Trade(e) => &e.header,
            MarketEvent::Bbo(e) => &e.header,
        }
    }
}
