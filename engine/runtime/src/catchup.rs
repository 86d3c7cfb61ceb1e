//! Catching up with the venue at start: what became of the orders the journal leaves
//! unfinished (the engine crashed, was killed, or lost its user data stream, so their last
//! reports were never read).
//!
//! Before anything trades, for each venue with such orders:
//! 1. every open order on the venue's symbols is cancelled (Binance: `DELETE
//!    /api/v3/openOrders`), so nothing fills while the engine looks;
//! 2. each unfinished order is looked up by its client order id (`GET /api/v3/order`);
//! 3. when the venue executed more than the journal holds, its trades (`GET /api/v3/myTrades`
//!    by the venue's order id, ascending) past the journaled quantity are journaled as fills,
//!    with the venue's price, quantity, commission and maker flag;
//!
//! The requests and the reading of their answers are the venue's execution client's
//! (`rt_venues::execution`); this module orchestrates.
//! 4. the order's final state (cancelled, expired, rejected) is journaled, which closes it.
//!
//! The journal is then read again, so the positions rebuilt from it include those fills. An
//! order the venue does not know (`-2013`: it never reached the venue, or the venue no longer
//! remembers it) is closed as expired, and said so. Anything else the venue answers (an error,
//! no answer, an order still working after the cancel) stops the start: an engine that does not
//! know its position must not trade.

use rt_venues::execution::{Operation, OrderState, Outcome, RefusalKind, VenueStatus, VenueTrade};

use crate::clock::now_ns;
use crate::gateway::{cancel_open_orders, check_auth, classify, now_ms, send_request, VenueConfig};
use crate::http::{Base, Client};
use crate::journal::{Journal, Record, UnfinishedOrder};
use crate::shared::dec;

/// What the catch-up did, one line per order, for the log.
#[derive(Debug, Default)]
pub struct CatchUp {
    pub lines: Vec<String>,
    /// Fills journaled that the engine had not seen.
    pub fills: usize,
}

/// Catches up every unfinished order (see the module documentation), journaling what it
/// learns. Runs before the engine's threads start.
pub fn catch_up(
    venues: &[VenueConfig],
    prefix: &str,
    live: bool,
    unfinished: &[UnfinishedOrder],
    journal: &mut Journal,
) -> Result<CatchUp, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    // The HTTP client drives its connections as local tasks.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut out = CatchUp::default();
        let traded = |o: &UnfinishedOrder| {
            venues
                .iter()
                .any(|v| v.name == o.exchange && v.symbols.contains(&o.symbol))
        };
        if let Some(o) = unfinished.iter().find(|o| !traded(o)) {
            return Err(format!(
                "order {} on {}/{} is unfinished, and this manifest does not trade {}/{}: its \
                 fills cannot be caught up; run the previous manifest, or settle the order at \
                 the venue and move the journal aside",
                o.id, o.exchange, o.symbol, o.exchange, o.symbol
            ));
        }
        for venue in venues {
            let orders: Vec<&UnfinishedOrder> = unfinished
                .iter()
                .filter(|o| o.exchange == venue.name)
                .collect();
            if orders.is_empty() {
                continue;
            }
            let base = Base::parse(&venue.rest).map_err(|e| format!("{}: {e}", venue.name))?;
            let mut client = Client::new(base);
            // What it trades, and whatever an unfinished order names (a manifest before may
            // have traded more).
            let mut symbols = venue.traded.clone();
            for o in &orders {
                if !symbols.contains(&o.symbol) {
                    symbols.push(o.symbol.clone());
                }
            }
            for (symbol, n) in cancel_open_orders(&mut client, venue, &symbols).await? {
                if n > 0 {
                    out.lines.push(format!(
                        "{}: cancelled {n} open order(s) on {symbol} before catching up",
                        venue.name
                    ));
                }
            }
            for order in orders {
                let line = one(
                    &mut client,
                    venue,
                    prefix,
                    live,
                    order,
                    journal,
                    &mut out.fills,
                )
                .await
                .map_err(|e| format!("{}: order {}: {e}", venue.name, order.id))?;
                out.lines
                    .push(format!("{}: order {}: {line}", venue.name, order.id));
            }
        }
        journal.sync().map_err(|e| e.to_string())?;
        Ok(out)
    })
}

/// Catches up one order; returns what happened, for the log.
async fn one(
    client: &mut Client,
    venue: &VenueConfig,
    prefix: &str,
    live: bool,
    order: &UnfinishedOrder,
    journal: &mut Journal,
    fills: &mut usize,
) -> Result<String, String> {
    // Under the engine id it was sent with (the id may have changed since).
    let prefix = if order.engine.is_empty() {
        prefix.to_owned()
    } else {
        crate::engine::client_prefix(&order.engine)
    };
    let client_id = format!("{prefix}{}", order.id);
    let Some(mut info) = query_order(client, venue, &order.symbol, &client_id).await? else {
        let acknowledged = order.life.status().is_acknowledged();
        if acknowledged && live {
            return Err(format!(
                "the venue does not know it ({client_id}), yet it acknowledged it \
                 before: its fills cannot be known"
            ));
        }
        let leaves = order.life.unfilled().0;
        close(journal, order, "expired", "unknown_at_venue", leaves)?;
        return Ok(if acknowledged {
            // Paper: a restarted sim venue starts with an empty book and forgets every order.
            "the venue no longer knows it (paper: the sim venue restarted): closed as expired"
        } else {
            "the venue does not know it (it never reached the venue): closed as expired"
        }
        .to_owned());
    };
    let orig = info.orig_qty.0;
    let executed = info.executed_qty.0;
    // Every journaled fill, those beyond the order's journaled quantity too.
    let journaled = order.life.filled().0.saturating_add(order.filled_beyond);
    let mut got = 0usize;
    if executed < journaled {
        return Err(format!(
            "the journal holds {} filled but the venue executed {}",
            dec(journaled),
            dec(executed)
        ));
    }
    if executed > journaled {
        // The trades past what the journal holds, oldest first (asked again while they do not
        // add up to what the order executed: a venue's fills may lag its order).
        let mut at = AtVenue {
            client: &mut *client,
            venue,
            symbol: &order.symbol,
            client_id: &client_id,
        };
        let (now, trades) = trades_adding_up(&mut at, info.clone(), TRADES_RETRY_DELAY).await?;
        info = now;
        let executed = info.executed_qty.0;
        let mut cum: i64 = 0;
        for t in trades {
            let before = cum;
            cum += t.qty.0;
            // Whatever of this trade the journal does not hold yet.
            let new = cum - before.max(journaled);
            if new <= 0 {
                continue;
            }
            // The commission of the part not journaled yet (all of it for a whole trade).
            let share = i128::from(t.commission) * i128::from(new) / i128::from(t.qty.0.max(1));
            let commission = i64::try_from(share).unwrap_or(t.commission);
            let booked = venue.book_commission(&order.symbol, &t.commission_asset, commission);
            let fill = exec_record(
                order,
                "fill",
                Some(CaughtFill {
                    price: dec(t.price.0),
                    qty: dec(new),
                    fee: dec(booked.fee),
                    maker: t.is_maker,
                    commission: dec(commission),
                    commission_asset: t.commission_asset.clone(),
                }),
                orig - cum,
                format!("caught_up trade {}", t.id),
            );
            journal.append(&fill).map_err(|e| e.to_string())?;
            got += 1;
        }
        if cum != executed {
            return Err(format!(
                "the venue executed {} but its trades add up to {}: the position cannot be known",
                dec(executed),
                dec(cum)
            ));
        }
    }
    *fills += got;
    let found = if got > 0 {
        format!(
            "{got} fill(s) the engine had not seen, {} in all",
            dec(executed)
        )
    } else {
        "no fill the engine had not seen".to_owned()
    };
    match info.status {
        VenueStatus::Filled => {
            if got == 0 {
                // Every fill was journaled, only the last report (leaves 0) was not.
                close(journal, order, "closed", "filled_at_venue", 0)?;
            }
            Ok(format!("FILLED; {found}"))
        }
        VenueStatus::Cancelled
        | VenueStatus::Expired
        | VenueStatus::ExpiredBySelfTradePrevention
        | VenueStatus::Rejected => {
            let (kind, reason) = match info.status {
                VenueStatus::Cancelled => ("cancelled", "caught_up"),
                VenueStatus::Expired => ("expired", "caught_up"),
                VenueStatus::ExpiredBySelfTradePrevention => {
                    ("expired", crate::gateway::STP_REASON)
                }
                _ => ("rejected", "caught_up"),
            };
            close(journal, order, kind, reason, orig - executed)?;
            Ok(format!("{}; {found}", info.status.as_str()))
        }
        VenueStatus::New | VenueStatus::PartiallyFilled => Err(format!(
            "still {} at the venue after every open order was cancelled",
            info.status.as_str()
        )),
    }
}

/// How often an order's trades are read again while they do not add up to what it executed,
/// and how long apart: OKX's `/trade/fills` may lag its order by a moment.
pub(crate) const TRADES_RETRIES: usize = 4;
pub(crate) const TRADES_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// An order and its trades, as the venue answers ([`AtVenue`]; a test's fake).
pub(crate) trait OrderAndTrades {
    /// The order now (`None`: the venue does not know it).
    async fn order(&mut self) -> Result<Option<OrderState>, String>;
    /// Its trades, oldest first.
    async fn trades(&mut self, venue_order_id: u64) -> Result<Vec<VenueTrade>, String>;
}

/// One order of one venue, asked over REST.
pub(crate) struct AtVenue<'a> {
    pub client: &'a mut Client,
    pub venue: &'a VenueConfig,
    pub symbol: &'a str,
    pub client_id: &'a str,
}

impl OrderAndTrades for AtVenue<'_> {
    async fn order(&mut self) -> Result<Option<OrderState>, String> {
        query_order(self.client, self.venue, self.symbol, self.client_id).await
    }

    async fn trades(&mut self, venue_order_id: u64) -> Result<Vec<VenueTrade>, String> {
        order_trades(self.client, self.venue, self.symbol, venue_order_id).await
    }
}

/// The order (`info`, as last read) and its trades, read again up to [`TRADES_RETRIES`] times,
/// `delay` apart, while the trades do not add up to what the order executed (a venue whose
/// fills lag its order); what was read last when they never do (the caller refuses it).
pub(crate) async fn trades_adding_up(
    at: &mut impl OrderAndTrades,
    mut info: OrderState,
    delay: std::time::Duration,
) -> Result<(OrderState, Vec<VenueTrade>), String> {
    let mut trades = at.trades(info.venue_order_id).await?;
    for _ in 0..TRADES_RETRIES {
        let sum: i64 = trades.iter().map(|t| t.qty.0).sum();
        if sum == info.executed_qty.0 {
            break;
        }
        tokio::time::sleep(delay).await;
        if let Some(again) = at.order().await? {
            info = again;
        }
        trades = at.trades(info.venue_order_id).await?;
    }
    Ok((info, trades))
}

/// The order by client order id (Binance: `GET /api/v3/order`): `None` when the venue does not
/// know it (-2013).
pub(crate) async fn query_order(
    client: &mut Client,
    venue: &VenueConfig,
    symbol: &str,
    client_order_id: &str,
) -> Result<Option<OrderState>, String> {
    let request = venue.client.query_order(symbol, client_order_id, now_ms());
    let r = send_request(client, &request)
        .await
        .map_err(|e| format!("cannot query it: {e}"))?;
    let body = String::from_utf8_lossy(&r.body);
    match classify(venue, Operation::Query, &r) {
        Outcome::Accepted => venue
            .client
            .order_state(&body)
            .map(Some)
            .map_err(|e| format!("its query answer: {e}")),
        Outcome::Rejected(refusal) if refusal.kind == RefusalKind::UnknownOrder => Ok(None),
        outcome => {
            check_auth(&outcome, venue)?;
            Err(format!("cannot query it: HTTP {}: {body}", r.status))
        }
    }
}

/// Every trade of one order (Binance: `GET /api/v3/myTrades` by the venue's order id), oldest
/// first.
pub(crate) async fn order_trades(
    client: &mut Client,
    venue: &VenueConfig,
    symbol: &str,
    venue_order_id: u64,
) -> Result<Vec<VenueTrade>, String> {
    let mut out: Vec<VenueTrade> = Vec::new();
    // From the first trade: without it Binance answers the most recent ones.
    let mut from_id = 0;
    loop {
        let request = venue
            .client
            .order_trades(symbol, venue_order_id, from_id, now_ms());
        let r = send_request(client, &request)
            .await
            .map_err(|e| format!("cannot read its trades: {e}"))?;
        let body = String::from_utf8_lossy(&r.body);
        if r.status != 200 {
            return Err(format!("cannot read its trades: HTTP {}: {body}", r.status));
        }
        let page = venue
            .client
            .trades(&body)
            .map_err(|e| format!("its trades: {e}"))?;
        let full = page.len() == venue.client.trades_page();
        let next = page.last().map(|t| t.id + 1);
        out.extend(
            page.into_iter()
                .filter(|t| t.venue_order_id == venue_order_id),
        );
        match next {
            Some(n) if full && n > from_id => from_id = n,
            _ => return Ok(out),
        }
    }
}

/// Journals an order's final report.
fn close(
    journal: &mut Journal,
    order: &UnfinishedOrder,
    kind: &str,
    reason: &str,
    leaves: i64,
) -> Result<(), String> {
    let record = exec_record(order, kind, None, leaves, reason.to_owned());
    journal.append(&record).map_err(|e| e.to_string())
}

/// A fill the catch-up found, as decimal strings.
struct CaughtFill {
    price: String,
    qty: String,
    /// In the quote asset, as booked (see `fees`).
    fee: String,
    maker: bool,
    commission: String,
    commission_asset: String,
}

/// A report of `order` written by the catch-up.
fn exec_record(
    order: &UnfinishedOrder,
    kind: &str,
    fill: Option<CaughtFill>,
    leaves: i64,
    reason: String,
) -> Record {
    let (price, qty, fee, maker, commission, commission_asset) = match fill {
        Some(f) => (
            Some(f.price),
            Some(f.qty),
            Some(f.fee),
            Some(f.maker),
            Some(f.commission),
            Some(f.commission_asset),
        ),
        None => (None, None, None, None, None, None),
    };
    Record::Exec {
        ts: now_ns(),
        id: order.id,
        exchange: order.exchange.clone(),
        symbol: order.symbol.clone(),
        side: crate::shared::side_str(order.life.side()).to_owned(),
        kind: kind.to_owned(),
        price,
        qty,
        fee,
        commission,
        commission_asset,
        maker,
        leaves: Some(dec(leaves.max(0))),
        reason: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rt_core::{Price, Qty};

    /// A venue whose fills lag its order: the order says 3 executed at once, its trades show
    /// one more per read.
    struct Lagging {
        reads: usize,
        executed: i64,
    }

    fn trade(id: u64) -> VenueTrade {
        VenueTrade {
            id,
            venue_order_id: 9,
            price: Price(100),
            qty: Qty(1),
            commission: 0,
            commission_asset: "USDT".into(),
            is_maker: true,
        }
    }

    fn state(executed: i64) -> OrderState {
        OrderState {
            venue_order_id: 9,
            price: rt_core::Price(100),
            orig_qty: Qty(5),
            executed_qty: Qty(executed),
            status: VenueStatus::PartiallyFilled,
        }
    }

    impl OrderAndTrades for Lagging {
        async fn order(&mut self) -> Result<Option<OrderState>, String> {
            Ok(Some(state(self.executed)))
        }

        async fn trades(&mut self, _venue_order_id: u64) -> Result<Vec<VenueTrade>, String> {
            self.reads += 1;
            Ok((1..=self.reads as u64).map(trade).collect())
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn lagging_trades_are_read_again_until_they_add_up() {
        let mut venue = Lagging {
            reads: 0,
            executed: 3,
        };
        let delay = std::time::Duration::from_millis(1);
        let (info, trades) = run(trades_adding_up(&mut venue, state(3), delay)).expect("read");
        assert_eq!(
            (info.executed_qty, trades.len(), venue.reads),
            (Qty(3), 3, 3)
        );
        // Never adding up: what was read last, after the retries (the caller refuses it).
        let mut venue = Lagging {
            reads: 0,
            executed: 30,
        };
        let (_, trades) = run(trades_adding_up(&mut venue, state(30), delay)).expect("read");
        assert_eq!(venue.reads, TRADES_RETRIES + 1);
        assert_eq!(trades.len(), TRADES_RETRIES + 1);
    }
}
