//! The simulated exchange's state, without I/O: one book (kept by `BookSync` from the replayed
//! capture) and one `Matcher` per symbol, the orders of the (single) account, and the Binance
//! answers to order entry. The server drives it: replayed events in, requests in, JSON and
//! `executionReport`s out.
//!
//! The account's fills are kept as trades ([`TRADES_KEPT`] per symbol) with the ids their
//! `executionReport`s carry, and finished orders for a while ([`FINISHED_KEPT`]), so that a
//! client that missed reports can recover them with `GET /api/v3/order` and
//! `GET /api/v3/myTrades`, as on Binance.
//!
//! Time is the capture's clock (`local_ns` of the replayed frames, mapped through the replay
//! schedule), so fills and reports carry times consistent with the market data they follow.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use rt_core::{
    notional, BookSync, DiffOutcome, Exec, ExecKind, InstrumentSpec, LifecycleError, MarketEvent,
    Matcher, Nanos, OrderEvent, OrderKind, OrderLifecycle, Price, Qty, RejectReason, Side,
    SimRequest, SyncRule, SCALE,
};
use rt_manifest::model::{Instrument, Market, SimCommission};
use rt_venues::binance_account::{format_account, format_exchange_info, Balance, SymbolFilters};
use rt_venues::binance_orders::{
    format_open_orders, format_units, my_trades_json, order_json, ApiError, CancelOpenOrders,
    CancelOrder, CancelResponse, ExecType, ExecutionReport, FillInfo, MyTradesQuery, NewOrder,
    NewOrderResponse, OrderInfo, OrderStatus, OrderType, QueryOrder, StpMode, TradeInfo,
};

/// Depth levels `GET /api/v3/depth` answers by default and at most.
pub const DEFAULT_DEPTH_LIMIT: usize = 100;
pub const MAX_DEPTH_LIMIT: usize = 5000;

/// Finished orders remembered per symbol (for responses and lookups); older ones are
/// forgotten, as an exchange archives them.
pub const FINISHED_KEPT: usize = 10_000;

/// The account's trades remembered per symbol for `GET /api/v3/myTrades`: the newest ones, the
/// oldest forgotten first (each is about 200 bytes: at most some 20 MB a symbol).
pub const TRADES_KEPT: usize = 100_000;

pub use rt_venues::assets::quote_asset;

use crate::futures_account::{FuturesAccount, DEFAULT_WALLET};

/// How the venue charges commissions: in which asset, and the account's BNB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommissionSettings {
    pub asset: SimCommission,
    /// BNB left to pay commissions from (10^-8 BNB).
    pub bnb_balance: i64,
    /// BNB's price in the quote asset (10^-8), positive for [`SimCommission::Bnb`].
    pub bnb_price: i64,
}

impl Default for CommissionSettings {
    fn default() -> CommissionSettings {
        CommissionSettings {
            asset: SimCommission::Quote,
            bnb_balance: 0,
            bnb_price: 0,
        }
    }
}

impl CommissionSettings {
    /// The manifest's sim settings.
    pub fn from_manifest(sim: &rt_manifest::model::SimVenue) -> CommissionSettings {
        CommissionSettings {
            asset: sim.commission_asset,
            bnb_balance: sim.bnb_balance.raw(),
            bnb_price: sim.bnb_price.raw(),
        }
    }
}

/// `ceil(value * SCALE / price)`: a quote amount in units of an asset priced at `price`.
fn in_asset(value: i64, price: i64) -> Option<i64> {
    if price <= 0 {
        return None;
    }
    let num = i128::from(value) * i128::from(SCALE);
    let den = i128::from(price);
    let q = num.div_euclid(den) + i128::from(num.rem_euclid(den) != 0);
    i64::try_from(q).ok()
}

/// Orders are refused with this code and message until `remaining` reaches zero (`None`:
/// until cleared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectFault {
    pub remaining: Option<u32>,
    pub code: i32,
}

/// The message Binance sends with a rejection code.
pub fn reject_message(code: i32) -> &'static str {
    match code {
        -1015 => "Too many new orders; current limit is 100 orders per 10 SECONDS.",
        -1003 => "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
        -1001 => "Internal error; unable to process your request. Please try again.",
        -2010 => "Account has insufficient balance for requested action.",
        -1008 => {
            "Server is currently overloaded with other requests. Please try again in a few minutes."
        }
        _ => "New order rejected (injected fault).",
    }
}

/// An order the venue holds: its state machine ([`OrderLifecycle`], the one the engine's
/// holders share) and its Binance view (`info`, whose status and executed quantity follow the
/// lifecycle).
#[derive(Clone, Debug)]
struct OrderRec {
    info: OrderInfo,
    life: OrderLifecycle,
}

impl OrderRec {
    /// An order the venue just took (`NEW`).
    fn new(info: OrderInfo) -> OrderRec {
        let life = OrderLifecycle::acknowledged(info.side, info.price, info.orig_qty);
        OrderRec { info, life }
    }

    /// Applies an event at `ts` (ms) and shows the result in `info`; an event the lifecycle
    /// refuses changes nothing and is counted by the caller.
    fn apply(&mut self, event: OrderEvent, ts_ms: u64) -> Result<(), LifecycleError> {
        self.life.apply(event)?;
        self.info.executed_qty = self.life.filled();
        self.info.status = OrderStatus::of_lifecycle(self.life.status());
        self.info.update_time_ms = ts_ms;
        if self.life.is_final() {
            self.info.is_working = false;
        }
        Ok(())
    }
}

/// One symbol: its book, its matcher, its orders.
#[derive(Debug)]
struct SymbolState {
    name: String,
    base: String,
    quote: String,
    /// A contract's settlement currency (OKX `settleCcy`): its commissions are charged in it,
    /// and a fill moves no base or quote balance (a margined position, not a holding).
    settle: Option<String>,
    spec: InstrumentSpec,
    sync: BookSync,
    matcher: Matcher,
    orders: HashMap<u64, OrderRec>,
    /// Client id -> order id, open orders only.
    open_by_client: HashMap<String, u64>,
    /// Finished orders, oldest first (see [`FINISHED_KEPT`]).
    finished: VecDeque<u64>,
    /// The account's trades, ascending by id (= oldest first).
    trades: VecDeque<TradeInfo>,
    /// At most this many trades kept ([`TRADES_KEPT`]; smaller in tests).
    trades_kept: usize,
    next_order_id: u64,
    next_trade_id: u64,
    next_cancel_id: u64,
    next_prevented_match_id: u64,
}

/// Counters of the order side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VenueCounters {
    pub orders: u64,
    pub orders_rejected: u64,
    pub cancels: u64,
    /// Amendments made (the sim's OKX `amend-order`).
    pub amends: u64,
    pub fills: u64,
    pub exec_reports: u64,
    pub snapshots_served: u64,
    /// Orders of the account that self-trade prevention kept from trading with each other.
    pub prevented_matches: u64,
    /// Matcher reports an order's lifecycle refused (an overfill, an event after a final
    /// status): none is expected; each is left out of the order's state and its report.
    pub order_errors: u64,
}

/// The simulated exchange (see the module documentation).
#[derive(Debug)]
pub struct Venue {
    symbols: Vec<SymbolState>,
    reject: Option<RejectFault>,
    commission: CommissionSettings,
    /// A `fee` fault: basis points of each fill's notional charged on top of the schedule.
    fee_surcharge_bps: u32,
    /// A `slippage` fault: basis points each fill is priced worse for the account.
    slippage_bps: u32,
    counters: VenueCounters,
    execs: Vec<Exec>,
    /// The account's balances but BNB (which is `commission.bnb_balance`), 10^-8 units: the
    /// manifest's `reconcile.starting_balances`, moved by every fill and commission.
    balances: BTreeMap<String, i64>,
    /// The filters `GET /api/v3/exchangeInfo` answers, per symbol (the manifest's, unless a
    /// fault changed them).
    served_filters: Vec<SymbolFilters>,
    /// A USD-M venue's account (positions, wallet, settings); `None` on spot.
    futures: Option<FuturesAccount>,
}

fn ms(ts: Nanos) -> u64 {
    u64::try_from(ts.div_euclid(1_000_000)).unwrap_or(0)
}

fn cash(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

fn err(code: i32, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

impl Venue {
    /// One symbol per instrument, in the given order (the decoder's symbol ids).
    pub fn new<'a>(
        market: Market,
        instruments: impl IntoIterator<Item = (&'a String, &'a Instrument)>,
    ) -> Venue {
        let rule = match market {
            Market::Spot => SyncRule::Spot,
            Market::Usdm => SyncRule::UsdM,
        };
        let symbols: Vec<SymbolState> = instruments
            .into_iter()
            .map(|(name, instrument)| {
                let spec = InstrumentSpec::from_manifest(instrument);
                SymbolState {
                    name: name.clone(),
                    base: rt_venues::assets::split_symbol(name)
                        .map_or(name.as_str(), |(b, _)| b)
                        .to_owned(),
                    quote: quote_asset(name).to_owned(),
                    settle: instrument
                        .listing
                        .as_ref()
                        .and_then(|l| l.contract.as_ref())
                        .map(|c| c.settle_currency.clone()),
                    spec,
                    sync: BookSync::new(rule),
                    matcher: Matcher::new(spec),
                    orders: HashMap::new(),
                    open_by_client: HashMap::new(),
                    finished: VecDeque::new(),
                    trades: VecDeque::new(),
                    trades_kept: TRADES_KEPT,
                    next_order_id: 1,
                    next_trade_id: 1,
                    next_cancel_id: 1,
                    next_prevented_match_id: 0,
                }
            })
            .collect();
        let served_filters = symbols
            .iter()
            .map(|s: &SymbolState| SymbolFilters {
                symbol: s.name.clone(),
                base_asset: s.base.clone(),
                quote_asset: s.quote.clone(),
                tick_size: s.spec.tick.0,
                step_size: s.spec.lot.0,
                min_notional: s.spec.min_notional,
            })
            .collect();
        Venue {
            symbols,
            reject: None,
            commission: CommissionSettings::default(),
            fee_surcharge_bps: 0,
            slippage_bps: 0,
            counters: VenueCounters::default(),
            execs: Vec::with_capacity(64),
            balances: BTreeMap::new(),
            served_filters,
            futures: (market == Market::Usdm).then(|| FuturesAccount::new(DEFAULT_WALLET)),
        }
    }

    /// The filters `exchangeInfo` serves.
    pub fn served_filters(&self) -> &[SymbolFilters] {
        &self.served_filters
    }

    /// The USD-M account (`None` on spot).
    pub fn futures(&self) -> Option<&FuturesAccount> {
        self.futures.as_ref()
    }

    pub fn futures_mut(&mut self) -> Option<&mut FuturesAccount> {
        self.futures.as_mut()
    }

    /// A symbol's mark: the middle of its book (the sim has no index to mark against).
    pub fn mark(&self, symbol: &str) -> Option<Price> {
        let s = self.symbols.iter().find(|s| s.name == symbol)?;
        if !s.sync.is_synced() {
            return None;
        }
        let book = s.sync.book();
        let (bid, ask) = (book.best_bid()?, book.best_ask()?);
        let mid = Price((bid.price.0 + ask.price.0) / 2);
        Some(self.futures.as_ref().map_or(mid, |f| f.marked(symbol, mid)))
    }

    /// On USD-M, once a second of capture time: each symbol's `markPriceUpdate` as the
    /// combined stream `<symbol>@markPrice@1s` sends it (empty otherwise).
    pub fn mark_frames(&mut self, ts: Nanos) -> Vec<String> {
        if !self.futures.as_mut().is_some_and(|f| f.mark_due(ts)) {
            return Vec::new();
        }
        self.marks()
            .into_iter()
            .filter_map(|(symbol, mark)| {
                let mark = mark?;
                let stream = format!("{}@markPrice@1s", symbol.to_ascii_lowercase());
                let update = rt_venues::binance::usdm::MarkPriceUpdate {
                    event_time_ms: ms(ts),
                    symbol,
                    mark_price: mark,
                    index_price: mark,
                    funding_rate: 10_000,
                    next_funding_time_ms: ms(ts) + 8 * 3_600_000,
                };
                Some(format!(
                    "{{\"stream\":\"{stream}\",\"data\":{}}}",
                    update.to_json()
                ))
            })
            .collect()
    }

    /// Every symbol with its mark.
    pub fn marks(&self) -> Vec<(String, Option<Price>)> {
        self.symbols
            .iter()
            .map(|s| (s.name.clone(), self.mark(&s.name)))
            .collect()
    }

    /// The user stream's frames for the matcher's reports (drained): `executionReport`s on
    /// spot; on USD-M, `ORDER_TRADE_UPDATE`s and `ACCOUNT_UPDATE`s, the account moved by the
    /// trades.
    pub fn user_frames(&mut self, reports: &mut Vec<ExecutionReport>) -> Vec<String> {
        let out = match self.futures.take() {
            None => reports.iter().map(ExecutionReport::to_json).collect(),
            Some(mut f) => {
                let frames = f.user_events(reports, |s| self.mark(s));
                self.futures = Some(f);
                frames
            }
        };
        reports.clear();
        out
    }

    /// The account's balances at start (asset -> 10^-8 units); BNB stays the commission
    /// settings' balance.
    pub fn set_balances(&mut self, balances: impl IntoIterator<Item = (String, i64)>) {
        self.balances = balances
            .into_iter()
            .filter(|(asset, _)| asset != "BNB")
            .collect();
    }

    /// Moves an asset's balance by `delta` (10^-8 units) behind every client's back (a fault:
    /// a deposit, a withdrawal, another program trading the account).
    pub fn adjust_balance(&mut self, asset: &str, delta: i64) {
        if let (Some(f), crate::futures_account::MARGIN_ASSET) = (self.futures.as_mut(), asset) {
            // USD-M: the margin wallet (a transfer out, a loss elsewhere on the account).
            f.adjust_wallet(delta);
            return;
        }
        if asset == "BNB" {
            self.commission.bnb_balance = self.commission.bnb_balance.saturating_add(delta);
        } else {
            let b = self.balances.entry(asset.to_owned()).or_insert(0);
            *b = b.saturating_add(delta);
        }
    }

    /// An asset's balance (10^-8 units), free and locked together.
    pub fn balance(&self, asset: &str) -> i64 {
        if asset == "BNB" {
            return self.commission.bnb_balance;
        }
        self.balances.get(asset).copied().unwrap_or(0)
    }

    /// `GET /api/v3/account`: every balance, with what open orders lock (a buy its remaining
    /// notional in the quote asset, a sell its remaining quantity in the base asset) as
    /// `locked`, the rest `free`.
    pub fn account(&self, now_ms: u64) -> String {
        let mut locked: BTreeMap<&str, i64> = BTreeMap::new();
        for s in &self.symbols {
            for rec in s.orders.values().filter(|r| r.info.status.is_open()) {
                let i = &rec.info;
                let leaves = Qty((i.orig_qty.0 - i.executed_qty.0).max(0));
                let (asset, amount) = match i.side {
                    Side::Buy => (s.quote.as_str(), cash(notional(i.price, leaves))),
                    Side::Sell => (s.base.as_str(), leaves.0),
                };
                *locked.entry(asset).or_insert(0) += amount;
            }
        }
        let mut all = self.balances.clone();
        if self.commission.bnb_balance != 0 {
            all.insert("BNB".to_owned(), self.commission.bnb_balance);
        }
        let balances: Vec<Balance> = all
            .into_iter()
            .map(|(asset, total)| {
                let l = locked
                    .get(asset.as_str())
                    .copied()
                    .unwrap_or(0)
                    .clamp(0, total.max(0));
                Balance {
                    free: total - l,
                    locked: l,
                    asset,
                }
            })
            .collect();
        format_account(&balances, now_ms)
    }

    /// `GET /api/v3/exchangeInfo[?symbol=S]`: the served filters of every symbol, or of one.
    pub fn exchange_info(&self, symbol: Option<&str>, now_ms: u64) -> Result<String, ApiError> {
        match symbol {
            None => Ok(format_exchange_info(&self.served_filters, now_ms)),
            Some(name) => {
                let i = self.symbol_index(name)?;
                Ok(format_exchange_info(
                    std::slice::from_ref(&self.served_filters[i]),
                    now_ms,
                ))
            }
        }
    }

    /// Serves other filters for `symbol` from now on (a fault: the venue changed its tick,
    /// lot or minimum notional); matching keeps the manifest's. `None` keeps a filter.
    pub fn set_served_filters(
        &mut self,
        symbol: &str,
        tick_size: Option<i64>,
        step_size: Option<i64>,
        min_notional: Option<i64>,
    ) -> Result<(), ApiError> {
        let i = self.symbol_index(symbol)?;
        let f = &mut self.served_filters[i];
        f.tick_size = tick_size.unwrap_or(f.tick_size);
        f.step_size = step_size.unwrap_or(f.step_size);
        f.min_notional = min_notional.unwrap_or(f.min_notional);
        Ok(())
    }

    pub fn counters(&self) -> VenueCounters {
        self.counters
    }

    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.symbols.iter().map(|s| s.name.as_str())
    }

    pub fn set_reject(&mut self, reject: Option<RejectFault>) {
        self.reject = reject;
    }

    pub fn reject(&self) -> Option<&RejectFault> {
        self.reject.as_ref()
    }

    /// How commissions are charged from now on.
    pub fn set_commission(&mut self, commission: CommissionSettings) {
        self.commission = commission;
    }

    pub fn commission(&self) -> CommissionSettings {
        self.commission
    }

    /// Charges `bps` of each fill's notional on top of the fee schedule from now on (0: none).
    pub fn set_fee_surcharge_bps(&mut self, bps: u32) {
        self.fee_surcharge_bps = bps;
    }

    /// Prices each fill `bps` worse for the account than the matcher's from now on (0: not).
    pub fn set_slippage_bps(&mut self, bps: u32) {
        self.slippage_bps = bps;
    }

    /// A fill as a `slippage` fault prices it: `slippage_bps` of its price worse for the
    /// account (a buy higher, a sell lower); anything else as it is.
    fn slipped(&self, i: usize, e: Exec) -> Exec {
        let ExecKind::Fill {
            price,
            qty,
            maker,
            fee,
        } = e.kind
        else {
            return e;
        };
        let side = self.symbols[i].orders.get(&e.order_id).map(|r| r.info.side);
        let (Some(side), true) = (side, self.slippage_bps > 0) else {
            return e;
        };
        let by = i128::from(price.0) * i128::from(self.slippage_bps) / 10_000;
        let by = i64::try_from(by).unwrap_or(0);
        let price = match side {
            Side::Buy => Price(price.0.saturating_add(by)),
            Side::Sell => Price(price.0.saturating_sub(by)),
        };
        Exec {
            kind: ExecKind::Fill {
                price,
                qty,
                maker,
                fee,
            },
            ..e
        }
    }

    /// The commission of a fill whose quote-asset fee is `fee`, as (amount, asset), per the
    /// settings; a BNB charge is taken from the balance (the asset received once it is short).
    /// A contract's commission is `fee` as it stands, in its settlement currency.
    fn charge(&mut self, i: usize, side: Side, price: Price, fee: i64) -> (i64, String) {
        let s = &self.symbols[i];
        if let Some(settle) = &s.settle {
            return (fee, settle.clone());
        }
        let base = |fee: i64| in_asset(fee, price.0).map(|b| (b, s.base.clone()));
        let quote = (fee, s.quote.clone());
        let received = || match side {
            Side::Buy => base(fee).unwrap_or_else(|| quote.clone()),
            Side::Sell => quote.clone(),
        };
        match self.commission.asset {
            SimCommission::Quote => quote,
            SimCommission::Base => base(fee).unwrap_or(quote),
            SimCommission::Received => received(),
            SimCommission::Bnb => match in_asset(fee, self.commission.bnb_price) {
                Some(bnb) if bnb <= self.commission.bnb_balance => {
                    let charged = (bnb, "BNB".to_owned());
                    self.commission.bnb_balance -= bnb;
                    charged
                }
                _ => received(),
            },
        }
    }

    /// Whether the book of `symbol` is synced, and the update id it reflects.
    pub fn book_state(&self, symbol: usize) -> Option<u64> {
        self.symbols
            .get(symbol)
            .and_then(|s| s.sync.last_update_id())
    }

    fn symbol_index(&self, name: &str) -> Result<usize, ApiError> {
        self.symbols
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| err(-1121, format!("Invalid symbol '{name}'.")))
    }

    /// A replayed market event at `ts` (capture clock). Returns the sync outcome of a depth
    /// diff. Executions of resting orders become reports.
    pub fn on_event(
        &mut self,
        ts: Nanos,
        event: &MarketEvent<'_>,
        reports: &mut Vec<ExecutionReport>,
    ) -> Option<DiffOutcome> {
        let symbol = event.header().symbol as usize;
        let mut execs = std::mem::take(&mut self.execs);
        execs.clear();
        let Some(s) = self.symbols.get_mut(symbol) else {
            self.execs = execs;
            return None;
        };
        let mut outcome = None;
        match event {
            MarketEvent::Depth(diff) => {
                let o = s.sync.on_diff(diff);
                if o == DiffOutcome::Applied {
                    s.matcher.on_depth(ts, diff, s.sync.book(), &mut execs);
                }
                outcome = Some(o);
            }
            MarketEvent::Snapshot(snap) => {
                let was = s.sync.last_update_id();
                s.sync.on_snapshot(snap);
                if s.sync.is_synced() && s.sync.last_update_id() != was {
                    s.matcher.on_book_reset(ts, s.sync.book(), &mut execs);
                }
            }
            MarketEvent::Trade(trade) => s.matcher.on_trade(ts, trade, &mut execs),
            MarketEvent::Bbo(_) => {}
        }
        self.apply_execs(symbol, ts, &execs, reports, None, None);
        self.execs = execs;
        outcome
    }

    /// `GET /api/v3/depth`: the book's best `limit` levels and the last applied diff's `u`.
    pub fn depth(&mut self, symbol: &str, limit: usize) -> Result<String, ApiError> {
        let i = self.symbol_index(symbol)?;
        let s = &self.symbols[i];
        let Some(last) = s.sync.last_update_id() else {
            return Err(err(
                -1001,
                "Internal error; unable to process your request. Please try again. \
                 (the simulator's book is not synced yet)",
            ));
        };
        let book = s.sync.book();
        let mut out = String::with_capacity(64 + limit * 64);
        let _ = write!(out, "{{\"lastUpdateId\":{last},\"bids\":[");
        for side in [Side::Buy, Side::Sell] {
            if side == Side::Sell {
                out.push_str("],\"asks\":[");
            }
            for (n, l) in book.levels(side).take(limit).enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "[\"{}\",\"{}\"]",
                    format_units(l.price.0),
                    format_units(l.qty.0)
                );
            }
        }
        out.push_str("]}");
        self.counters.snapshots_served += 1;
        Ok(out)
    }

    /// `POST /api/v3/order` reaching the matcher at `ts`.
    pub fn new_order(
        &mut self,
        ts: Nanos,
        order: &NewOrder,
        reports: &mut Vec<ExecutionReport>,
    ) -> Result<String, ApiError> {
        self.counters.orders += 1;
        let result = self.try_new_order(ts, order, reports);
        if result.is_err() {
            self.counters.orders_rejected += 1;
        }
        result
    }

    fn try_new_order(
        &mut self,
        ts: Nanos,
        order: &NewOrder,
        reports: &mut Vec<ExecutionReport>,
    ) -> Result<String, ApiError> {
        if let Some(reject) = self.reject.clone() {
            let refuse = err(reject.code, reject_message(reject.code));
            match reject.remaining {
                None => return Err(refuse),
                Some(0) => self.reject = None,
                Some(n) => {
                    self.reject = (n > 1).then_some(RejectFault {
                        remaining: Some(n - 1),
                        code: reject.code,
                    });
                    return Err(refuse);
                }
            }
        }
        let i = self.symbol_index(&order.symbol)?;
        let s = &mut self.symbols[i];
        let kind = order.kind();
        let price = order.price.unwrap_or(Price::ZERO);
        if kind != OrderKind::Market && !price.is_multiple_of(s.spec.tick) {
            return Err(err(-1013, "Filter failure: PRICE_FILTER"));
        }
        if !order.quantity.is_multiple_of(s.spec.lot) {
            return Err(err(-1013, "Filter failure: LOT_SIZE"));
        }
        let book = s.sync.is_synced().then(|| s.sync.book());
        // A market order's notional is judged at the opposite best, as Binance does with the
        // average price (the book is what the simulator has).
        let reference = match kind {
            OrderKind::Market => book
                .and_then(|b| match order.side {
                    Side::Buy => b.best_ask(),
                    Side::Sell => b.best_bid(),
                })
                .map(|l| l.price),
            _ => Some(price),
        };
        if let Some(reference) = reference {
            // A contract's notional counts its value (rt_core::ContractValue).
            if s.spec.notional(reference, order.quantity) < s.spec.min_notional {
                return Err(err(-1013, "Filter failure: NOTIONAL"));
            }
        }
        let order_id = s.next_order_id;
        let client_id = match &order.new_client_order_id {
            Some(id) => {
                if s.open_by_client.contains_key(id) {
                    return Err(err(-2010, "Duplicate order sent."));
                }
                id.clone()
            }
            None => format!("sim{i}x{order_id}"),
        };
        if self.prevent_self_trade(i, ts, order, reports) {
            // Expired as the taker: accepted, then expired in the match, nothing traded.
            let s = &mut self.symbols[i];
            s.next_order_id += 1;
            let mut rec = OrderRec::new(new_info(&s.name, order_id, client_id, order, ts));
            reports.push(report_of(&rec.info, &s.name, ts, ExecType::New));
            if rec.apply(OrderEvent::ExpiredInMatch, ms(ts)).is_err() {
                self.counters.order_errors += 1;
            }
            let info = &rec.info;
            let mut expired = report_of(info, &s.name, ts, ExecType::TradePrevention);
            expired.prevented_match_id = Some(s.next_prevented_match_id);
            expired.prevented_qty = order.quantity;
            s.next_prevented_match_id += 1;
            reports.push(expired);
            self.counters.exec_reports += 2;
            let body = NewOrderResponse::format(order.resp_type(), info, ms(ts), &[]);
            s.orders.insert(order_id, rec);
            s.archive(order_id);
            return Ok(body);
        }
        let s = &mut self.symbols[i];
        let book = s.sync.is_synced().then(|| s.sync.book());
        let mut execs = std::mem::take(&mut self.execs);
        execs.clear();
        let req = SimRequest {
            order_id,
            side: order.side,
            price,
            qty: order.quantity,
            kind,
        };
        s.matcher.submit(ts, &req, book, &mut execs);
        if let Some(Exec {
            kind: ExecKind::Rejected(reason),
            ..
        }) = execs.first()
        {
            let reason = *reason;
            self.execs = execs;
            return Err(match reason {
                RejectReason::PostOnlyWouldCross => {
                    err(-2010, "Order would immediately match and take.")
                }
                RejectReason::NoLiquidity => err(
                    -2010,
                    "Order rejected: no liquidity on the other side of the book.",
                ),
                RejectReason::BookUnavailable => err(
                    -2010,
                    "Order rejected: the simulator's book is not synced (try again).",
                ),
                other => err(-2010, format!("Order rejected: {}.", other.as_str())),
            });
        }
        s.next_order_id += 1;
        let info = new_info(&s.name, order_id, client_id.clone(), order, ts);
        s.orders.insert(order_id, OrderRec::new(info));
        s.open_by_client.insert(client_id, order_id);
        let mut fills = Vec::new();
        self.apply_execs(i, ts, &execs, reports, Some(&mut fills), None);
        self.execs = execs;
        let s = &self.symbols[i];
        let info = &s.orders[&order_id].info;
        Ok(NewOrderResponse::format(
            order.resp_type(),
            info,
            ms(ts),
            &fills,
        ))
    }

    /// `DELETE /api/v3/order` reaching the matcher at `ts`.
    pub fn cancel(
        &mut self,
        ts: Nanos,
        req: &CancelOrder,
        reports: &mut Vec<ExecutionReport>,
    ) -> Result<String, ApiError> {
        let i = self.symbol_index(&req.symbol)?;
        let s = &mut self.symbols[i];
        let order_id = match (req.order_id, &req.orig_client_order_id) {
            (Some(id), _) => id,
            (None, Some(client)) => match s.open_by_client.get(client) {
                Some(&id) => id,
                None => {
                    // Not open: a known but finished order, or nothing.
                    return Err(err(-2011, "Unknown order sent."));
                }
            },
            (None, None) => return Err(err(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )),
        };
        if let (Some(client), Some(rec)) = (&req.orig_client_order_id, s.orders.get(&order_id)) {
            if rec.info.client_order_id != *client {
                return Err(err(-2011, "Unknown order sent."));
            }
        }
        let mut execs = std::mem::take(&mut self.execs);
        execs.clear();
        s.matcher.cancel(ts, order_id, &mut execs);
        if execs.iter().any(|e| e.kind == ExecKind::CancelRejected) {
            self.execs = execs;
            return Err(err(-2011, "Unknown order sent."));
        }
        let cancel_id = format!("simcancel{}", s.next_cancel_id);
        s.next_cancel_id += 1;
        self.counters.cancels += 1;
        self.apply_execs(i, ts, &execs, reports, None, Some(&cancel_id));
        self.execs = execs;
        let info = self.symbols[i].orders[&order_id].info.clone();
        Ok(CancelResponse {
            orig_client_order_id: info.client_order_id.clone(),
            cancel_client_order_id: cancel_id,
            transact_time_ms: ms(ts),
            info,
        }
        .to_json())
    }

    /// An amendment of the open order `client_id` on `symbol` to `price` and `qty` ordered
    /// (fills included) reaching the matcher at `ts` (the sim's OKX `amend-order`): a
    /// `REPLACED` report with the order as it now is, and any trades of a limit order moved
    /// across the book. Refused (`-2011`) for an order that is not open, `-1013` off the
    /// price or lot grid, and as the matcher refuses (`rt_core::Matcher::amend`).
    pub fn amend(
        &mut self,
        ts: Nanos,
        symbol: &str,
        client_id: &str,
        price: Price,
        qty: Qty,
        reports: &mut Vec<ExecutionReport>,
    ) -> Result<(), ApiError> {
        let i = self.symbol_index(symbol)?;
        let s = &mut self.symbols[i];
        let Some(&order_id) = s.open_by_client.get(client_id) else {
            return Err(err(-2011, "Unknown order sent."));
        };
        if !price.is_multiple_of(s.spec.tick) {
            return Err(err(-1013, "Filter failure: PRICE_FILTER"));
        }
        if !qty.is_multiple_of(s.spec.lot) {
            return Err(err(-1013, "Filter failure: LOT_SIZE"));
        }
        let mut execs = std::mem::take(&mut self.execs);
        execs.clear();
        let book = s.sync.is_synced().then(|| s.sync.book());
        s.matcher.amend(ts, order_id, price, qty, book, &mut execs);
        if let Some(ExecKind::AmendRejected(reason)) = execs.first().map(|e| e.kind) {
            self.execs = execs;
            return Err(match reason {
                rt_core::RejectReason::NotAmendable => err(-2011, "Unknown order sent."),
                rt_core::RejectReason::PostOnlyWouldCross => {
                    err(-2010, "Order would immediately match and take.")
                }
                other => err(-1013, format!("Amendment refused: {other}")),
            });
        }
        self.counters.amends += 1;
        self.apply_execs(i, ts, &execs, reports, None, None);
        self.execs = execs;
        Ok(())
    }

    /// `DELETE /api/v3/openOrders` reaching the matcher at `ts`.
    pub fn cancel_all(
        &mut self,
        ts: Nanos,
        req: &CancelOpenOrders,
        reports: &mut Vec<ExecutionReport>,
    ) -> Result<String, ApiError> {
        let i = self.symbol_index(&req.symbol)?;
        let s = &mut self.symbols[i];
        if !s.matcher.has_resting() {
            return Err(err(-2011, "Unknown order sent."));
        }
        let mut execs = std::mem::take(&mut self.execs);
        execs.clear();
        s.matcher.cancel_all(ts, &mut execs);
        let mut cancels = Vec::with_capacity(execs.len());
        for e in &execs {
            let cancel_id = format!("simcancel{}", s.next_cancel_id);
            s.next_cancel_id += 1;
            cancels.push((e.order_id, cancel_id));
        }
        self.counters.cancels += cancels.len() as u64;
        for (e, (_, cancel_id)) in execs.iter().zip(&cancels) {
            self.apply_execs(
                i,
                ts,
                std::slice::from_ref(e),
                reports,
                None,
                Some(cancel_id),
            );
        }
        self.execs = execs;
        let s = &self.symbols[i];
        let responses: Vec<CancelResponse> = cancels
            .into_iter()
            .map(|(order_id, cancel_id)| {
                let info = s.orders[&order_id].info.clone();
                CancelResponse {
                    orig_client_order_id: info.client_order_id.clone(),
                    cancel_client_order_id: cancel_id,
                    transact_time_ms: ms(ts),
                    info,
                }
            })
            .collect();
        Ok(CancelResponse::format_many(&responses))
    }

    /// `GET /api/v3/openOrders`: of one symbol or of all, oldest first.
    pub fn open_orders(&self, symbol: Option<&str>) -> Result<String, ApiError> {
        let indices: Vec<usize> = match symbol {
            Some(name) => vec![self.symbol_index(name)?],
            None => (0..self.symbols.len()).collect(),
        };
        let mut open: Vec<OrderInfo> = Vec::new();
        for i in indices {
            let s = &self.symbols[i];
            for o in s.matcher.resting() {
                if let Some(rec) = s.orders.get(&o.order_id) {
                    open.push(rec.info.clone());
                }
            }
        }
        open.sort_by_key(|o| (o.time_ms, o.order_id));
        Ok(format_open_orders(&open))
    }

    /// `GET /api/v3/order`: an open order, or a finished one still remembered (see
    /// [`FINISHED_KEPT`]), by id or client id (with both, the order found by id must carry
    /// that client id). Otherwise Binance's `-2013 Order does not exist.`
    pub fn query_order(&self, req: &QueryOrder) -> Result<String, ApiError> {
        let i = self.symbol_index(&req.symbol)?;
        let s = &self.symbols[i];
        let missing = || err(-2013, "Order does not exist.");
        let rec = match (req.order_id, &req.orig_client_order_id) {
            (Some(id), client) => {
                let rec = s.orders.get(&id).ok_or_else(missing)?;
                if client
                    .as_ref()
                    .is_some_and(|c| *c != rec.info.client_order_id)
                {
                    return Err(missing());
                }
                rec
            }
            (None, Some(client)) => {
                // An open order first; otherwise the newest finished one with that id (a
                // client id can be used again once its order is finished).
                let id = match s.open_by_client.get(client) {
                    Some(&id) => Some(id),
                    None => s.finished.iter().rev().copied().find(|id| {
                        s.orders
                            .get(id)
                            .is_some_and(|r| r.info.client_order_id == *client)
                    }),
                };
                id.and_then(|id| s.orders.get(&id)).ok_or_else(missing)?
            }
            (None, None) => return Err(err(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )),
        };
        Ok(order_json(&rec.info))
    }

    /// `GET /api/v3/myTrades`: the account's trades of the symbol (those still kept, see
    /// [`TRADES_KEPT`]), ascending by id, of one order when `orderId` is given. With `fromId`,
    /// the first `limit` with id >= `fromId`; without it, the most recent `limit`, as Binance
    /// answers.
    pub fn my_trades(&self, req: &MyTradesQuery) -> Result<String, ApiError> {
        let i = self.symbol_index(&req.symbol)?;
        let s = &self.symbols[i];
        let limit = usize::try_from(req.limit_or_default()).unwrap_or(usize::MAX);
        let start = req
            .from_id
            .map_or(0, |from| s.trades.partition_point(|t| t.id < from));
        let matching = s
            .trades
            .range(start..)
            .filter(|t| req.order_id.map_or(true, |id| t.order_id == id));
        let trades: Vec<TradeInfo> = if req.from_id.is_some() {
            matching.take(limit).cloned().collect()
        } else {
            let mut newest: Vec<TradeInfo> = matching.rev().take(limit).cloned().collect();
            newest.reverse();
            newest
        };
        Ok(my_trades_json(&trades))
    }

    /// Folds executions into the orders and makes their reports. `fills` collects the trades
    /// of a new order (FULL response); `cancel_id` is the cancel request's client id.
    fn apply_execs(
        &mut self,
        i: usize,
        ts: Nanos,
        execs: &[Exec],
        reports: &mut Vec<ExecutionReport>,
        mut fills: Option<&mut Vec<FillInfo>>,
        cancel_id: Option<&str>,
    ) {
        for e in execs {
            let e = &self.slipped(i, *e);
            let charged = match e.kind {
                ExecKind::Fill {
                    price, qty, fee, ..
                } => {
                    let Some(side) = self.symbols[i].orders.get(&e.order_id).map(|r| r.info.side)
                    else {
                        continue;
                    };
                    // On the fill's value in its settlement currency (a contract's value).
                    let value = self.symbols[i]
                        .spec
                        .contract
                        .value_price(price.0)
                        .saturating_abs();
                    let surcharge =
                        notional(Price(value), qty) * i128::from(self.fee_surcharge_bps) / 10_000;
                    let fee = fee.saturating_add(i64::try_from(surcharge).unwrap_or(i64::MAX));
                    Some(self.charge(i, side, price, fee))
                }
                _ => None,
            };
            let s = &mut self.symbols[i];
            let Some(rec) = s.orders.get_mut(&e.order_id) else {
                continue;
            };
            let event = match e.kind {
                ExecKind::Rejected(_) | ExecKind::CancelRejected | ExecKind::AmendRejected(_) => {
                    None
                }
                kind => OrderEvent::of_exec(&kind),
            };
            if let Some(event) = event {
                if rec.apply(event, ms(ts)).is_err() {
                    self.counters.order_errors += 1;
                    continue;
                }
            }
            let info = &mut rec.info;
            let mut last_qty = Qty::ZERO;
            let mut last_price = Price::ZERO;
            let (commission, commission_asset) = charged.unwrap_or((0, String::new()));
            let mut trade_id = -1i64;
            let mut maker = false;
            let mut orig_client = String::new();
            let mut client = info.client_order_id.clone();
            let exec_type = match e.kind {
                ExecKind::Accepted => {
                    info.is_working =
                        matches!(info.order_type, OrderType::Limit | OrderType::LimitMaker);
                    ExecType::New
                }
                ExecKind::Fill {
                    price,
                    qty,
                    maker: is_maker,
                    ..
                } => {
                    let id = s.next_trade_id;
                    s.next_trade_id += 1;
                    info.cum_quote_qty =
                        cash(i128::from(info.cum_quote_qty) + notional(price, qty));
                    last_qty = qty;
                    last_price = price;
                    trade_id = i64::try_from(id).unwrap_or(i64::MAX);
                    maker = is_maker;
                    self.counters.fills += 1;
                    let value = cash(notional(price, qty));
                    let (base_delta, quote_delta) = match info.side {
                        Side::Buy => (qty.0, -value),
                        Side::Sell => (-qty.0, value),
                    };
                    if s.settle.is_none() {
                        for (asset, delta) in [(&s.base, base_delta), (&s.quote, quote_delta)] {
                            let b = self.balances.entry(asset.clone()).or_insert(0);
                            *b = b.saturating_add(delta);
                        }
                    }
                    // A BNB commission was taken from the BNB balance when charged.
                    if commission_asset != "BNB" {
                        let b = self.balances.entry(commission_asset.clone()).or_insert(0);
                        *b = b.saturating_sub(commission);
                    }
                    s.trades.push_back(TradeInfo {
                        symbol: s.name.clone(),
                        id,
                        order_id: info.order_id,
                        price,
                        qty,
                        quote_qty: cash(notional(price, qty)),
                        commission,
                        commission_asset: commission_asset.clone(),
                        time_ms: ms(ts),
                        is_buyer: info.side == Side::Buy,
                        is_maker,
                    });
                    while s.trades.len() > s.trades_kept {
                        s.trades.pop_front();
                    }
                    if let Some(fills) = fills.as_deref_mut() {
                        fills.push(FillInfo {
                            price,
                            qty,
                            commission,
                            commission_asset: commission_asset.clone(),
                            trade_id: id,
                        });
                    }
                    ExecType::Trade
                }
                ExecKind::Cancelled => {
                    if let Some(id) = cancel_id {
                        orig_client = std::mem::replace(&mut client, id.to_owned());
                    }
                    ExecType::Canceled
                }
                ExecKind::Expired => ExecType::Expired,
                ExecKind::Amended { price, qty } => {
                    info.price = price;
                    info.orig_qty = qty;
                    ExecType::Replaced
                }
                ExecKind::Rejected(_) | ExecKind::CancelRejected | ExecKind::AmendRejected(_) => {
                    continue
                }
            };
            let finished = rec.life.is_final();
            if finished {
                s.open_by_client.remove(&info.client_order_id);
            }
            let mut report = report_of(info, &s.name, ts, exec_type);
            report.client_order_id = client;
            report.orig_client_order_id = orig_client;
            report.last_qty = last_qty;
            report.last_price = last_price;
            report.last_quote_qty = cash(notional(last_price, last_qty));
            report.commission = commission;
            report.commission_asset = (exec_type == ExecType::Trade).then_some(commission_asset);
            report.trade_id = trade_id;
            report.is_maker = maker;
            reports.push(report);
            self.counters.exec_reports += 1;
            if finished {
                s.archive(e.order_id);
            }
        }
    }

    /// Self-trade prevention for a new order of the account (Binance's rules, the taker's
    /// mode deciding): the account's open orders on the other side that it would trade with
    /// (its limit reaches their price; a market order reaches any) expire as makers
    /// (`EXPIRE_MAKER`, `EXPIRE_BOTH`) with a `TRADE_PREVENTION` report each; returns whether
    /// the new order itself expires (`EXPIRE_TAKER`, `EXPIRE_BOTH` with any such order). The
    /// sim does not match the account's orders with each other, so `NONE` changes nothing.
    fn prevent_self_trade(
        &mut self,
        i: usize,
        ts: Nanos,
        order: &NewOrder,
        reports: &mut Vec<ExecutionReport>,
    ) -> bool {
        let mode = order.self_trade_prevention_mode.unwrap_or(DEFAULT_STP_MODE);
        if mode == StpMode::None {
            return false;
        }
        let kind = order.kind();
        let s = &mut self.symbols[i];
        let limit = order.price.unwrap_or(Price::ZERO);
        let mut makers: Vec<u64> = s
            .open_by_client
            .values()
            .copied()
            .filter(|id| {
                s.orders.get(id).is_some_and(|r| {
                    r.info.side != order.side
                        && (kind == OrderKind::Market
                            || match order.side {
                                Side::Buy => r.info.price <= limit,
                                Side::Sell => r.info.price >= limit,
                            })
                })
            })
            .collect();
        if makers.is_empty() {
            return false;
        }
        makers.sort_unstable();
        self.counters.prevented_matches += makers.len() as u64;
        if matches!(mode, StpMode::ExpireMaker | StpMode::ExpireBoth) {
            let mut execs = Vec::new();
            for id in makers {
                execs.clear();
                s.matcher.cancel(ts, id, &mut execs);
                let match_id = s.next_prevented_match_id;
                s.next_prevented_match_id += 1;
                let Some(rec) = s.orders.get_mut(&id) else {
                    continue;
                };
                if rec.apply(OrderEvent::ExpiredInMatch, ms(ts)).is_err() {
                    self.counters.order_errors += 1;
                    continue;
                }
                let info = &rec.info;
                s.open_by_client.remove(&info.client_order_id);
                let mut report = report_of(info, &s.name, ts, ExecType::TradePrevention);
                report.prevented_match_id = Some(match_id);
                report.prevented_qty = info.orig_qty - info.executed_qty;
                reports.push(report);
                self.counters.exec_reports += 1;
                s.archive(id);
            }
        }
        matches!(mode, StpMode::ExpireTaker | StpMode::ExpireBoth)
    }
}

/// The mode of an order that names none: Binance's default on its spot symbols.
pub const DEFAULT_STP_MODE: StpMode = StpMode::ExpireMaker;

impl SymbolState {
    /// Keeps a finished order for lookups (the newest [`FINISHED_KEPT`]).
    fn archive(&mut self, order_id: u64) {
        self.finished.push_back(order_id);
        if self.finished.len() > FINISHED_KEPT {
            if let Some(old) = self.finished.pop_front() {
                self.orders.remove(&old);
            }
        }
    }
}

/// A new order as the venue records it on arrival at `ts`.
fn new_info(
    symbol: &str,
    order_id: u64,
    client_order_id: String,
    order: &NewOrder,
    ts: Nanos,
) -> OrderInfo {
    OrderInfo {
        symbol: symbol.to_owned(),
        order_id,
        client_order_id,
        // A market order shows price 0, as on Binance.
        price: order.price.unwrap_or(Price::ZERO),
        orig_qty: order.quantity,
        executed_qty: Qty::ZERO,
        cum_quote_qty: 0,
        status: OrderStatus::New,
        time_in_force: order.shown_time_in_force(),
        order_type: order.order_type,
        side: order.side,
        time_ms: ms(ts),
        update_time_ms: ms(ts),
        is_working: false,
    }
}

/// An `executionReport` of `info` as it stands, without a trade.
fn report_of(info: &OrderInfo, symbol: &str, ts: Nanos, exec_type: ExecType) -> ExecutionReport {
    ExecutionReport {
        event_time_ms: ms(ts),
        symbol: symbol.to_owned(),
        client_order_id: info.client_order_id.clone(),
        side: info.side,
        order_type: info.order_type,
        time_in_force: info.time_in_force,
        quantity: info.orig_qty,
        price: info.price,
        orig_client_order_id: String::new(),
        exec_type,
        status: info.status,
        reject_reason: "NONE".into(),
        order_id: info.order_id,
        last_qty: Qty::ZERO,
        cum_qty: info.executed_qty,
        last_price: Price::ZERO,
        commission: 0,
        commission_asset: None,
        transaction_time_ms: ms(ts),
        trade_id: -1,
        is_working: info.is_working,
        is_maker: false,
        creation_time_ms: info.time_ms,
        cum_quote_qty: info.cum_quote_qty,
        last_quote_qty: 0,
        prevented_match_id: None,
        prevented_qty: Qty::ZERO,
    }
}

/// Price units per 1.0 (for tests and docs).
pub const UNITS: i64 = SCALE;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rt_core::{Header, Level, Snapshot, Trade};
    use rt_manifest::Fixed;
    use rt_venues::binance_orders::{parse_my_trades, parse_order, NewOrderResponse, Timing};

    fn instrument() -> Instrument {
        Instrument {
            tick_size: Fixed::from_raw(1_000_000),
            lot_size: Fixed::from_raw(1_000),
            min_notional: Fixed::from_raw(5 * UNITS),
            maker_fee_bps: Fixed::from_raw(10 * UNITS),
            taker_fee_bps: Fixed::from_raw(10 * UNITS),
            listing: None,
            leverage: None,
            margin_type: None,
        }
    }

    fn lv(price: i64, qty: i64) -> Level {
        Level::new(Price::from_int(price), Qty(qty))
    }

    fn venue() -> Venue {
        let name = "BTCUSDT".to_owned();
        let inst = instrument();
        let mut v = Venue::new(Market::Spot, [(&name, &inst)]);
        let bids = [lv(60_000, 100_000_000), lv(59_999, 200_000_000)];
        let asks = [lv(60_001, 50_000_000), lv(60_002, 100_000_000)];
        let snap = MarketEvent::Snapshot(Snapshot {
            header: Header::default(),
            last_update_id: 100,
            bids: &bids,
            asks: &asks,
        });
        let mut reports = Vec::new();
        v.on_event(1_000_000_000, &snap, &mut reports);
        assert!(reports.is_empty());
        v
    }

    fn order(kind: OrderKind, side: Side, price: i64, qty: i64, id: &str) -> NewOrder {
        NewOrder::from_kind(
            "BTCUSDT",
            side,
            kind,
            Price::from_int(price),
            Qty(qty),
            Some(id.into()),
            Timing::new(0),
        )
    }

    #[test]
    fn depth_answers_the_book_and_its_update_id() {
        let mut v = venue();
        let body = v.depth("BTCUSDT", 1).unwrap();
        assert_eq!(
            body,
            "{\"lastUpdateId\":100,\"bids\":[[\"60000.00000000\",\"1.00000000\"]],\
             \"asks\":[[\"60001.00000000\",\"0.50000000\"]]}"
        );
        assert_eq!(v.depth("ETHUSDT", 5).unwrap_err().code, -1121);
    }

    #[test]
    fn a_resting_order_fills_from_trades_after_its_queue() {
        let mut v = venue();
        let mut reports = Vec::new();
        let body = v
            .new_order(
                2_000_000_000,
                &order(OrderKind::Limit, Side::Buy, 60_000, 10_000_000, "a"),
                &mut reports,
            )
            .unwrap();
        let resp = NewOrderResponse::parse(&body).unwrap();
        assert_eq!(resp.info.unwrap().status, OrderStatus::New);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].exec_type, ExecType::New);
        reports.clear();
        // 1.0 ahead of us; a sell of 1.05 at our price fills 0.05 (maker, 10 bps).
        let trade = MarketEvent::Trade(Trade {
            header: Header::default(),
            id: 1,
            price: Price::from_int(60_000),
            qty: Qty(105_000_000),
            aggressor: Side::Sell,
        });
        v.on_event(3_000_000_000, &trade, &mut reports);
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(
            (r.exec_type, r.status),
            (ExecType::Trade, OrderStatus::PartiallyFilled)
        );
        assert_eq!(r.last_qty, Qty(5_000_000));
        assert!(r.is_maker);
        // 60000 * 0.05 = 3000 USDT, 10 bps = 3 USDT.
        assert_eq!(r.commission, 3 * UNITS);
        assert_eq!(r.commission_asset.as_deref(), Some("USDT"));
        assert_eq!(r.event_time_ms, 3_000);
        let open = v.open_orders(Some("BTCUSDT")).unwrap();
        assert!(open.contains("\"executedQty\":\"0.05000000\""));
        // Cancel by client id: CANCELED report with C = the original id.
        reports.clear();
        let cancel = CancelOrder {
            symbol: "BTCUSDT".into(),
            order_id: None,
            orig_client_order_id: Some("a".into()),
            timing: Timing::new(0),
        };
        let body = v.cancel(4_000_000_000, &cancel, &mut reports).unwrap();
        let c = CancelResponse::parse(&body).unwrap();
        assert_eq!(c.info.status, OrderStatus::Canceled);
        assert_eq!(reports[0].orig_client_order_id, "a");
        assert_eq!(
            v.cancel(4_000_000_000, &cancel, &mut reports)
                .unwrap_err()
                .code,
            -2011
        );
        assert_eq!(v.open_orders(None).unwrap(), "[]");
    }

    #[test]
    fn filters_post_only_and_rejections() {
        let mut v = venue();
        let mut reports = Vec::new();
        let mut o = order(OrderKind::Limit, Side::Buy, 60_000, 10_000_000, "b");
        o.price = Some(Price(6_000_000_500_000)); // 60000.005: off tick
        assert_eq!(
            v.new_order(0, &o, &mut reports).unwrap_err().msg,
            "Filter failure: PRICE_FILTER"
        );
        let o = order(OrderKind::Limit, Side::Buy, 60_000, 10_000_500, "b");
        assert_eq!(
            v.new_order(0, &o, &mut reports).unwrap_err().msg,
            "Filter failure: LOT_SIZE"
        );
        let o = order(OrderKind::Limit, Side::Buy, 60_000, 1_000, "b");
        assert_eq!(
            v.new_order(0, &o, &mut reports).unwrap_err().msg,
            "Filter failure: NOTIONAL"
        );
        let o = order(OrderKind::PostOnly, Side::Buy, 60_001, 10_000_000, "b");
        assert_eq!(
            v.new_order(0, &o, &mut reports).unwrap_err().msg,
            "Order would immediately match and take."
        );
        // A taker IOC: fills 0.5 at 60001, the rest expires.
        let o = order(OrderKind::Ioc, Side::Buy, 60_001, 60_000_000, "c");
        let resp = NewOrderResponse::parse(&v.new_order(0, &o, &mut reports).unwrap()).unwrap();
        assert_eq!(resp.fills.len(), 1);
        assert_eq!(resp.info.unwrap().status, OrderStatus::Expired);
        let kinds: Vec<_> = reports.iter().map(|r| r.exec_type).collect();
        assert_eq!(kinds, [ExecType::New, ExecType::Trade, ExecType::Expired]);
        // Injected rejections: two, then orders pass again.
        v.set_reject(Some(RejectFault {
            remaining: Some(2),
            code: -1015,
        }));
        let o = order(OrderKind::Limit, Side::Buy, 59_000, 10_000_000, "d");
        assert_eq!(v.new_order(0, &o, &mut reports).unwrap_err().code, -1015);
        assert_eq!(v.new_order(0, &o, &mut reports).unwrap_err().code, -1015);
        assert!(v.new_order(0, &o, &mut reports).is_ok());
        assert_eq!(
            v.new_order(0, &o, &mut reports).unwrap_err().msg,
            "Duplicate order sent."
        );
        assert_eq!(v.counters().orders, 9);
        assert_eq!(v.counters().orders_rejected, 7);
    }

    #[test]
    fn finished_orders_are_forgotten_beyond_the_limit() {
        let mut v = venue();
        let mut reports = Vec::new();
        // IOC sells above the bid: accepted, then expired at once.
        let o = order(OrderKind::Ioc, Side::Sell, 61_000, 10_000_000, "x");
        for _ in 0..FINISHED_KEPT + 5 {
            v.new_order(0, &o, &mut reports).unwrap();
            reports.clear();
        }
        assert_eq!(v.symbols[0].orders.len(), FINISHED_KEPT);
        assert!(!v.symbols[0].orders.contains_key(&5));
        assert!(v.symbols[0].orders.contains_key(&6));
        assert!(v.symbols[0].open_by_client.is_empty());
    }

    /// (commission, asset) of a taker buy of 0.1 at 60001 (10 bps: 6.0001 USDT) and a taker
    /// sell of 0.1 at 60000 (6 USDT), charged per `commission`.
    fn charged(commission: CommissionSettings) -> (Vec<(i64, String)>, CommissionSettings) {
        let mut v = venue();
        v.set_commission(commission);
        let mut out = Vec::new();
        for (side, price, id) in [(Side::Buy, 60_001, "b"), (Side::Sell, 60_000, "s")] {
            let mut reports = Vec::new();
            v.new_order(
                2_000_000_000,
                &order(OrderKind::Limit, side, price, 10_000_000, id),
                &mut reports,
            )
            .unwrap();
            let fill = reports
                .iter()
                .find(|r| r.exec_type == ExecType::Trade)
                .unwrap();
            out.push((fill.commission, fill.commission_asset.clone().unwrap()));
            // myTrades says the same.
            let trades = trades_of(&v, Some(fill.order_id), None, None);
            assert_eq!(trades[0].commission, fill.commission);
            assert_eq!(
                Some(&trades[0].commission_asset),
                fill.commission_asset.as_ref()
            );
        }
        (out, v.commission())
    }

    /// A resting buy of ours at 60000 ("maker"), then a sell at 59999 ("taker") of the same
    /// account with `mode`: the reports of each, by client id.
    fn self_trade(mode: Option<StpMode>) -> (Venue, Vec<ExecutionReport>) {
        let mut v = venue();
        let mut reports = Vec::new();
        v.new_order(
            2_000_000_000,
            &order(OrderKind::Limit, Side::Buy, 60_000, 10_000_000, "maker"),
            &mut reports,
        )
        .unwrap();
        reports.clear();
        let mut taker = order(OrderKind::Limit, Side::Sell, 59_999, 10_000_000, "taker");
        taker.self_trade_prevention_mode = mode;
        v.new_order(2_000_000_000, &taker, &mut reports).unwrap();
        (v, reports)
    }

    fn kinds(reports: &[ExecutionReport], client: &str) -> Vec<(ExecType, OrderStatus)> {
        reports
            .iter()
            .filter(|r| r.client_order_id == client)
            .map(|r| (r.exec_type, r.status))
            .collect()
    }

    #[test]
    fn self_trade_prevention_expires_the_maker_the_taker_or_both() {
        let prevented = (ExecType::TradePrevention, OrderStatus::ExpiredInMatch);
        // EXPIRE_MAKER (also the default): our resting buy expires; the sell trades with the
        // book's bid at 60000.
        for mode in [Some(StpMode::ExpireMaker), None] {
            let (v, r) = self_trade(mode);
            assert_eq!(kinds(&r, "maker"), vec![prevented]);
            let m = r.iter().find(|r| r.client_order_id == "maker").unwrap();
            assert_eq!(m.prevented_qty, Qty(10_000_000));
            assert_eq!(m.prevented_match_id, Some(0));
            assert_eq!(
                kinds(&r, "taker"),
                vec![
                    (ExecType::New, OrderStatus::New),
                    (ExecType::Trade, OrderStatus::Filled)
                ]
            );
            assert!(!v.open_orders(Some("BTCUSDT")).unwrap().contains("maker"));
            assert_eq!(v.counters().prevented_matches, 1);
            let q = query(&v, None, Some("maker")).unwrap();
            assert_eq!(q.status, OrderStatus::ExpiredInMatch);
        }
        // EXPIRE_TAKER: the sell expires, our buy rests on.
        let (v, r) = self_trade(Some(StpMode::ExpireTaker));
        assert!(kinds(&r, "maker").is_empty());
        assert_eq!(
            kinds(&r, "taker"),
            vec![(ExecType::New, OrderStatus::New), prevented]
        );
        assert!(v.open_orders(Some("BTCUSDT")).unwrap().contains("maker"));
        assert_eq!(
            query(&v, None, Some("taker")).unwrap().status,
            OrderStatus::ExpiredInMatch
        );
        // EXPIRE_BOTH: both.
        let (v, r) = self_trade(Some(StpMode::ExpireBoth));
        assert_eq!(kinds(&r, "maker"), vec![prevented]);
        assert_eq!(kinds(&r, "taker").last(), Some(&prevented));
        assert_eq!(v.open_orders(Some("BTCUSDT")).unwrap(), "[]");
        // NONE: the sim does not match the account's orders together; both stand.
        let (v, r) = self_trade(Some(StpMode::None));
        assert!(kinds(&r, "maker").is_empty());
        assert_eq!(v.counters().prevented_matches, 0);
        assert!(v.open_orders(Some("BTCUSDT")).unwrap().contains("maker"));
    }

    #[test]
    fn commissions_are_charged_in_the_asset_the_settings_say() {
        let settings = |asset, bnb_balance| CommissionSettings {
            asset,
            bnb_balance,
            bnb_price: 600 * UNITS,
        };
        let usdt = |v: i64| (v, "USDT".to_owned());
        let btc = |v: i64| (v, "BTC".to_owned());
        let bnb = |v: i64| (v, "BNB".to_owned());
        let (quote, _) = charged(settings(SimCommission::Quote, 0));
        assert_eq!(quote, vec![usdt(600_010_000), usdt(600_000_000)]);
        // 10 bps of 0.1 BTC on both sides.
        let (base, _) = charged(settings(SimCommission::Base, 0));
        assert_eq!(base, vec![btc(10_000), btc(10_000)]);
        // What is received: BTC on the buy, USDT on the sell.
        let (received, _) = charged(settings(SimCommission::Received, 0));
        assert_eq!(received, vec![btc(10_000), usdt(600_000_000)]);
        // BNB at 600: 6.0001 / 600 = 0.01000016(67), rounded up; 6 / 600 = 0.01.
        let (paid, left) = charged(settings(SimCommission::Bnb, UNITS));
        assert_eq!(paid, vec![bnb(1_000_017), bnb(1_000_000)]);
        assert_eq!(left.bnb_balance, UNITS - 2_000_017);
        // Too little BNB for the first: the asset received; then enough for the second.
        let (short, left) = charged(settings(SimCommission::Bnb, 1_000_000));
        assert_eq!(short, vec![btc(10_000), bnb(1_000_000)]);
        assert_eq!(left.bnb_balance, 0);
    }

    fn sell_trade(price: i64, qty: i64) -> MarketEvent<'static> {
        MarketEvent::Trade(Trade {
            header: Header::default(),
            id: 1,
            price: Price::from_int(price),
            qty: Qty(qty),
            aggressor: Side::Sell,
        })
    }

    fn trades_of(
        v: &Venue,
        order_id: Option<u64>,
        from_id: Option<u64>,
        limit: Option<u32>,
    ) -> Vec<TradeInfo> {
        let q = MyTradesQuery {
            symbol: "BTCUSDT".into(),
            order_id,
            from_id,
            limit,
            timing: Timing::new(0),
        };
        parse_my_trades(&v.my_trades(&q).unwrap()).unwrap()
    }

    fn query(v: &Venue, order_id: Option<u64>, client: Option<&str>) -> Result<OrderInfo, i32> {
        let q = QueryOrder {
            symbol: "BTCUSDT".into(),
            order_id,
            orig_client_order_id: client.map(str::to_owned),
            timing: Timing::new(0),
        };
        v.query_order(&q)
            .map(|body| parse_order(&body).unwrap())
            .map_err(|e| e.code)
    }

    fn ids(trades: &[TradeInfo]) -> Vec<u64> {
        trades.iter().map(|t| t.id).collect()
    }

    #[test]
    fn fills_are_kept_as_trades_with_their_reports_ids() {
        let mut v = venue();
        let mut reports = Vec::new();
        // A bid of 0.1 at 60000 behind 1.0, filled by two sells at its price.
        let body = v
            .new_order(
                2_000_000_000,
                &order(OrderKind::Limit, Side::Buy, 60_000, 10_000_000, "a"),
                &mut reports,
            )
            .unwrap();
        let a = NewOrderResponse::parse(&body).unwrap().order_id;
        v.on_event(
            3_000_000_000,
            &sell_trade(60_000, 105_000_000),
            &mut reports,
        );
        v.on_event(4_000_000_000, &sell_trade(60_000, 5_000_000), &mut reports);
        let mut fills: Vec<ExecutionReport> = reports
            .iter()
            .filter(|r| r.exec_type == ExecType::Trade)
            .cloned()
            .collect();
        assert_eq!(fills.len(), 2, "{reports:?}");
        assert_eq!(fills[1].status, OrderStatus::Filled);
        // A taker: an IOC buy of 0.01 through the ask.
        reports.clear();
        let body = v
            .new_order(
                5_000_000_000,
                &order(OrderKind::Ioc, Side::Buy, 60_001, 1_000_000, "c"),
                &mut reports,
            )
            .unwrap();
        let c = NewOrderResponse::parse(&body).unwrap();
        let taker_fill = reports
            .iter()
            .find(|r| r.exec_type == ExecType::Trade)
            .unwrap()
            .clone();
        assert_eq!(c.fills[0].trade_id, 3);

        let all = trades_of(&v, None, None, None);
        assert_eq!(ids(&all), [1, 2, 3]);
        fills.push(taker_fill);
        assert_eq!(all.len(), fills.len());
        for (t, r) in all.iter().zip(&fills) {
            assert_eq!(i64::try_from(t.id).unwrap(), r.trade_id);
            assert_eq!(t.order_id, r.order_id);
            assert_eq!((t.price, t.qty), (r.last_price, r.last_qty));
            assert_eq!(t.quote_qty, r.last_quote_qty);
            assert_eq!(t.commission, r.commission);
            assert_eq!(
                Some(t.commission_asset.as_str()),
                r.commission_asset.as_deref()
            );
            assert_eq!(t.is_maker, r.is_maker);
            assert_eq!(t.time_ms, r.transaction_time_ms);
            assert!(t.is_buyer);
            assert_eq!(t.symbol, "BTCUSDT");
        }
        assert_eq!((all[0].qty, all[1].qty), (Qty(5_000_000), Qty(5_000_000)));
        assert!(all[0].is_maker && all[1].is_maker && !all[2].is_maker);
        // 60000 * 0.05 = 3000 USDT at 10 bps.
        assert_eq!(all[0].commission, 3 * UNITS);
        assert_eq!(all[0].quote_qty, 3_000 * UNITS);
        assert_eq!((all[0].time_ms, all[1].time_ms), (3_000, 4_000));

        // orderId, fromId and limit.
        assert_eq!(ids(&trades_of(&v, Some(a), None, None)), [1, 2]);
        assert_eq!(ids(&trades_of(&v, Some(c.order_id), None, None)), [3]);
        assert_eq!(
            ids(&trades_of(&v, Some(999), None, None)),
            Vec::<u64>::new()
        );
        assert_eq!(ids(&trades_of(&v, None, Some(2), None)), [2, 3]);
        assert_eq!(ids(&trades_of(&v, Some(a), Some(2), None)), [2]);
        assert_eq!(ids(&trades_of(&v, None, Some(4), None)), Vec::<u64>::new());
        // Without fromId the most recent, with it the first from there; ascending either way.
        assert_eq!(ids(&trades_of(&v, None, None, Some(2))), [2, 3]);
        assert_eq!(ids(&trades_of(&v, None, Some(0), Some(2))), [1, 2]);
        assert_eq!(ids(&trades_of(&v, Some(a), None, Some(1))), [2]);
        assert_eq!(ids(&trades_of(&v, Some(a), Some(0), Some(1))), [1]);
        let q = MyTradesQuery {
            symbol: "ETHUSDT".into(),
            order_id: None,
            from_id: None,
            limit: None,
            timing: Timing::new(0),
        };
        assert_eq!(v.my_trades(&q).unwrap_err().code, -1121);

        // Queries: an open order, a filled one, unknown ones.
        let body = v
            .new_order(
                6_000_000_000,
                &order(OrderKind::Limit, Side::Buy, 59_000, 10_000_000, "far"),
                &mut reports,
            )
            .unwrap();
        let far = NewOrderResponse::parse(&body).unwrap().order_id;
        let open = query(&v, None, Some("far")).unwrap();
        assert_eq!(
            (open.order_id, open.status, open.is_working),
            (far, OrderStatus::New, true)
        );
        assert_eq!(query(&v, Some(far), None).unwrap(), open);
        let filled = query(&v, None, Some("a")).unwrap();
        assert_eq!(
            (filled.order_id, filled.status, filled.executed_qty),
            (a, OrderStatus::Filled, Qty(10_000_000))
        );
        assert_eq!(filled.cum_quote_qty, 6_000 * UNITS);
        assert!(!filled.is_working);
        assert_eq!((filled.time_ms, filled.update_time_ms), (2_000, 4_000));
        assert_eq!(query(&v, Some(a), Some("a")).unwrap(), filled);
        assert_eq!(
            query(&v, Some(c.order_id), None).unwrap().status,
            OrderStatus::Filled
        );
        assert_eq!(query(&v, Some(a), Some("far")), Err(-2013));
        assert_eq!(query(&v, Some(999), None), Err(-2013));
        assert_eq!(query(&v, None, Some("nope")), Err(-2013));
        assert_eq!(query(&v, None, None), Err(-1102));
        let q = QueryOrder {
            symbol: "ETHUSDT".into(),
            order_id: Some(a),
            orig_client_order_id: None,
            timing: Timing::new(0),
        };
        assert_eq!(v.query_order(&q).unwrap_err().code, -1121);
        // The body is Binance's error.
        let q = QueryOrder {
            symbol: "BTCUSDT".into(),
            order_id: Some(999),
            orig_client_order_id: None,
            timing: Timing::new(0),
        };
        assert_eq!(
            v.query_order(&q).unwrap_err().to_json(),
            "{\"code\":-2013,\"msg\":\"Order does not exist.\"}"
        );
    }

    #[test]
    fn a_client_id_used_again_finds_its_newest_order() {
        let mut v = venue();
        let mut reports = Vec::new();
        // IOC sells above the bid: accepted, then expired at once.
        let o = order(OrderKind::Ioc, Side::Sell, 61_000, 10_000_000, "x");
        v.new_order(0, &o, &mut reports).unwrap();
        v.new_order(0, &o, &mut reports).unwrap();
        let found = query(&v, None, Some("x")).unwrap();
        assert_eq!((found.order_id, found.status), (2, OrderStatus::Expired));
        assert_eq!(query(&v, Some(1), Some("x")).unwrap().order_id, 1);
    }

    #[test]
    fn the_oldest_trades_are_forgotten_beyond_the_limit() {
        let mut v = venue();
        v.symbols[0].trades_kept = 2;
        let mut reports = Vec::new();
        for n in 0..3 {
            let o = order(
                OrderKind::Ioc,
                Side::Buy,
                60_001,
                1_000_000,
                &format!("t{n}"),
            );
            v.new_order(0, &o, &mut reports).unwrap();
        }
        assert_eq!(v.counters().fills, 3);
        assert_eq!(ids(&trades_of(&v, None, None, None)), [2, 3]);
        assert_eq!(ids(&trades_of(&v, None, Some(0), None)), [2, 3]);
        assert_eq!(ids(&trades_of(&v, Some(1), None, None)), Vec::<u64>::new());
        assert_eq!(ids(&trades_of(&v, Some(3), None, None)), [3]);
    }

    #[test]
    fn quote_assets() {
        assert_eq!(quote_asset("BTCUSDT"), "USDT");
        assert_eq!(quote_asset("ETHBTC"), "BTC");
        assert_eq!(quote_asset("BTCFDUSD"), "FDUSD");
    }

    /// A taker buy of 0.1 at 60001 on a venue with `surcharge_bps` and `slippage_bps` set:
    /// its trade report's (last price, commission).
    fn faulted_buy(surcharge_bps: u32, slippage_bps: u32) -> (Price, i64) {
        let mut v = venue();
        v.set_fee_surcharge_bps(surcharge_bps);
        v.set_slippage_bps(slippage_bps);
        let mut reports = Vec::new();
        v.new_order(
            2_000_000_000,
            &order(OrderKind::Limit, Side::Buy, 60_001, 10_000_000, "b"),
            &mut reports,
        )
        .unwrap();
        let fill = reports
            .iter()
            .find(|r| r.exec_type == ExecType::Trade)
            .unwrap();
        (fill.last_price, fill.commission)
    }

    #[test]
    fn fee_and_slippage_faults_reprice_and_recharge_fills() {
        let (price, fee) = faulted_buy(0, 0);
        // 20 bps of slippage: a buy 20 bps higher; 100 bps more commission on its notional.
        let (slipped, charged) = faulted_buy(100, 20);
        assert_eq!(slipped.0, price.0 + price.0 * 20 / 10_000);
        let notional = i128::from(slipped.0) * 10_000_000 / i128::from(SCALE);
        assert_eq!(i128::from(charged - fee), notional / 100);
        // Off again at 0.
        assert_eq!(faulted_buy(0, 0), (price, fee));
    }
}
