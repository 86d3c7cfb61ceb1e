//! The sim venue's USD-M futures account, without I/O: the positions (one-way mode: one
//! signed position a symbol), the USDT wallet, each symbol's leverage and margin type, the
//! orders' futures flags (`reduceOnly`, GTX), and the realised P&L of every trade.
//!
//! The spot [`crate::venue::Venue`] matches the orders (a futures order is its spot
//! equivalent, GTX being LIMIT_MAKER); this account turns its `executionReport`s into what the
//! futures user stream sends: an `ORDER_TRADE_UPDATE` for each, and after a trade an
//! `ACCOUNT_UPDATE` (reason `ORDER`) with the wallet and the position. A funding payment
//! ([`FuturesAccount::fund`]) moves the wallet by `-position * mark * rate` and sends an
//! `ACCOUNT_UPDATE` with reason `FUNDING_FEE`.
//!
//! Liquidation prices ([`FuturesAccount::liquidation_price`]) follow the one-position form of
//! Binance's formula with a maintenance margin rate of [`MAINTENANCE_MARGIN_BPS`] (the first
//! tier of the BTC perpetual): the price at which the margin (the wallet under cross margin,
//! the position's initial margin `|q| * entry / leverage` under isolated) plus the position's
//! unrealised P&L equals the maintenance margin `mmr * |q| * price`. The sim does not liquidate.

use std::collections::HashMap;

use rt_core::{Price, Qty, Side, SCALE};
use rt_venues::binance::usdm::{
    AccountUpdate, BalanceChange, FuturesExecType, FuturesOrderInfo, FuturesTif, FuturesTrade,
    MarginType, OrderTradeUpdate, PositionChange, PositionRisk, FUNDING_FEE,
};
use rt_venues::binance::usdm_income::{IncomeRecord, FUNDING_FEE as FUNDING_FEE_INCOME};
use rt_venues::binance_orders::{ExecType, ExecutionReport, OrderInfo, StpMode, TradeInfo};
use rt_venues::execution::PositionSide;

/// Maintenance margin rate, bps (0.4%).
pub const MAINTENANCE_MARGIN_BPS: i64 = 40;
/// The wallet when the manifest configures none (`reconcile.starting_balances.USDT`).
pub const DEFAULT_WALLET: i64 = 100_000 * SCALE;
/// Binance's default leverage of a symbol never set.
pub const DEFAULT_LEVERAGE: u32 = 20;
/// The asset the wallet and every commission are in.
pub const MARGIN_ASSET: &str = "USDT";

/// One symbol's position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Signed, 10^-8.
    pub qty: i64,
    pub entry: Price,
    /// Realised P&L accumulated (before fees).
    pub realized: i64,
}

/// What an order was sent with that the spot matcher does not keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderFlags {
    pub reduce_only: bool,
    pub gtx: bool,
    pub stp: StpMode,
}

/// The futures account (see the module documentation).
#[derive(Debug)]
pub struct FuturesAccount {
    wallet: i64,
    dual_side: bool,
    positions: HashMap<String, Position>,
    leverage: HashMap<String, u32>,
    margin: HashMap<String, MarginType>,
    /// (symbol, client id) -> flags; a client id is reused only after its order finished.
    flags: HashMap<(String, String), OrderFlags>,
    /// (symbol, trade id) -> realised P&L of the trade.
    realized: HashMap<(String, u64), i64>,
    /// Funding payments made (counted for `/sim/status`).
    pub funding_payments: u64,
    /// A `mark` fault: added to a symbol's mark (the mid), in 10^-8.
    mark_offsets: HashMap<String, i64>,
    /// Funding payments booked, oldest first (`GET /fapi/v1/income`), and the next `tranId`.
    income: Vec<IncomeRecord>,
    next_tran_id: u64,
    /// Capture time of the next `markPriceUpdate` (one a second).
    next_mark_ns: i64,
}

/// How often the sim sends `<symbol>@markPrice@1s`, capture time.
pub const MARK_EVERY_NS: i64 = 1_000_000_000;

fn mul(price: Price, qty: i64) -> i128 {
    i128::from(price.0) * i128::from(qty) / i128::from(SCALE)
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl FuturesAccount {
    pub fn new(wallet: i64) -> FuturesAccount {
        FuturesAccount {
            wallet,
            dual_side: false,
            positions: HashMap::new(),
            leverage: HashMap::new(),
            margin: HashMap::new(),
            flags: HashMap::new(),
            realized: HashMap::new(),
            funding_payments: 0,
            mark_offsets: HashMap::new(),
            income: Vec::new(),
            next_tran_id: 1,
            next_mark_ns: 0,
        }
    }

    /// A `mark` fault: from now on `symbol`'s mark is its mid plus `offset` (10^-8).
    pub fn set_mark_offset(&mut self, symbol: &str, offset: i64) {
        self.mark_offsets.insert(symbol.to_owned(), offset);
    }

    /// `mid` as the venue marks `symbol`.
    pub fn marked(&self, symbol: &str, mid: Price) -> Price {
        Price(mid.0 + self.mark_offsets.get(symbol).copied().unwrap_or(0))
    }

    /// Whether a round of `markPriceUpdate`s is due at capture time `ts` (and schedules the
    /// next one).
    pub fn mark_due(&mut self, ts: i64) -> bool {
        if ts < self.next_mark_ns {
            return false;
        }
        self.next_mark_ns = ts - ts.rem_euclid(MARK_EVERY_NS) + MARK_EVERY_NS;
        true
    }

    pub fn wallet(&self) -> i64 {
        self.wallet
    }

    /// Moves the wallet by `delta` (a `balance` fault on the margin asset).
    pub fn adjust_wallet(&mut self, delta: i64) {
        self.wallet = self.wallet.saturating_add(delta);
    }

    pub fn position(&self, symbol: &str) -> Position {
        self.positions.get(symbol).copied().unwrap_or_default()
    }

    pub fn dual_side(&self) -> bool {
        self.dual_side
    }

    /// Hedge mode on or off (a fault: another client changed it).
    pub fn set_dual_side(&mut self, dual: bool) {
        self.dual_side = dual;
    }

    pub fn leverage(&self, symbol: &str) -> u32 {
        self.leverage
            .get(symbol)
            .copied()
            .unwrap_or(DEFAULT_LEVERAGE)
    }

    pub fn set_leverage(&mut self, symbol: &str, leverage: u32) {
        self.leverage.insert(symbol.to_owned(), leverage);
    }

    pub fn margin_type(&self, symbol: &str) -> MarginType {
        self.margin
            .get(symbol)
            .copied()
            .unwrap_or(MarginType::Cross)
    }

    /// Sets the margin type; `false` when it already was that (Binance's `-4046`).
    pub fn set_margin_type(&mut self, symbol: &str, margin: MarginType) -> bool {
        let was = self.margin_type(symbol);
        self.margin.insert(symbol.to_owned(), margin);
        was != margin
    }

    /// Whether a reduce-only order of `side`, `qty` would only reduce the position.
    pub fn reduces(&self, symbol: &str, side: Side, qty: Qty) -> bool {
        let p = self.position(symbol).qty;
        match side {
            Side::Buy => p < 0 && qty.0 <= -p,
            Side::Sell => p > 0 && qty.0 <= p,
        }
    }

    pub fn remember(&mut self, symbol: &str, client_id: &str, flags: OrderFlags) {
        self.flags
            .insert((symbol.to_owned(), client_id.to_owned()), flags);
    }

    pub fn flags(&self, symbol: &str, client_id: &str) -> OrderFlags {
        self.flags
            .get(&(symbol.to_owned(), client_id.to_owned()))
            .copied()
            .unwrap_or(OrderFlags {
                reduce_only: false,
                gtx: false,
                stp: StpMode::None,
            })
    }

    /// A spot order as `/fapi/v1/order` shows it.
    pub fn order_info(&self, info: &OrderInfo) -> FuturesOrderInfo {
        let f = self.flags(&info.symbol, &info.client_order_id);
        FuturesOrderInfo::from_spot(info, f.gtx, f.reduce_only, f.stp)
    }

    /// A spot trade as `/fapi/v1/userTrades` shows it, with its realised P&L.
    pub fn trade(&self, t: &TradeInfo) -> FuturesTrade {
        FuturesTrade {
            symbol: t.symbol.clone(),
            id: t.id,
            order_id: t.order_id,
            side: if t.is_buyer { Side::Buy } else { Side::Sell },
            price: t.price,
            qty: t.qty,
            quote_qty: t.quote_qty,
            realized_pnl: self
                .realized
                .get(&(t.symbol.clone(), t.id))
                .copied()
                .unwrap_or(0),
            commission: t.commission,
            commission_asset: t.commission_asset.clone(),
            time_ms: t.time_ms,
            is_maker: t.is_maker,
        }
    }

    /// A trade of `qty` at `price` on `side` moves the position; the realised P&L.
    fn trade_into_position(&mut self, symbol: &str, side: Side, price: Price, qty: i64) -> i64 {
        let p = self.positions.entry(symbol.to_owned()).or_default();
        let signed = if side == Side::Buy { qty } else { -qty };
        let mut realized = 0i128;
        if p.qty == 0 || (p.qty > 0) == (signed > 0) {
            // Opening or adding: the entry is the quantity-weighted average.
            let total = i128::from(p.qty.abs()) + i128::from(qty);
            if total > 0 {
                let cost = mul(p.entry, p.qty.abs()) + mul(price, qty);
                p.entry = Price(clamp(cost * i128::from(SCALE) / total));
            }
            p.qty += signed;
        } else {
            // Reducing, closing, or flipping.
            let closed = qty.min(p.qty.abs());
            let direction = if p.qty > 0 { 1i128 } else { -1 };
            realized = direction * (mul(price, closed) - mul(p.entry, closed));
            p.qty += signed;
            if p.qty == 0 {
                p.entry = Price::ZERO;
            } else if (p.qty > 0) == (signed > 0) {
                // Flipped: the rest opens at this price.
                p.entry = price;
            }
        }
        let realized = clamp(realized);
        p.realized = p.realized.saturating_add(realized);
        self.wallet = self.wallet.saturating_add(realized);
        realized
    }

    fn unrealized(&self, symbol: &str, mark: Option<Price>) -> i64 {
        let p = self.position(symbol);
        match mark {
            Some(m) if p.qty != 0 => clamp(mul(m, p.qty) - mul(p.entry, p.qty)),
            _ => 0,
        }
    }

    fn position_change(&self, symbol: &str, mark: Option<Price>) -> PositionChange {
        let p = self.position(symbol);
        let margin = self.margin_type(symbol);
        PositionChange {
            symbol: symbol.to_owned(),
            amount: p.qty,
            entry_price: p.entry,
            accumulated_realized: p.realized,
            unrealized_pnl: self.unrealized(symbol, mark),
            margin_type: margin,
            isolated_wallet: if margin == MarginType::Isolated {
                self.isolated_margin(symbol)
            } else {
                0
            },
            position_side: PositionSide::Both,
        }
    }

    fn isolated_margin(&self, symbol: &str) -> i64 {
        let p = self.position(symbol);
        clamp(mul(p.entry, p.qty.abs()) / i128::from(self.leverage(symbol).max(1)))
    }

    /// The price at which the position would be liquidated (see the module documentation);
    /// zero without a position or when no positive price would.
    pub fn liquidation_price(&self, symbol: &str) -> Price {
        let p = self.position(symbol);
        if p.qty == 0 {
            return Price::ZERO;
        }
        let margin = match self.margin_type(symbol) {
            MarginType::Cross => i128::from(self.wallet),
            MarginType::Isolated => i128::from(self.isolated_margin(symbol)),
        };
        // margin + q (P - E) = mmr |q| P  =>  P = (q E - margin) / (q - mmr |q|)
        let q = i128::from(p.qty);
        let scale = i128::from(SCALE);
        let numerator = q * i128::from(p.entry.0) / scale - margin;
        let denominator = q - i128::from(MAINTENANCE_MARGIN_BPS) * q.abs() / 10_000;
        if denominator == 0 {
            return Price::ZERO;
        }
        let price = numerator * scale / denominator;
        Price(clamp(price.max(0)))
    }

    /// `GET /fapi/v2/positionRisk` rows of `symbols` at their marks.
    pub fn position_risk(&self, symbols: &[(String, Option<Price>)]) -> Vec<PositionRisk> {
        symbols
            .iter()
            .map(|(symbol, mark)| {
                let p = self.position(symbol);
                let margin = self.margin_type(symbol);
                PositionRisk {
                    symbol: symbol.clone(),
                    position_amt: p.qty,
                    entry_price: p.entry,
                    mark_price: mark.unwrap_or(Price::ZERO),
                    unrealized_profit: self.unrealized(symbol, *mark),
                    liquidation_price: self.liquidation_price(symbol),
                    leverage: self.leverage(symbol),
                    margin_type: margin,
                    isolated_margin: if margin == MarginType::Isolated {
                        self.isolated_margin(symbol)
                    } else {
                        0
                    },
                    position_side: PositionSide::Both,
                }
            })
            .collect()
    }

    /// The futures user stream's events for the spot matcher's reports, in order, with the
    /// account moved by every trade. `mark` gives a symbol's mark for unrealised P&L.
    pub fn user_events(
        &mut self,
        reports: &[ExecutionReport],
        mark: impl Fn(&str) -> Option<Price>,
    ) -> Vec<String> {
        let mut out = Vec::with_capacity(reports.len() * 2);
        for r in reports {
            let client_id =
                if r.exec_type == ExecType::Canceled && !r.orig_client_order_id.is_empty() {
                    r.orig_client_order_id.clone()
                } else {
                    r.client_order_id.clone()
                };
            let flags = self.flags(&r.symbol, &client_id);
            let exec_type = match r.exec_type {
                ExecType::New => FuturesExecType::New,
                ExecType::Canceled => FuturesExecType::Canceled,
                ExecType::Trade => FuturesExecType::Trade,
                // USD-M's order modification (the sim's USD-M side serves none).
                ExecType::Replaced => FuturesExecType::Amendment,
                // Futures reports a self-trade prevention as an expiry (status
                // EXPIRED_IN_MATCH); a rejection after acceptance does not happen there.
                ExecType::Expired | ExecType::TradePrevention | ExecType::Rejected => {
                    FuturesExecType::Expired
                }
            };
            let realized = if r.exec_type == ExecType::Trade {
                let rp = self.trade_into_position(&r.symbol, r.side, r.last_price, r.last_qty.0);
                let fee = r.commission;
                self.wallet = self.wallet.saturating_sub(fee);
                self.realized.insert(
                    (r.symbol.clone(), u64::try_from(r.trade_id).unwrap_or(0)),
                    rp,
                );
                rp
            } else {
                0
            };
            let avg = if r.cum_qty.0 > 0 {
                Price(clamp(
                    i128::from(r.cum_quote_qty) * i128::from(SCALE) / i128::from(r.cum_qty.0),
                ))
            } else {
                Price::ZERO
            };
            let tif = if flags.gtx {
                FuturesTif::Gtx
            } else if r.time_in_force == rt_venues::binance_orders::TimeInForce::Ioc {
                FuturesTif::Ioc
            } else {
                FuturesTif::Gtc
            };
            let order_type = match r.order_type {
                rt_venues::binance_orders::OrderType::LimitMaker => {
                    rt_venues::binance_orders::OrderType::Limit
                }
                other => other,
            };
            let update = OrderTradeUpdate {
                event_time_ms: r.event_time_ms,
                transaction_time_ms: r.transaction_time_ms,
                symbol: r.symbol.clone(),
                client_order_id: client_id,
                side: r.side,
                order_type,
                time_in_force: tif,
                orig_qty: r.quantity,
                price: r.price,
                avg_price: avg,
                exec_type,
                status: r.status,
                order_id: r.order_id,
                last_qty: r.last_qty,
                cum_qty: r.cum_qty,
                last_price: r.last_price,
                commission_asset: r.commission_asset.clone(),
                commission: r.commission,
                trade_id: if r.exec_type == ExecType::Trade {
                    r.trade_id
                } else {
                    0
                },
                is_maker: r.is_maker,
                reduce_only: flags.reduce_only,
                position_side: PositionSide::Both,
                realized_profit: realized,
                self_trade_prevention_mode: flags.stp,
            };
            if r.exec_type == ExecType::Trade {
                // Binance sends the account's change first.
                out.push(
                    AccountUpdate {
                        event_time_ms: r.event_time_ms,
                        transaction_time_ms: r.transaction_time_ms,
                        reason: "ORDER".into(),
                        balances: vec![BalanceChange {
                            asset: MARGIN_ASSET.into(),
                            wallet_balance: self.wallet,
                            cross_wallet_balance: self.wallet,
                            balance_change: 0,
                        }],
                        positions: vec![self.position_change(&r.symbol, mark(&r.symbol))],
                    }
                    .to_json(),
                );
            }
            out.push(update.to_json());
        }
        out
    }

    /// The income records of `income_type` (all when `None`) and `symbol` (all when `None`)
    /// with `start_ms <= time <= end_ms`, oldest first, at most `limit` (Binance: the newest
    /// 7 days when no time is given, which the sim, younger than that, serves whole).
    pub fn income(
        &self,
        income_type: Option<&str>,
        symbol: Option<&str>,
        start_ms: u64,
        end_ms: u64,
        limit: usize,
    ) -> Vec<IncomeRecord> {
        self.income
            .iter()
            .filter(|r| income_type.map_or(true, |t| r.income_type == t))
            .filter(|r| symbol.map_or(true, |s| r.symbol == s))
            .filter(|r| r.time_ms >= start_ms && r.time_ms <= end_ms)
            .take(limit)
            .cloned()
            .collect()
    }

    /// A trade of the account made elsewhere (another client of the account, an operator by
    /// hand) moves `symbol`'s position: the `position` fault.
    pub fn trade_elsewhere(&mut self, symbol: &str, side: Side, price: Price, qty: i64) {
        // Its realised P&L moves the wallet there.
        let _realized = self.trade_into_position(symbol, side, price, qty);
    }

    /// A funding payment at `rate` (10^-8; positive: longs pay shorts) on every position at
    /// its mark: the wallet moves by `-qty * mark * rate` per position, and the
    /// `ACCOUNT_UPDATE`s (reason `FUNDING_FEE`) that say so, as Binance pushes them: one per
    /// isolated position, with its own payment and that position; one for the cross-margin
    /// positions together, with their payments summed and no position. Empty when no position
    /// pays or receives. Each symbol's payment is also an income record of its own.
    pub fn fund(
        &mut self,
        rate: i64,
        time_ms: u64,
        mark: impl Fn(&str) -> Option<Price>,
    ) -> Vec<String> {
        let mut symbols: Vec<String> = self
            .positions
            .iter()
            .filter(|(_, p)| p.qty != 0)
            .map(|(s, _)| s.clone())
            .collect();
        symbols.sort();
        let mut cross = 0i128;
        let mut updates = Vec::new();
        for s in &symbols {
            let p = self.position(s);
            let m = mark(s).unwrap_or(p.entry);
            let payment = -(mul(m, p.qty) * i128::from(rate) / i128::from(SCALE));
            self.income.push(IncomeRecord {
                symbol: s.clone(),
                income_type: FUNDING_FEE_INCOME.into(),
                income: clamp(payment),
                asset: MARGIN_ASSET.into(),
                info: FUNDING_FEE_INCOME.into(),
                time_ms,
                tran_id: self.next_tran_id,
                trade_id: String::new(),
            });
            self.next_tran_id += 1;
            self.funding_payments += 1;
            if self.margin_type(s) == MarginType::Isolated {
                self.wallet = self.wallet.saturating_add(clamp(payment));
                let positions = vec![self.position_change(s, mark(s))];
                updates.push(self.funding_update(time_ms, clamp(payment), positions));
            } else {
                cross += payment;
            }
        }
        if symbols
            .iter()
            .any(|s| self.margin_type(s) != MarginType::Isolated)
        {
            self.wallet = self.wallet.saturating_add(clamp(cross));
            updates.push(self.funding_update(time_ms, clamp(cross), Vec::new()));
        }
        updates
    }

    fn funding_update(&self, time_ms: u64, change: i64, positions: Vec<PositionChange>) -> String {
        AccountUpdate {
            event_time_ms: time_ms,
            transaction_time_ms: time_ms,
            reason: FUNDING_FEE.into(),
            balances: vec![BalanceChange {
                asset: MARGIN_ASSET.into(),
                wallet_balance: self.wallet,
                cross_wallet_balance: self.wallet,
                balance_change: change,
            }],
            positions,
        }
        .to_json()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const P: i64 = SCALE;

    #[test]
    fn positions_average_realise_and_flip() {
        let mut a = FuturesAccount::new(1_000 * P);
        assert_eq!(
            a.trade_into_position("X", Side::Buy, Price(100 * P), 2 * P),
            0
        );
        assert_eq!(
            a.trade_into_position("X", Side::Buy, Price(110 * P), 2 * P),
            0
        );
        assert_eq!(a.position("X").entry, Price(105 * P));
        // Sell 3 at 120: +15 each.
        assert_eq!(
            a.trade_into_position("X", Side::Sell, Price(120 * P), 3 * P),
            45 * P
        );
        // Sell 3 more at 100: closes 1 (-5), opens 2 short at 100.
        assert_eq!(
            a.trade_into_position("X", Side::Sell, Price(100 * P), 3 * P),
            -5 * P
        );
        let p = a.position("X");
        assert_eq!(
            (p.qty, p.entry, p.realized),
            (-2 * P, Price(100 * P), 40 * P)
        );
        assert_eq!(a.wallet(), 1_040 * P);
        assert!(a.reduces("X", Side::Buy, Qty(2 * P)));
        assert!(!a.reduces("X", Side::Buy, Qty(3 * P)));
        assert!(!a.reduces("X", Side::Sell, Qty(P)));
    }

    #[test]
    fn funding_moves_the_wallet_and_says_so() {
        let mut a = FuturesAccount::new(1_000 * P);
        a.trade_into_position("BTCUSDT", Side::Buy, Price(60_000 * P), P / 10);
        // Long 0.1 at a mark of 61000, rate 0.01%: pays 0.61.
        let texts = a.fund(10_000, 7, |_| Some(Price(61_000 * P)));
        assert_eq!(a.wallet(), 1_000 * P - 61_000_000);
        let [text] = texts.as_slice() else {
            panic!("one cross update: {texts:?}")
        };
        let u = AccountUpdate::parse(text).unwrap().unwrap();
        assert_eq!(u.reason, FUNDING_FEE);
        assert_eq!(u.balances[0].balance_change, -61_000_000);
        assert!(u.positions.is_empty(), "a cross update names no position");
        assert!(FuturesAccount::new(P).fund(1, 1, |_| None).is_empty());
    }

    #[test]
    fn each_isolated_position_has_a_funding_update_of_its_own() {
        let mut a = FuturesAccount::new(1_000 * P);
        a.trade_into_position("BTCUSDT", Side::Buy, Price(60_000 * P), P / 10);
        a.trade_into_position("ETHUSDT", Side::Sell, Price(2_500 * P), P);
        a.trade_into_position("XRPUSDT", Side::Buy, Price(P / 2), 100 * P);
        a.set_margin_type("BTCUSDT", MarginType::Isolated);
        let texts = a.fund(10_000, 7, |s| {
            Some(Price(match s {
                "BTCUSDT" => 61_000 * P,
                "ETHUSDT" => 2_500 * P,
                _ => P / 2,
            }))
        });
        let updates: Vec<AccountUpdate> = texts
            .iter()
            .map(|t| AccountUpdate::parse(t).unwrap().unwrap())
            .collect();
        assert_eq!(updates.len(), 2, "{texts:?}");
        // BTCUSDT isolated: its own payment (long pays 0.61), naming it.
        assert_eq!(updates[0].balances[0].balance_change, -61_000_000);
        assert_eq!(updates[0].positions.len(), 1);
        assert_eq!(updates[0].positions[0].symbol, "BTCUSDT");
        // Cross: ETHUSDT short receives 0.25, XRPUSDT long pays 0.005; no position named.
        assert_eq!(updates[1].balances[0].balance_change, 25_000_000 - 500_000);
        assert!(updates[1].positions.is_empty());
        assert_eq!(a.wallet(), 1_000 * P - 61_000_000 + 25_000_000 - 500_000);
    }

    #[test]
    fn liquidation_prices_follow_the_margin() {
        let mut a = FuturesAccount::new(1_000 * P);
        a.trade_into_position("BTCUSDT", Side::Buy, Price(60_000 * P), P / 10);
        // Cross: 1000 + 0.1 (P - 60000) = 0.004 * 0.1 * P  =>  P = 5000 / 0.0996.
        let cross = a.liquidation_price("BTCUSDT").0;
        assert!((cross - 50_200_803 * P / 1000).abs() < P, "{cross}");
        // Isolated at 10x: margin 600  =>  P = 5400 / 0.0996.
        a.set_margin_type("BTCUSDT", MarginType::Isolated);
        a.set_leverage("BTCUSDT", 10);
        let isolated = a.liquidation_price("BTCUSDT").0;
        assert!((isolated - 54_216_867 * P / 1000).abs() < P, "{isolated}");
        // Short: liquidated above the entry.
        let mut s = FuturesAccount::new(1_000 * P);
        s.trade_into_position("BTCUSDT", Side::Sell, Price(60_000 * P), P / 10);
        assert!(s.liquidation_price("BTCUSDT").0 > 60_000 * P);
    }
}
