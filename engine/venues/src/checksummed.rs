//! Market events from the venues whose book messages carry a checksum (OKX, Kraken), so their
//! captures replay, convert and describe like Binance's.
//!
//! Books become the core's [`Snapshot`] and [`DepthDiff`] events with update ids of our own, one
//! per book message of an instrument, so `rt_core::BookSync` (spot rule) keeps them in order. The
//! venue's checksum is verified on every message first ([`crate::okx`], [`crate::kraken`]): a
//! mismatch (or an OKX sequence gap) is handed on as a gap in those ids, so the core drops the
//! book and waits for the next snapshot, exactly as after a lost Binance diff; messages that come
//! while the book is invalid are not handed on. Trades become [`Trade`] events (one frame may
//! hold several: they are handed out one by one). Ticker messages are counted as ignored.
//!
//! Live (the engine's feed, through [`crate::market`]) the decoder has a fixed symbol table, the
//! configured instruments in their order ([`ChecksumDecoder::with_symbols`]): frames of any
//! other instrument are ignored. What the last book message found is [`ChecksumDecoder::last_check`],
//! and [`ChecksumDecoder::invalidate`] drops a book on the caller's word (a stale book, a
//! resubscription), handing the core a gap so that it drops its copy at once too.
//!
//! The exchange time of an OKX event is its `ts`; Kraken's book and trade frames have per-level
//! times only, so their exchange time is the receive time.

use std::collections::{HashMap, VecDeque};

use rt_core::{
    DepthDiff, Header, Level, MarketEvent, Nanos, Price, Qty, Side, Snapshot, SymbolId, Trade,
};

use crate::binance::{DecodeCounters, DecodeError, MAX_SYMBOLS};
use crate::checksum::{CheckCounters, Checked, TextLevel};
use crate::kraken::{Kind, KrakenBooks, KrakenDecoder};
use crate::okx::{Channel, OkxBooks, OkxDecoder};
use crate::verify::Venue;

#[derive(Clone, Copy, Debug)]
enum Last {
    None,
    Depth(Header, u64, u64),
    Snapshot(Header, u64),
    Trade(Trade),
}

/// Decodes OKX or Kraken frames into the core's market events.
#[derive(Debug)]
pub struct ChecksumDecoder {
    venue: Venue,
    okx: (OkxDecoder, OkxBooks),
    kraken: (KrakenDecoder, KrakenBooks),
    symbols: Vec<String>,
    index: HashMap<Vec<u8>, SymbolId>,
    /// Per symbol: the last update id handed out.
    seq: Vec<u64>,
    bids: Vec<Level>,
    asks: Vec<Level>,
    pending: VecDeque<Trade>,
    last: Last,
    counters: DecodeCounters,
    trade_ids: u64,
    /// The symbol table is fixed (live): frames of other instruments are ignored.
    fixed: bool,
    /// What the last book message found, and for which symbol.
    last_check: Option<(SymbolId, Checked)>,
}

impl ChecksumDecoder {
    /// A decoder for `venue` (OKX or Kraken; Binance has its own [`crate::Decoder`]).
    pub fn new(venue: Venue) -> ChecksumDecoder {
        ChecksumDecoder {
            venue,
            okx: (OkxDecoder::new(), OkxBooks::new()),
            kraken: (KrakenDecoder::new(), KrakenBooks::new()),
            symbols: Vec::new(),
            index: HashMap::new(),
            seq: Vec::new(),
            bids: Vec::new(),
            asks: Vec::new(),
            pending: VecDeque::new(),
            last: Last::None,
            counters: DecodeCounters::default(),
            trade_ids: 0,
            fixed: false,
            last_check: None,
        }
    }

    /// A decoder of `venue` for these venue symbols only (ids in this order); frames of other
    /// instruments are ignored.
    pub fn with_symbols<S: AsRef<str>>(venue: Venue, symbols: &[S]) -> ChecksumDecoder {
        let mut d = ChecksumDecoder::new(venue);
        for s in symbols {
            // At most MAX_SYMBOLS: the caller's instruments, from a manifest.
            let _ = d.intern(s.as_ref().as_bytes());
        }
        d.fixed = true;
        d
    }

    /// Verify every `n`-th checksum of an instrument (1: every message; 0 counts as 1).
    pub fn set_check_every(&mut self, n: u64) {
        self.okx.1.check_every = n.max(1);
        self.kraken.1.check_every = n.max(1);
    }

    /// What the last decoded frame's book message found (`None`: the frame was no book
    /// message of a known instrument).
    pub fn last_check(&self) -> Option<(SymbolId, Checked)> {
        self.last_check
    }

    /// Every book's check counters summed, and the sequence gaps found.
    pub fn check_totals(&self) -> (CheckCounters, u64) {
        match self.venue {
            Venue::Okx => self.okx.1.totals(),
            _ => self.kraken.1.totals(),
        }
    }

    /// Drops the book of `symbol` until the venue's next snapshot. `true` when
    /// [`ChecksumDecoder::event`] now holds an empty diff out of sequence, which makes the core
    /// drop its book at once (the same gap a checksum mismatch gives).
    pub fn invalidate(&mut self, symbol: SymbolId, local_ns: Nanos) -> bool {
        let Some(name) = self.symbols.get(symbol as usize) else {
            return false;
        };
        let books = match self.venue {
            Venue::Okx => &mut self.okx.1 .0,
            _ => &mut self.kraken.1 .0,
        };
        books.invalidate(name.as_bytes());
        self.bids.clear();
        self.asks.clear();
        self.pending.clear();
        let header = Header {
            symbol,
            exchange_ns: local_ns,
            local_ns,
        };
        let out = self.book(
            header,
            false,
            Some(Checked::Mismatch {
                expected: 0,
                computed: 0,
            }),
        );
        // Not a message of the venue: nothing was checked.
        self.last_check = None;
        out
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    pub fn venue(&self) -> Venue {
        self.venue
    }

    pub fn counters(&self) -> DecodeCounters {
        self.counters
    }

    /// Hands out the next trade of the last frame, if one is waiting: `true` when
    /// [`ChecksumDecoder::event`] now returns it.
    pub fn next_pending(&mut self) -> bool {
        match self.pending.pop_front() {
            Some(trade) => {
                self.last = Last::Trade(trade);
                self.counters.events += 1;
                true
            }
            None => false,
        }
    }

    /// The last event decoded (borrowing the decoder's level lists).
    pub fn event(&self) -> Option<MarketEvent<'_>> {
        match self.last {
            Last::None => None,
            Last::Depth(header, first_id, final_id) => Some(MarketEvent::Depth(DepthDiff {
                header,
                first_id,
                final_id,
                prev_final_id: None,
                bids: &self.bids,
                asks: &self.asks,
            })),
            Last::Snapshot(header, last_update_id) => Some(MarketEvent::Snapshot(Snapshot {
                header,
                last_update_id,
                bids: &self.bids,
                asks: &self.asks,
            })),
            Last::Trade(t) => Some(MarketEvent::Trade(t)),
        }
    }

    /// The id of instrument `name`: interned on first sight, or `None` for an instrument
    /// outside a fixed table.
    fn lookup(&mut self, name: &[u8]) -> Result<Option<SymbolId>, DecodeError> {
        match self.index.get(name) {
            Some(&id) => Ok(Some(id)),
            None if self.fixed => Ok(None),
            None => self.intern(name).map(Some),
        }
    }

    fn intern(&mut self, name: &[u8]) -> Result<SymbolId, DecodeError> {
        if let Some(&id) = self.index.get(name) {
            return Ok(id);
        }
        if self.symbols.len() >= MAX_SYMBOLS {
            return Err(DecodeError::TooManySymbols);
        }
        let id = self.symbols.len() as SymbolId;
        self.index.insert(name.to_vec(), id);
        self.symbols
            .push(String::from_utf8_lossy(name).into_owned());
        self.seq.push(0);
        Ok(id)
    }

    /// Decodes one frame: `Ok(true)` when it gave an event (then [`ChecksumDecoder::event`]).
    pub fn decode_in_place(&mut self, frame: &[u8], local_ns: Nanos) -> Result<bool, DecodeError> {
        self.counters.frames += 1;
        self.last = Last::None;
        self.last_check = None;
        self.pending.clear();
        let decoded = match self.venue {
            Venue::Okx => self.okx_frame(frame, local_ns),
            _ => self.kraken_frame(frame, local_ns),
        };
        match decoded {
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
                Err(e)
            }
        }
    }

    fn okx_frame(&mut self, frame: &[u8], local_ns: Nanos) -> Result<bool, DecodeError> {
        let f = self.okx.0.decode(frame)?;
        let exchange_ns = i64::try_from(f.ts_ms)
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or(DecodeError::TimeOutOfRange {
                field: "ts",
                ms: f.ts_ms,
            })?;
        match f.channel {
            Channel::Books => {
                let Some(symbol) = self.lookup(f.inst_id)? else {
                    return Ok(false);
                };
                let header = Header {
                    symbol,
                    exchange_ns,
                    local_ns,
                };
                let checked = self.okx.1.apply(&f, &self.okx.0);
                fill(&mut self.bids, &self.okx.0.bids);
                fill(&mut self.asks, &self.okx.0.asks);
                Ok(self.book(header, f.snapshot, checked))
            }
            Channel::Trades => {
                let Some(symbol) = self.lookup(f.inst_id)? else {
                    return Ok(false);
                };
                for t in &self.okx.0.trades {
                    self.trade_ids += 1;
                    let header = Header {
                        symbol,
                        exchange_ns: i64::try_from(t.ts_ms)
                            .ok()
                            .and_then(|ms| ms.checked_mul(1_000_000))
                            .unwrap_or(exchange_ns),
                        local_ns,
                    };
                    self.pending
                        .push_back(trade(header, self.trade_ids, t.price, t.size, t.buy));
                }
                Ok(self.first_pending())
            }
            Channel::Tickers | Channel::Other => Ok(false),
        }
    }

    fn kraken_frame(&mut self, frame: &[u8], local_ns: Nanos) -> Result<bool, DecodeError> {
        let f = self.kraken.0.decode(frame)?;
        match f.kind {
            Kind::Book => {
                let Some(symbol) = self.lookup(f.pair)? else {
                    return Ok(false);
                };
                let header = Header {
                    symbol,
                    exchange_ns: local_ns,
                    local_ns,
                };
                let checked = self.kraken.1.apply(&f, &self.kraken.0);
                fill(&mut self.bids, &self.kraken.0.bids);
                fill(&mut self.asks, &self.kraken.0.asks);
                Ok(self.book(header, f.snapshot, checked))
            }
            Kind::Trade => {
                let Some(symbol) = self.lookup(f.pair)? else {
                    return Ok(false);
                };
                for t in &self.kraken.0.trades {
                    self.trade_ids += 1;
                    let header = Header {
                        symbol,
                        exchange_ns: local_ns,
                        local_ns,
                    };
                    self.pending
                        .push_back(trade(header, self.trade_ids, t.price, t.volume, t.buy));
                }
                Ok(self.first_pending())
            }
            Kind::Other => Ok(false),
        }
    }

    fn first_pending(&mut self) -> bool {
        match self.pending.pop_front() {
            Some(t) => {
                self.last = Last::Trade(t);
                true
            }
            None => false,
        }
    }

    /// A checked book message as the core's event, or nothing while the book is invalid.
    /// (`self.bids`/`self.asks` hold the message's levels.)
    fn book(&mut self, header: Header, snapshot: bool, checked: Option<Checked>) -> bool {
        if let Some(c) = checked {
            self.last_check = Some((header.symbol, c));
        }
        let seq = &mut self.seq[header.symbol as usize];
        let (first_id, final_id) = match checked {
            None | Some(Checked::Invalid) => return false,
            // The venue's book differs from ours, or its sequence skipped a message: a gap in
            // the ids makes the core drop its book too.
            Some(Checked::Mismatch { .. } | Checked::Gap) => (*seq + 2, *seq + 2),
            Some(Checked::Verified | Checked::Unchecked) => (*seq + 1, *seq + 1),
        };
        *seq = final_id;
        self.last = if snapshot {
            Last::Snapshot(header, final_id)
        } else {
            Last::Depth(header, first_id, final_id)
        };
        true
    }
}

fn fill(out: &mut Vec<Level>, levels: &[TextLevel]) {
    out.clear();
    out.extend(levels.iter().map(TextLevel::level));
}

fn trade(header: Header, id: u64, price: i64, qty: i64, buy: bool) -> Trade {
    Trade {
        header,
        id,
        price: Price(price),
        qty: Qty(qty),
        aggressor: if buy { Side::Buy } else { Side::Sell },
    }
}
