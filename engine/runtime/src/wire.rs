//! What travels on the engine's rings, as bytes in fixed-size slots.
//!
//! - market data (feed -> strategy): one normalised [`MarketEvent`] per record; a depth diff
//!   or snapshot with more levels than one slot holds continues in further slots (a first
//!   slot with the event's header, then continuation slots of levels only). A record whose
//!   slots were cut by a full ring is discarded by the reader (the ring reports the loss as a
//!   gap before the next message, and the book resyncs);
//! - orders (strategy -> gateway): [`OrderMsg`], one slot;
//! - executions (gateway -> strategy): [`ExecMsg`], one slot.
//!
//! Little-endian, fixed offsets; no allocation on either side.

use rt_core::{
    Bbo, DepthDiff, ExecKind, Header, Level, MarketEvent, Nanos, OrderKind, Price, Qty,
    RejectReason, Side, Snapshot, Trade,
};

const DEPTH: u8 = 1;
const SNAPSHOT: u8 = 2;
const TRADE: u8 = 3;
const BBO: u8 = 4;
/// The feed lost its stream (disconnect, stall): the exchange's books are not to be trusted.
const FEED_DOWN: u8 = 5;
const CONTINUATION: u8 = 6;

const FIRST: u8 = 1;
const LAST: u8 = 2;
const SELL_AGGRESSOR: u8 = 4;
const HAS_PREV: u8 = 8;

const HEAD: usize = 56;
const CONT_HEAD: usize = 8;
const LEVEL: usize = 16;
/// The smallest slot payload that carries market data (a first slot's header and one level).
pub const MIN_CAPACITY: usize = HEAD + LEVEL;

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn put_i64(buf: &mut [u8], at: usize, v: i64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(w)
}
fn get_i64(buf: &[u8], at: usize) -> i64 {
    let mut w = [0; 8];
    w.copy_from_slice(&buf[at..at + 8]);
    i64::from_le_bytes(w)
}
fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(w)
}
fn get_u16(buf: &[u8], at: usize) -> u16 {
    let mut w = [0; 2];
    w.copy_from_slice(&buf[at..at + 2]);
    u16::from_le_bytes(w)
}

/// Why a record could not be written whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The ring was full: the record (or its rest) was dropped and counted by the ring.
    Dropped,
}

/// Writes one market event as one or more slots through `push`, which writes one slot (a
/// closure filling the slot's buffer and returning its length) and says whether it fit.
/// Stops at the first slot that does not fit.
pub fn write_event(
    ev: &MarketEvent<'_>,
    capacity: usize,
    mut push: impl FnMut(&mut dyn FnMut(&mut [u8]) -> usize) -> bool,
) -> WriteOutcome {
    let (kind, header, a, b, c, flags0, bids, asks): (
        u8,
        Header,
        u64,
        u64,
        u64,
        u8,
        &[Level],
        &[Level],
    ) = match ev {
        MarketEvent::Depth(d) => (
            DEPTH,
            d.header,
            d.first_id,
            d.final_id,
            d.prev_final_id.unwrap_or(0),
            if d.prev_final_id.is_some() {
                HAS_PREV
            } else {
                0
            },
            d.bids,
            d.asks,
        ),
        MarketEvent::Snapshot(s) => (
            SNAPSHOT,
            s.header,
            s.last_update_id,
            0,
            0,
            0,
            s.bids,
            s.asks,
        ),
        MarketEvent::Trade(t) => (
            TRADE,
            t.header,
            t.id,
            t.price.0 as u64,
            t.qty.0 as u64,
            if t.aggressor == Side::Sell {
                SELL_AGGRESSOR
            } else {
                0
            },
            &[][..],
            &[][..],
        ),
        MarketEvent::Bbo(q) => {
            let pair = [q.bid, q.ask];
            return write_levels(
                BBO,
                q.header,
                q.update_id,
                0,
                0,
                0,
                &pair,
                &[],
                capacity,
                &mut push,
            );
        }
    };
    write_levels(
        kind, header, a, b, c, flags0, bids, asks, capacity, &mut push,
    )
}

#[allow(clippy::too_many_arguments)]
fn write_levels(
    kind: u8,
    header: Header,
    a: u64,
    b: u64,
    c: u64,
    flags0: u8,
    bids: &[Level],
    asks: &[Level],
    capacity: usize,
    push: &mut impl FnMut(&mut dyn FnMut(&mut [u8]) -> usize) -> bool,
) -> WriteOutcome {
    let total = bids.len() + asks.len();
    let level = |k: usize| {
        if k < bids.len() {
            bids[k]
        } else {
            asks[k - bids.len()]
        }
    };
    if capacity < MIN_CAPACITY {
        return WriteOutcome::Dropped;
    }
    let first_n = ((capacity - HEAD) / LEVEL).min(total);
    let per_cont = (capacity - CONT_HEAD) / LEVEL;
    let mut done = first_n;
    let last_first = done == total;
    let ok = push(&mut |buf: &mut [u8]| {
        buf[0] = kind;
        buf[1] = flags0 | FIRST | if last_first { LAST } else { 0 };
        put_u16(buf, 2, first_n as u16);
        put_u32(buf, 4, header.symbol);
        put_i64(buf, 8, header.exchange_ns);
        put_i64(buf, 16, header.local_ns);
        put_u64(buf, 24, a);
        put_u64(buf, 32, b);
        put_u64(buf, 40, c);
        put_u32(buf, 48, bids.len() as u32);
        put_u32(buf, 52, asks.len() as u32);
        for k in 0..first_n {
            let l = level(k);
            put_i64(buf, HEAD + k * LEVEL, l.price.0);
            put_i64(buf, HEAD + k * LEVEL + 8, l.qty.0);
        }
        HEAD + first_n * LEVEL
    });
    if !ok {
        return WriteOutcome::Dropped;
    }
    while done < total {
        let n = per_cont.min(total - done);
        let start = done;
        let last = start + n == total;
        let ok = push(&mut |buf: &mut [u8]| {
            buf[0] = CONTINUATION;
            buf[1] = if last { LAST } else { 0 };
            put_u16(buf, 2, n as u16);
            for k in 0..n {
                let l = level(start + k);
                put_i64(buf, CONT_HEAD + k * LEVEL, l.price.0);
                put_i64(buf, CONT_HEAD + k * LEVEL + 8, l.qty.0);
            }
            CONT_HEAD + n * LEVEL
        });
        if !ok {
            return WriteOutcome::Dropped;
        }
        done += n;
    }
    WriteOutcome::Written
}

/// Slots a record of `levels` levels takes in slots of `capacity` payload bytes.
pub fn slots_for(levels: usize, capacity: usize) -> usize {
    if capacity < MIN_CAPACITY {
        return usize::MAX;
    }
    let first = (capacity - HEAD) / LEVEL;
    let per_cont = (capacity - CONT_HEAD) / LEVEL;
    1 + levels.saturating_sub(first).div_ceil(per_cont)
}

/// Writes the feed-down marker (one slot).
pub fn write_feed_down(buf: &mut [u8], local_ns: Nanos) -> usize {
    buf[0] = FEED_DOWN;
    buf[1] = FIRST | LAST;
    put_u16(buf, 2, 0);
    put_u32(buf, 4, 0);
    put_i64(buf, 8, local_ns);
    put_i64(buf, 16, local_ns);
    HEAD
}

/// What one slot completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assembled {
    /// More slots of this record are to come.
    Partial,
    /// A whole event: read it with [`Assembler::event`].
    Event,
    FeedDown {
        local_ns: Nanos,
    },
    /// A slot that fits no record (a continuation without its start, a bad kind or size).
    Malformed,
}

/// Reassembles market-data records from slots, into reusable level buffers.
#[derive(Debug, Default)]
pub struct Assembler {
    kind: u8,
    flags: u8,
    header: Header,
    a: u64,
    b: u64,
    c: u64,
    n_bids: usize,
    n_asks: usize,
    levels: Vec<Level>,
    in_progress: bool,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler {
            levels: Vec::with_capacity(2048),
            ..Assembler::default()
        }
    }

    /// The ring lost messages: a record in progress is incomplete, drop it.
    pub fn reset(&mut self) {
        self.in_progress = false;
        self.levels.clear();
    }

    pub fn on_slot(&mut self, buf: &[u8]) -> Assembled {
        if buf.len() < CONT_HEAD {
            self.reset();
            return Assembled::Malformed;
        }
        let kind = buf[0];
        let flags = buf[1];
        let n = usize::from(get_u16(buf, 2));
        if kind == CONTINUATION {
            if !self.in_progress || buf.len() < CONT_HEAD + n * LEVEL {
                self.reset();
                return Assembled::Malformed;
            }
            self.read_levels(buf, CONT_HEAD, n);
        } else {
            if buf.len() < HEAD + n * LEVEL || !(DEPTH..=FEED_DOWN).contains(&kind) {
                self.reset();
                return Assembled::Malformed;
            }
            if kind == FEED_DOWN {
                self.reset();
                return Assembled::FeedDown {
                    local_ns: get_i64(buf, 16),
                };
            }
            self.levels.clear();
            self.kind = kind;
            self.flags = flags;
            self.header = Header {
                symbol: get_u32(buf, 4),
                exchange_ns: get_i64(buf, 8),
                local_ns: get_i64(buf, 16),
            };
            self.a = get_u64(buf, 24);
            self.b = get_u64(buf, 32);
            self.c = get_u64(buf, 40);
            self.n_bids = get_u32(buf, 48) as usize;
            self.n_asks = get_u32(buf, 52) as usize;
            self.in_progress = true;
            self.read_levels(buf, HEAD, n);
        }
        if flags & LAST == 0 {
            return Assembled::Partial;
        }
        self.in_progress = false;
        if self.levels.len() != self.n_bids + self.n_asks {
            self.levels.clear();
            return Assembled::Malformed;
        }
        Assembled::Event
    }

    fn read_levels(&mut self, buf: &[u8], at: usize, n: usize) {
        for k in 0..n {
            let off = at + k * LEVEL;
            self.levels.push(Level {
                price: Price(get_i64(buf, off)),
                qty: Qty(get_i64(buf, off + 8)),
            });
        }
    }

    /// The event the last [`Assembled::Event`] completed.
    pub fn event(&self) -> Option<MarketEvent<'_>> {
        let (bids, asks) = self.levels.split_at(self.n_bids.min(self.levels.len()));
        Some(match self.kind {
            DEPTH => MarketEvent::Depth(DepthDiff {
                header: self.header,
                first_id: self.a,
                final_id: self.b,
                prev_final_id: (self.flags & HAS_PREV != 0).then_some(self.c),
                bids,
                asks,
            }),
            SNAPSHOT => MarketEvent::Snapshot(Snapshot {
                header: self.header,
                last_update_id: self.a,
                bids,
                asks,
            }),
            TRADE => MarketEvent::Trade(Trade {
                header: self.header,
                id: self.a,
                price: Price(self.b as i64),
                qty: Qty(self.c as i64),
                aggressor: if self.flags & SELL_AGGRESSOR != 0 {
                    Side::Sell
                } else {
                    Side::Buy
                },
            }),
            BBO if bids.len() == 2 => MarketEvent::Bbo(Bbo {
                header: self.header,
                update_id: self.a,
                bid: bids[0],
                ask: bids[1],
            }),
            _ => return None,
        })
    }
}

// ---- orders ----

/// A request to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderMsg {
    pub cancel: bool,
    /// An amendment of order `order_id` (on `side`) to `price` and `qty` ordered (fills
    /// included); `kind` is not read.
    pub amend: bool,
    pub exchange: u32,
    pub instrument: u32,
    pub order_id: u64,
    pub side: Side,
    pub kind: OrderKind,
    pub price: Price,
    pub qty: Qty,
    /// When the market-data frame that led to it was read (tick-to-order).
    pub frame_ns: Nanos,
    /// When the strategy thread decided (risk passed).
    pub decided_ns: Nanos,
    /// The order may only reduce the position (`reduceOnly` on a derivatives venue): the risk
    /// engine lets only reducing orders through and this one reduces.
    pub reduce_only: bool,
}

/// Whether an order of `side` and `qty` only reduces a signed `position` (never flips it).
pub fn reduces(position: Qty, side: Side, qty: Qty) -> bool {
    match side {
        Side::Buy => position.0 < 0 && qty.0 <= -position.0,
        Side::Sell => position.0 > 0 && qty.0 <= position.0,
    }
}

pub const ORDER_BYTES: usize = 56;

fn kind_code(kind: OrderKind) -> u8 {
    match kind {
        OrderKind::Limit => 1,
        OrderKind::Market => 2,
        OrderKind::Ioc => 3,
        OrderKind::PostOnly => 4,
    }
}

fn kind_of(code: u8) -> Option<OrderKind> {
    Some(match code {
        1 => OrderKind::Limit,
        2 => OrderKind::Market,
        3 => OrderKind::Ioc,
        4 => OrderKind::PostOnly,
        _ => return None,
    })
}

/// A limit order (or with `cancel`, its cancel) of instrument 0 on exchange 0, every other
/// field non-zero where it can be: what tests of the orders ring's users write.
#[cfg(test)]
pub(crate) fn test_request(order_id: u64, cancel: bool) -> OrderMsg {
    OrderMsg {
        cancel,
        amend: false,
        exchange: 0,
        instrument: 0,
        order_id,
        side: rt_core::Side::Sell,
        kind: rt_core::OrderKind::Limit,
        price: rt_core::Price(7),
        qty: rt_core::Qty(3),
        frame_ns: 1,
        decided_ns: 2,
        reduce_only: false,
    }
}

impl OrderMsg {
    pub fn write(&self, buf: &mut [u8]) -> usize {
        buf[0] = if self.amend { 2 } else { u8::from(self.cancel) };
        buf[1] = u8::from(self.side == Side::Sell);
        buf[2] = kind_code(self.kind);
        buf[3] = u8::from(self.reduce_only);
        put_u32(buf, 4, self.exchange);
        put_u32(buf, 8, self.instrument);
        put_u32(buf, 12, 0);
        put_u64(buf, 16, self.order_id);
        put_i64(buf, 24, self.price.0);
        put_i64(buf, 32, self.qty.0);
        put_i64(buf, 40, self.frame_ns);
        put_i64(buf, 48, self.decided_ns);
        ORDER_BYTES
    }

    pub fn read(buf: &[u8]) -> Option<OrderMsg> {
        if buf.len() < ORDER_BYTES {
            return None;
        }
        Some(OrderMsg {
            cancel: buf[0] == 1,
            amend: buf[0] == 2,
            side: if buf[1] == 1 { Side::Sell } else { Side::Buy },
            kind: kind_of(buf[2])?,
            exchange: get_u32(buf, 4),
            instrument: get_u32(buf, 8),
            order_id: get_u64(buf, 16),
            price: Price(get_i64(buf, 24)),
            qty: Qty(get_i64(buf, 32)),
            frame_ns: get_i64(buf, 40),
            decided_ns: get_i64(buf, 48),
            reduce_only: buf[3] == 1,
        })
    }
}

// ---- executions ----

/// An execution report from the gateway, for one of our orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecMsg {
    pub exchange: u32,
    pub exec: rt_core::Exec,
    /// When the gateway read it off the wire.
    pub recv_ns: Nanos,
    /// Of a fill: the commission the venue took in the instrument's base asset (it leaves the
    /// position; see `fees`).
    pub base_commission: Qty,
}

pub const EXEC_BYTES: usize = 72;

impl ExecMsg {
    pub fn write(&self, buf: &mut [u8]) -> usize {
        let e = &self.exec;
        let (code, reason, price, qty, maker, fee) = match e.kind {
            ExecKind::Accepted => (1u8, 0u8, 0, 0, false, 0),
            ExecKind::Rejected(r) => (2, r as u8, 0, 0, false, 0),
            ExecKind::Fill {
                price,
                qty,
                maker,
                fee,
            } => (3, 0, price.0, qty.0, maker, fee),
            ExecKind::Cancelled => (4, 0, 0, 0, false, 0),
            ExecKind::Expired => (5, 0, 0, 0, false, 0),
            ExecKind::CancelRejected => (6, 0, 0, 0, false, 0),
            ExecKind::Amended { price, qty } => (7, 0, price.0, qty.0, false, 0),
            ExecKind::AmendRejected(r) => (8, r as u8, 0, 0, false, 0),
        };
        buf[0] = code;
        buf[1] = reason;
        buf[2] = u8::from(maker);
        buf[3] = 0;
        put_u32(buf, 4, self.exchange);
        put_u64(buf, 8, e.order_id);
        put_i64(buf, 16, e.ts);
        put_i64(buf, 24, price);
        put_i64(buf, 32, qty);
        put_i64(buf, 40, fee);
        put_i64(buf, 48, e.leaves.0);
        put_i64(buf, 56, self.recv_ns);
        put_i64(buf, 64, self.base_commission.0);
        EXEC_BYTES
    }

    pub fn read(buf: &[u8]) -> Option<ExecMsg> {
        if buf.len() < EXEC_BYTES {
            return None;
        }
        let kind = match buf[0] {
            1 => ExecKind::Accepted,
            2 => ExecKind::Rejected(*RejectReason::ALL.get(usize::from(buf[1]))?),
            3 => ExecKind::Fill {
                price: Price(get_i64(buf, 24)),
                qty: Qty(get_i64(buf, 32)),
                maker: buf[2] == 1,
                fee: get_i64(buf, 40),
            },
            4 => ExecKind::Cancelled,
            5 => ExecKind::Expired,
            6 => ExecKind::CancelRejected,
            7 => ExecKind::Amended {
                price: Price(get_i64(buf, 24)),
                qty: Qty(get_i64(buf, 32)),
            },
            8 => ExecKind::AmendRejected(*RejectReason::ALL.get(usize::from(buf[1]))?),
            _ => return None,
        };
        Some(ExecMsg {
            exchange: get_u32(buf, 4),
            exec: rt_core::Exec {
                ts: get_i64(buf, 16),
                order_id: get_u64(buf, 8),
                kind,
                leaves: Qty(get_i64(buf, 48)),
            },
            recv_ns: get_i64(buf, 56),
            base_commission: Qty(get_i64(buf, 64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(p: i64, q: i64) -> Level {
        Level::new(Price(p), Qty(q))
    }

    fn roundtrip(ev: &MarketEvent<'_>, capacity: usize) -> Vec<String> {
        let mut slots: Vec<Vec<u8>> = Vec::new();
        let out = write_event(ev, capacity, |f| {
            let mut buf = vec![0u8; capacity];
            let n = f(&mut buf);
            buf.truncate(n);
            slots.push(buf);
            true
        });
        assert_eq!(out, WriteOutcome::Written);
        let mut a = Assembler::new();
        let mut got = Vec::new();
        for (k, s) in slots.iter().enumerate() {
            match a.on_slot(s) {
                Assembled::Event => {
                    assert_eq!(k, slots.len() - 1);
                    got.push(format!("{:?}", a.event()));
                }
                Assembled::Partial => assert!(k < slots.len() - 1),
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    }

    #[test]
    fn every_event_kind_round_trips_across_slots() {
        let header = Header {
            symbol: 3,
            exchange_ns: 11,
            local_ns: 22,
        };
        let bids: Vec<Level> = (0..9).map(|k| lv(100 - k, k + 1)).collect();
        let asks: Vec<Level> = (0..7).map(|k| lv(200 + k, k + 2)).collect();
        let diff = MarketEvent::Depth(DepthDiff {
            header,
            first_id: 5,
            final_id: 9,
            prev_final_id: Some(4),
            bids: &bids,
            asks: &asks,
        });
        let snap = MarketEvent::Snapshot(Snapshot {
            header,
            last_update_id: 77,
            bids: &bids,
            asks: &[],
        });
        let trade = MarketEvent::Trade(Trade {
            header,
            id: 8,
            price: Price(123),
            qty: Qty(4),
            aggressor: Side::Sell,
        });
        let bbo = MarketEvent::Bbo(Bbo {
            header,
            update_id: 9,
            bid: lv(1, 2),
            ask: lv(3, 4),
        });
        for cap in [72, 112, 1008] {
            for ev in [diff, snap, trade, bbo] {
                assert_eq!(
                    roundtrip(&ev, cap),
                    vec![format!("{:?}", Some(ev))],
                    "cap {cap}"
                );
            }
        }
    }

    #[test]
    fn a_cut_record_is_malformed_not_wrong() {
        let bids: Vec<Level> = (0..20).map(|k| lv(100 - k, 1)).collect();
        let diff = MarketEvent::Depth(DepthDiff {
            header: Header::default(),
            first_id: 1,
            final_id: 2,
            prev_final_id: None,
            bids: &bids,
            asks: &[],
        });
        let mut slots = Vec::new();
        let out = write_event(&diff, 112, |f| {
            if slots.len() == 2 {
                return false;
            }
            let mut buf = vec![0u8; 112];
            let n = f(&mut buf);
            buf.truncate(n);
            slots.push(buf);
            true
        });
        assert_eq!(out, WriteOutcome::Dropped);
        let mut a = Assembler::new();
        assert_eq!(a.on_slot(&slots[0]), Assembled::Partial);
        a.reset(); // the ring reported the gap
        assert_eq!(a.on_slot(&slots[1]), Assembled::Malformed);
    }

    #[test]
    fn orders_and_execs_round_trip() {
        let o = OrderMsg {
            cancel: false,
            amend: false,
            exchange: 1,
            instrument: 2,
            order_id: 99,
            side: Side::Sell,
            kind: OrderKind::PostOnly,
            price: Price(5),
            qty: Qty(6),
            frame_ns: 7,
            decided_ns: 8,
            reduce_only: true,
        };
        let mut buf = [0u8; 112];
        let n = o.write(&mut buf);
        assert_eq!(OrderMsg::read(&buf[..n]), Some(o));
        assert!(reduces(Qty(-5), Side::Buy, Qty(5)));
        assert!(!reduces(Qty(-5), Side::Buy, Qty(6)));
        assert!(!reduces(Qty(5), Side::Buy, Qty(1)));
        assert!(reduces(Qty(5), Side::Sell, Qty(1)));
        assert!(!reduces(Qty(0), Side::Sell, Qty(1)));
        for kind in [
            ExecKind::Accepted,
            ExecKind::Rejected(RejectReason::PostOnlyWouldCross),
            ExecKind::Fill {
                price: Price(10),
                qty: Qty(3),
                maker: true,
                fee: -2,
            },
            ExecKind::Cancelled,
            ExecKind::Expired,
            ExecKind::CancelRejected,
            ExecKind::Amended {
                price: Price(11),
                qty: Qty(4),
            },
            ExecKind::AmendRejected(RejectReason::NotAmendable),
        ] {
            let e = ExecMsg {
                exchange: 4,
                exec: rt_core::Exec {
                    ts: 1,
                    order_id: 2,
                    kind,
                    leaves: Qty(3),
                },
                recv_ns: 9,
                base_commission: Qty(7),
            };
            let n = e.write(&mut buf);
            assert_eq!(ExecMsg::read(&buf[..n]), Some(e));
        }
    }
}
