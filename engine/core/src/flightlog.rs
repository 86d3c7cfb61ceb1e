//! The strategy thread's decision log: what a live driver consumed and decided, in order.
//!
//! The flight recorder keeps the raw market data a live engine received, but the orders it sent
//! depend on the order in which its strategy thread consumed that data, the venue's execution
//! reports, its timers and operator commands. The live driver hands one [`Entry`] per input and
//! one per decision (a small `Copy` value, no allocation) to a writer thread, which writes it as
//! one text line; `appliance parity` reads the lines back and drives a [`crate::Trader`]
//! through the same inputs in the same order, then compares decision by decision.
//!
//! A line is `<ts_ns> <kind> <fields...>`, space separated, amounts in 10^-8 units:
//!
//! | kind        | ts                          | fields                                                         |
//! |-------------|-----------------------------|----------------------------------------------------------------|
//! | `start`     | start                       | next order id, fills restored, paused (0/1), risk state        |
//! | `md`        | the frame's receive time    | exchange (the event with that receive time in the capture)     |
//! | `gap`       | when seen                   | exchange, events lost (a market-data ring overflow)            |
//! | `down`      | when seen                   | exchange (the feed's stream broke)                             |
//! | `exec`      | when the strategy read it   | exchange, gateway receive time, order id, report time, kind, price, qty, maker, fee, leaves, base commission |
//! | `timer`     | the clock                   | (the driver's timers: `Trader::advance`)                     |
//! | `ban`       | the clock                   | (the venue banned the IP: HALTED)                              |
//! | `funding`   | when booked                 | instrument, amount (a perpetual's funding payment, settlement units) |
//! | `venue_mark`| when applied                | instrument, price (a derivative's mark price from the venue)   |
//! | `cmd`       | when applied                | `pause`, `resume`, `flatten`, `kill`, `stop`, `halt <cause>`, `tighten <instrument or -> <limit> <units>`, `tighten_asset <asset index> <units>` |
//! | `new`       | when decided                | exchange, instrument, order id, side, kind, price, qty, then the context |
//! | `cancel`    | when decided                | exchange, instrument, order id, then the context               |
//! | `cancel_all`| when decided                | exchange, instrument (every order the venue holds)             |
//!
//! The context of a decision is what the strategy saw: the instrument's best bid and ask (price
//! and size, 0 without one), the position and the risk state; `parity` names a different book
//! or a different risk state as the first cause of a divergence from it.

use crate::matching::{Exec, ExecKind};
use crate::risk::{RejectReason, RiskCause, RiskState};
use crate::strategy::OrderKind;
use crate::types::{Nanos, Price, Qty, Side};
use crate::{Cash, InstrumentId};

/// What the strategy saw when it decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Context {
    pub bid: Price,
    pub bid_qty: Qty,
    pub ask: Price,
    pub ask_qty: Qty,
    pub position: Qty,
    pub risk: Option<RiskState>,
}

/// An operator's (or the engine's own) command, as the driver applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Flatten,
    Kill,
    /// The engine stopping: paused, every order cancelled.
    Stop,
    Halt(RiskCause),
    /// A limit tightened: (instrument, or `None` for an account limit; limit field; units).
    /// An instrument's limit is its symbol's, on every venue (`Trader::tighten_risk`).
    Tighten(Option<InstrumentId>, LimitField, i64),
    /// An asset's `max_position` tightened: (its index in the risk config's assets; units).
    TightenAsset(u32, i64),
}

/// The limits an operator may tighten at run time (`Trader::tighten_risk`'s names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitField(pub &'static str);

/// The names [`LimitField`] may hold.
pub const LIMIT_FIELDS: [&str; 9] = [
    "max_position",
    "max_position_notional",
    "max_order_qty",
    "max_order_notional",
    "max_open_orders",
    "price_band_bps",
    "max_gross_exposure",
    "max_daily_loss",
    "max_drawdown",
];

impl LimitField {
    pub fn parse(s: &str) -> Option<LimitField> {
        LIMIT_FIELDS
            .iter()
            .find(|f| **f == s)
            .map(|f| LimitField(f))
    }
}

/// One line of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Start {
        next_order_id: u64,
        restored_fills: u64,
        paused: bool,
        risk: RiskState,
    },
    Md {
        exchange: u32,
    },
    Gap {
        exchange: u32,
        lost: u64,
    },
    Down {
        exchange: u32,
    },
    Exec {
        exchange: u32,
        recv_ns: Nanos,
        exec: Exec,
        base_commission: Qty,
    },
    Timer,
    Ban,
    /// A perpetual's funding payment the venue reported (settlement units; positive:
    /// received), booked into the instrument's realised P&L.
    Funding {
        instrument: InstrumentId,
        amount: Cash,
    },
    /// A derivative's mark price from the venue: its unrealised P&L is valued at it.
    VenueMark {
        instrument: InstrumentId,
        price: Price,
    },
    /// A futures contract delivered at expiry at the venue's delivery price
    /// (`Trader::book_delivery`).
    Delivery {
        instrument: InstrumentId,
        price: Price,
    },
    Cmd(Command),
    New {
        exchange: u32,
        instrument: InstrumentId,
        order_id: u64,
        side: Side,
        kind: OrderKind,
        price: Price,
        qty: Qty,
        ctx: Context,
    },
    Cancel {
        exchange: u32,
        instrument: InstrumentId,
        order_id: u64,
        ctx: Context,
    },
    CancelAll {
        exchange: u32,
        instrument: InstrumentId,
    },
    /// An amendment: the order to `price` and `qty` ordered.
    Amend {
        exchange: u32,
        instrument: InstrumentId,
        order_id: u64,
        price: Price,
        qty: Qty,
        ctx: Context,
    },
}

impl Entry {
    /// Whether this is a decision (an order, a cancel), not an input.
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            Entry::New { .. }
                | Entry::Cancel { .. }
                | Entry::CancelAll { .. }
                | Entry::Amend { .. }
        )
    }

    /// The line's text after `<ts> ` (see the module documentation).
    pub fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self {
            Entry::Start {
                next_order_id,
                restored_fills,
                paused,
                risk,
            } => write!(
                out,
                "start {next_order_id} {restored_fills} {} {}",
                u8::from(*paused),
                risk.as_str()
            ),
            Entry::Md { exchange } => write!(out, "md {exchange}"),
            Entry::Gap { exchange, lost } => write!(out, "gap {exchange} {lost}"),
            Entry::Down { exchange } => write!(out, "down {exchange}"),
            Entry::Exec {
                exchange,
                recv_ns,
                exec,
                base_commission,
            } => {
                let (kind, price, qty, maker, fee) = match exec.kind {
                    ExecKind::Accepted => ("accepted", 0, 0, false, 0),
                    ExecKind::Rejected(r) => (r.as_str(), 0, 0, false, 0),
                    ExecKind::Fill {
                        price,
                        qty,
                        maker,
                        fee,
                    } => ("fill", price.0, qty.0, maker, fee),
                    ExecKind::Cancelled => ("cancelled", 0, 0, false, 0),
                    ExecKind::Expired => ("expired", 0, 0, false, 0),
                    ExecKind::CancelRejected => ("cancel_rejected", 0, 0, false, 0),
                    ExecKind::Amended { price, qty } => ("amended", price.0, qty.0, false, 0),
                    ExecKind::AmendRejected(r) => (r.as_str(), 0, 0, false, 0),
                };
                let rejected = match exec.kind {
                    ExecKind::Rejected(_) => "rejected:",
                    ExecKind::AmendRejected(_) => "amend_rejected:",
                    _ => "",
                };
                write!(
                    out,
                    "exec {exchange} {recv_ns} {} {} {rejected}{kind} {price} {qty} {} {fee} {} {}",
                    exec.order_id,
                    exec.ts,
                    u8::from(maker),
                    exec.leaves.0,
                    base_commission.0
                )
            }
            Entry::Timer => write!(out, "timer"),
            Entry::Ban => write!(out, "ban"),
            Entry::Funding { instrument, amount } => write!(out, "funding {instrument} {amount}"),
            Entry::VenueMark { instrument, price } => {
                write!(out, "venue_mark {instrument} {}", price.0)
            }
            Entry::Delivery { instrument, price } => {
                write!(out, "delivery {instrument} {}", price.0)
            }
            Entry::Cmd(c) => match c {
                Command::Pause => write!(out, "cmd pause"),
                Command::Resume => write!(out, "cmd resume"),
                Command::Flatten => write!(out, "cmd flatten"),
                Command::Kill => write!(out, "cmd kill"),
                Command::Stop => write!(out, "cmd stop"),
                Command::Halt(cause) => write!(out, "cmd halt {}", cause.as_str()),
                Command::Tighten(instrument, field, units) => match instrument {
                    Some(i) => write!(out, "cmd tighten {i} {} {units}", field.0),
                    None => write!(out, "cmd tighten - {} {units}", field.0),
                },
                Command::TightenAsset(asset, units) => {
                    write!(out, "cmd tighten_asset {asset} {units}")
                }
            },
            Entry::New {
                exchange,
                instrument,
                order_id,
                side,
                kind,
                price,
                qty,
                ctx,
            } => {
                let _ = write!(
                    out,
                    "new {exchange} {instrument} {order_id} {} {} {} {} ",
                    side_str(*side),
                    kind_str(*kind),
                    price.0,
                    qty.0
                );
                write_ctx(out, ctx)
            }
            Entry::Cancel {
                exchange,
                instrument,
                order_id,
                ctx,
            } => {
                let _ = write!(out, "cancel {exchange} {instrument} {order_id} ");
                write_ctx(out, ctx)
            }
            Entry::CancelAll {
                exchange,
                instrument,
            } => write!(out, "cancel_all {exchange} {instrument}"),
            Entry::Amend {
                exchange,
                instrument,
                order_id,
                price,
                qty,
                ctx,
            } => {
                let _ = write!(
                    out,
                    "amend {exchange} {instrument} {order_id} {} {} ",
                    price.0, qty.0
                );
                write_ctx(out, ctx)
            }
        };
    }

    /// Reads a line's text after `<ts> ` back.
    pub fn parse(text: &str) -> Result<Entry, ParseError> {
        let mut f = Fields(text.split_ascii_whitespace());
        let kind = f.word()?;
        let entry = match kind {
            "start" => Entry::Start {
                next_order_id: f.num()?,
                restored_fills: f.num()?,
                paused: f.num::<u8>()? != 0,
                risk: RiskState::parse(f.word()?).ok_or(ParseError("an unknown risk state"))?,
            },
            "md" => Entry::Md { exchange: f.num()? },
            "gap" => Entry::Gap {
                exchange: f.num()?,
                lost: f.num()?,
            },
            "down" => Entry::Down { exchange: f.num()? },
            "exec" => {
                let exchange = f.num()?;
                let recv_ns = f.num()?;
                let order_id = f.num()?;
                let ts = f.num()?;
                let name = f.word()?;
                let price = Price(f.num()?);
                let qty = Qty(f.num()?);
                let maker = f.num::<u8>()? != 0;
                let fee = f.num()?;
                let leaves = Qty(f.num()?);
                let base_commission = Qty(f.num()?);
                let kind = match name {
                    "accepted" => ExecKind::Accepted,
                    "fill" => ExecKind::Fill {
                        price,
                        qty,
                        maker,
                        fee,
                    },
                    "cancelled" => ExecKind::Cancelled,
                    "expired" => ExecKind::Expired,
                    "cancel_rejected" => ExecKind::CancelRejected,
                    "amended" => ExecKind::Amended { price, qty },
                    other => {
                        let reason = |r: &str| {
                            RejectReason::ALL
                                .into_iter()
                                .find(|x| x.as_str() == r)
                                .ok_or(ParseError("an unknown rejection reason"))
                        };
                        match (
                            other.strip_prefix("rejected:"),
                            other.strip_prefix("amend_rejected:"),
                        ) {
                            (Some(r), _) => ExecKind::Rejected(reason(r)?),
                            (_, Some(r)) => ExecKind::AmendRejected(reason(r)?),
                            _ => return Err(ParseError("an unknown execution report kind")),
                        }
                    }
                };
                Entry::Exec {
                    exchange,
                    recv_ns,
                    exec: Exec {
                        ts,
                        order_id,
                        kind,
                        leaves,
                    },
                    base_commission,
                }
            }
            "timer" => Entry::Timer,
            "ban" => Entry::Ban,
            "funding" => Entry::Funding {
                instrument: f.num()?,
                amount: f.num()?,
            },
            "venue_mark" => Entry::VenueMark {
                instrument: f.num()?,
                price: Price(f.num()?),
            },
            "delivery" => Entry::Delivery {
                instrument: f.num()?,
                price: Price(f.num()?),
            },
            "cmd" => Entry::Cmd(match f.word()? {
                "pause" => Command::Pause,
                "resume" => Command::Resume,
                "flatten" => Command::Flatten,
                "kill" => Command::Kill,
                "stop" => Command::Stop,
                "halt" => Command::Halt(
                    RiskCause::parse(f.word()?).ok_or(ParseError("an unknown halt cause"))?,
                ),
                "tighten" => {
                    let instrument = match f.word()? {
                        "-" => None,
                        i => Some(i.parse().map_err(|_| ParseError("a bad instrument"))?),
                    };
                    let field =
                        LimitField::parse(f.word()?).ok_or(ParseError("an unknown limit"))?;
                    Command::Tighten(instrument, field, f.num()?)
                }
                "tighten_asset" => Command::TightenAsset(
                    f.word()?
                        .parse()
                        .map_err(|_| ParseError("a bad asset index"))?,
                    f.num()?,
                ),
                _ => return Err(ParseError("an unknown command")),
            }),
            "new" => Entry::New {
                exchange: f.num()?,
                instrument: f.num()?,
                order_id: f.num()?,
                side: match f.word()? {
                    "buy" => Side::Buy,
                    "sell" => Side::Sell,
                    _ => return Err(ParseError("an unknown side")),
                },
                kind: parse_kind(f.word()?)?,
                price: Price(f.num()?),
                qty: Qty(f.num()?),
                ctx: read_ctx(&mut f)?,
            },
            "cancel" => Entry::Cancel {
                exchange: f.num()?,
                instrument: f.num()?,
                order_id: f.num()?,
                ctx: read_ctx(&mut f)?,
            },
            "cancel_all" => Entry::CancelAll {
                exchange: f.num()?,
                instrument: f.num()?,
            },
            "amend" => Entry::Amend {
                exchange: f.num()?,
                instrument: f.num()?,
                order_id: f.num()?,
                price: Price(f.num()?),
                qty: Qty(f.num()?),
                ctx: read_ctx(&mut f)?,
            },
            _ => return Err(ParseError("an unknown entry kind")),
        };
        if f.0.next().is_some() {
            return Err(ParseError("more fields than its kind has"));
        }
        Ok(entry)
    }
}

/// Why a line of the log could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub &'static str);

struct Fields<'a>(std::str::SplitAsciiWhitespace<'a>);

impl<'a> Fields<'a> {
    fn word(&mut self) -> Result<&'a str, ParseError> {
        self.0
            .next()
            .ok_or(ParseError("fewer fields than its kind has"))
    }

    fn num<T: std::str::FromStr>(&mut self) -> Result<T, ParseError> {
        self.word()?
            .parse()
            .map_err(|_| ParseError("a field that is not a number"))
    }
}

pub const fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

pub const fn kind_str(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::Limit => "limit",
        OrderKind::Market => "market",
        OrderKind::Ioc => "ioc",
        OrderKind::PostOnly => "post_only",
    }
}

fn parse_kind(s: &str) -> Result<OrderKind, ParseError> {
    Ok(match s {
        "limit" => OrderKind::Limit,
        "market" => OrderKind::Market,
        "ioc" => OrderKind::Ioc,
        "post_only" => OrderKind::PostOnly,
        _ => return Err(ParseError("an unknown order kind")),
    })
}

fn write_ctx(out: &mut String, c: &Context) -> std::fmt::Result {
    use std::fmt::Write as _;
    write!(
        out,
        "{} {} {} {} {} {}",
        c.bid.0,
        c.bid_qty.0,
        c.ask.0,
        c.ask_qty.0,
        c.position.0,
        c.risk.map_or("-", RiskState::as_str)
    )
}

fn read_ctx(f: &mut Fields<'_>) -> Result<Context, ParseError> {
    Ok(Context {
        bid: Price(f.num()?),
        bid_qty: Qty(f.num()?),
        ask: Price(f.num()?),
        ask_qty: Qty(f.num()?),
        position: Qty(f.num()?),
        risk: match f.word()? {
            "-" => None,
            s => Some(RiskState::parse(s).ok_or(ParseError("an unknown risk state"))?),
        },
    })
}

/// A request for an external venue as the log holds it, with `bt`'s context now.
pub fn decision(bt: &crate::Trader, request: &crate::VenueRequest) -> Entry {
    match *request {
        crate::VenueRequest::New {
            exchange,
            instrument,
            request,
        } => Entry::New {
            exchange: exchange as u32,
            instrument,
            order_id: request.order_id,
            side: request.side,
            kind: request.kind,
            price: request.price,
            qty: request.qty,
            ctx: context(bt, instrument),
        },
        crate::VenueRequest::Cancel {
            exchange,
            instrument,
            order_id,
        } => Entry::Cancel {
            exchange: exchange as u32,
            instrument,
            order_id,
            ctx: context(bt, instrument),
        },
        crate::VenueRequest::Amend {
            exchange,
            instrument,
            order_id,
            price,
            qty,
            ..
        } => Entry::Amend {
            exchange: exchange as u32,
            instrument,
            order_id,
            price,
            qty,
            ctx: context(bt, instrument),
        },
    }
}

/// The context of a decision on `instrument` as `bt` sees it now.
pub fn context(bt: &crate::Trader, instrument: InstrumentId) -> Context {
    let book = bt.book(instrument);
    let bid = book.and_then(crate::OrderBook::best_bid);
    let ask = book.and_then(crate::OrderBook::best_ask);
    Context {
        bid: bid.map_or(Price::ZERO, |l| l.price),
        bid_qty: bid.map_or(Qty::ZERO, |l| l.qty),
        ask: ask.map_or(Price::ZERO, |l| l.price),
        ask_qty: ask.map_or(Qty::ZERO, |l| l.qty),
        position: bt.portfolio().qty(instrument),
        risk: Some(bt.risk_state()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: Entry) {
        let mut s = String::new();
        e.write(&mut s);
        assert_eq!(Entry::parse(&s), Ok(e), "{s}");
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        let ctx = Context {
            bid: Price(6_000_000_000_000),
            bid_qty: Qty(12_345),
            ask: Price(6_000_001_000_000),
            ask_qty: Qty(1),
            position: Qty(-300_000),
            risk: Some(RiskState::Reducing),
        };
        let exec = |kind| Exec {
            ts: 7,
            order_id: 42,
            kind,
            leaves: Qty(5),
        };
        for e in [
            Entry::Start {
                next_order_id: 9,
                restored_fills: 0,
                paused: true,
                risk: RiskState::Active,
            },
            Entry::Md { exchange: 1 },
            Entry::Gap {
                exchange: 0,
                lost: 17,
            },
            Entry::Down { exchange: 0 },
            Entry::Exec {
                exchange: 0,
                recv_ns: 11,
                exec: exec(ExecKind::Fill {
                    price: Price(100),
                    qty: Qty(3),
                    maker: true,
                    fee: -2,
                }),
                base_commission: Qty(1),
            },
            Entry::Exec {
                exchange: 0,
                recv_ns: 11,
                exec: exec(ExecKind::Rejected(RejectReason::PostOnlyWouldCross)),
                base_commission: Qty::ZERO,
            },
            Entry::Exec {
                exchange: 0,
                recv_ns: 1,
                exec: exec(ExecKind::CancelRejected),
                base_commission: Qty::ZERO,
            },
            Entry::Exec {
                exchange: 0,
                recv_ns: 1,
                exec: exec(ExecKind::Amended {
                    price: Price(5),
                    qty: Qty(4),
                }),
                base_commission: Qty::ZERO,
            },
            Entry::Exec {
                exchange: 0,
                recv_ns: 1,
                exec: exec(ExecKind::AmendRejected(RejectReason::NotAmendable)),
                base_commission: Qty::ZERO,
            },
            Entry::Timer,
            Entry::Ban,
            Entry::Funding {
                instrument: 1,
                amount: -12_345,
            },
            Entry::VenueMark {
                instrument: 0,
                price: Price(6_000_012_000_000),
            },
            Entry::Delivery {
                instrument: 1,
                price: Price(514_500_000),
            },
            Entry::Cmd(Command::Halt(RiskCause::KillSwitch)),
            Entry::Cmd(Command::Tighten(None, LimitField("max_open_orders"), 2)),
            Entry::Cmd(Command::Tighten(Some(0), LimitField("max_position"), 100)),
            Entry::Cmd(Command::TightenAsset(1, 3_000_000)),
            Entry::Cmd(Command::Stop),
            Entry::New {
                exchange: 0,
                instrument: 0,
                order_id: 3,
                side: Side::Sell,
                kind: OrderKind::PostOnly,
                price: Price(1),
                qty: Qty(2),
                ctx,
            },
            Entry::Cancel {
                exchange: 0,
                instrument: 0,
                order_id: 3,
                ctx: Context::default(),
            },
            Entry::CancelAll {
                exchange: 0,
                instrument: 1,
            },
            Entry::Amend {
                exchange: 0,
                instrument: 1,
                order_id: 3,
                price: Price(7),
                qty: Qty(9),
                ctx,
            },
        ] {
            round_trip(e);
        }
        assert!(Entry::parse("md").is_err());
        assert!(Entry::parse("md 0 1").is_err());
        assert!(Entry::parse("tick 0").is_err());
    }
}
