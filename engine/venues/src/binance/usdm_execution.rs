//! Binance USD-M futures behind the execution boundary ([`ExecutionClient`]): signed `/fapi`
//! requests (orders with `positionSide` and `reduceOnly`, post-only as `timeInForce=GTX`),
//! the futures user stream (`/fapi/v1/listenKey`; `ORDER_TRADE_UPDATE` to order updates,
//! `ACCOUNT_UPDATE` to account changes with their reason, funding payments among them), and
//! the account's derivative settings ([`DerivativesAccount`]: the position mode, leverage,
//! margin type, positions with their liquidation prices).
//!
//! The codes it classifies are spot's (`-1006`/`-1007` unknown outcome, `-1022`/`-2014`/`-2015`
//! credentials, `-2011`/`-2013` unknown order, 429/418), and `-5022` for a post-only (GTX)
//! order that would take.

use rt_core::Qty;

use super::execution::{
    cancel_all_request, classify_answer, keyed, order_ref_request, signed, timed_get,
    trades_request, unreadable, venue_status,
};
use super::query::{Timing, DEFAULT_RECV_WINDOW_MS};
use super::rest::parse_listen_key;
use super::signing::Signer;
use super::usdm::{
    self, AccountUpdate, FuturesExecType, FuturesOrder, FuturesOrderInfo, MarginType,
    OrderTradeUpdate, Setting, SymbolSetting,
};
use super::usdm_income;
use super::user_stream::is_listen_key_expired;
use super::vocab::{OrderStatus, StpMode};
use crate::execution::{
    AccountChange, AccountReason, Balance, DerivativesAccount, ExecError, ExecutionClient,
    FundingPayment, Method, NewOrderSpec, Operation, OrderState, OrderUpdate, Outcome,
    PositionRiskState, PrivateEvent, Refusal, SymbolFilters, UpdateKind, VenueFill, VenuePosition,
    VenueRequest, VenueTrade,
};

const VENUE: &str = "binance usdm";

/// Binance USD-M futures order entry for one account.
#[derive(Debug, Clone)]
pub struct USdmExecution {
    /// The account's key, keyed once (`None`: unsigned requests).
    credentials: Option<Signer>,
    stp: Option<StpMode>,
    /// Symbols whose `<symbol>@markPrice@1s` streams come on the private stream's connection.
    marks: Vec<String>,
}

impl USdmExecution {
    pub fn new(credentials: Option<Signer>, stp: Option<StpMode>) -> USdmExecution {
        USdmExecution {
            credentials,
            stp,
            marks: Vec::new(),
        }
    }

    /// The private stream's connection also carries these symbols' mark prices (a combined
    /// stream of the listen key and `<symbol>@markPrice@1s`, as Binance allows).
    pub fn with_marks<'a>(mut self, symbols: impl IntoIterator<Item = &'a String>) -> Self {
        self.marks = symbols.into_iter().cloned().collect();
        self
    }

    fn signed(&self, method: Method, path: &str, query: &str) -> VenueRequest {
        signed(self.credentials.as_ref(), method, path, query)
    }

    fn setting(&self, symbol: &str, setting: Setting, now_ms: u64) -> VenueRequest {
        let path = match setting {
            Setting::Leverage(_) => usdm::LEVERAGE_PATH,
            Setting::MarginType(_) => usdm::MARGIN_TYPE_PATH,
        };
        let q = SymbolSetting {
            symbol: symbol.to_owned(),
            setting,
            timing: Timing::new(now_ms),
        }
        .to_query();
        self.signed(Method::Post, path, &q)
    }
}

impl ExecutionClient for USdmExecution {
    fn venue(&self) -> &'static str {
        VENUE
    }

    fn new_order(&self, order: &NewOrderSpec<'_>, now_ms: u64) -> Result<VenueRequest, ExecError> {
        let mut new = FuturesOrder::from_kind(
            order.symbol,
            order.side,
            order.kind,
            order.price,
            order.qty,
            Some(order.client_id.to_owned()),
            Timing::new(now_ms),
        );
        new.position_side = order.position_side;
        new.reduce_only = order.reduce_only;
        new.self_trade_prevention_mode = self.stp;
        if new.reduce_only && new.position_side != crate::execution::PositionSide::Both {
            return Err(ExecError::Unsupported {
                venue: VENUE,
                what: "reduce-only orders in hedge mode",
            });
        }
        Ok(self.signed(Method::Post, usdm::ORDER_PATH, &new.to_query()))
    }

    fn cancel(&self, symbol: &str, client_id: &str, now_ms: u64) -> VenueRequest {
        let c = self.credentials.as_ref();
        order_ref_request(
            c,
            Method::Delete,
            usdm::ORDER_PATH,
            symbol,
            client_id,
            now_ms,
        )
    }

    fn cancel_all(&self, symbol: &str, now_ms: u64) -> VenueRequest {
        let c = self.credentials.as_ref();
        cancel_all_request(c, usdm::ALL_OPEN_ORDERS_PATH, symbol, now_ms)
    }

    fn query_order(&self, symbol: &str, client_id: &str, now_ms: u64) -> VenueRequest {
        let c = self.credentials.as_ref();
        order_ref_request(c, Method::Get, usdm::ORDER_PATH, symbol, client_id, now_ms)
    }

    fn order_trades(
        &self,
        symbol: &str,
        venue_order_id: u64,
        from_id: u64,
        now_ms: u64,
    ) -> VenueRequest {
        let page = (symbol, venue_order_id, from_id);
        let c = self.credentials.as_ref();
        let limit = usdm::MAX_USER_TRADES_LIMIT;
        trades_request(c, usdm::USER_TRADES_PATH, limit, page, now_ms)
    }

    fn trades_page(&self) -> usize {
        usdm::MAX_USER_TRADES_LIMIT as usize
    }

    fn balances(&self, now_ms: u64) -> VenueRequest {
        timed_get(self.credentials.as_ref(), usdm::BALANCE_PATH, now_ms)
    }

    fn exchange_info(&self) -> VenueRequest {
        keyed(None, Method::Get, usdm::EXCHANGE_INFO_PATH.to_owned())
    }

    fn open_stream(&self) -> Option<VenueRequest> {
        Some(keyed(
            self.credentials.as_ref(),
            Method::Post,
            usdm::LISTEN_KEY_PATH.to_owned(),
        ))
    }

    /// A futures listen key is kept alive without naming it (one key per account).
    fn keep_stream_alive(&self, _key: &str) -> Option<VenueRequest> {
        Some(keyed(
            self.credentials.as_ref(),
            Method::Put,
            usdm::LISTEN_KEY_PATH.to_owned(),
        ))
    }

    /// The key lives 60 minutes after its last keepalive: every 30.
    fn keep_stream_alive_every_ms(&self) -> u64 {
        30 * 60 * 1000
    }

    fn request_window_ms(&self) -> u64 {
        DEFAULT_RECV_WINDOW_MS
    }

    fn stream_key(&self, body: &str) -> Result<String, ExecError> {
        parse_listen_key(body).map_err(|e| unreadable("listen key", e))
    }

    fn stream_url(&self, ws_base: &str, key: &str) -> String {
        let base = ws_base.trim_end_matches('/');
        if self.marks.is_empty() {
            return format!("{base}/ws/{key}");
        }
        let marks: Vec<String> = self
            .marks
            .iter()
            .map(|s| format!("/{}@markPrice@1s", s.to_ascii_lowercase()))
            .collect();
        format!("{base}/stream?streams={key}{}", marks.concat())
    }

    fn classify(
        &self,
        op: Operation,
        status: u16,
        body: &str,
        retry_after_s: Option<u64>,
    ) -> Outcome {
        classify_answer(op, status, body, retry_after_s, usdm::POST_ONLY_REJECTED)
    }

    /// `{"code":200,"msg":"The operation of cancel all open order is done."}` does not say
    /// how many: 0 (the private stream reports each cancel).
    fn cancelled_count(&self, _body: &str) -> usize {
        0
    }

    fn order_state(&self, body: &str) -> Result<OrderState, ExecError> {
        let info = FuturesOrderInfo::parse(body).map_err(|e| unreadable("order", e))?;
        Ok(OrderState {
            venue_order_id: info.order_id,
            price: info.price,
            orig_qty: info.orig_qty,
            executed_qty: info.executed_qty,
            status: venue_status(info.status),
        })
    }

    fn balance_list(&self, body: &str) -> Result<Vec<Balance>, ExecError> {
        let balances = usdm::parse_balances(body).map_err(|e| unreadable("balance", e))?;
        Ok(balances
            .into_iter()
            .map(|b| Balance {
                asset: b.asset,
                free: b.available_balance,
                locked: b.balance - b.available_balance,
            })
            .collect())
    }

    fn symbol_filters(&self, body: &str) -> Result<Vec<SymbolFilters>, ExecError> {
        usdm::parse_exchange_info(body).map_err(|e| unreadable("exchangeInfo", e))
    }

    fn trades(&self, body: &str) -> Result<Vec<VenueTrade>, ExecError> {
        let trades = usdm::parse_user_trades(body).map_err(|e| unreadable("userTrades", e))?;
        Ok(trades
            .into_iter()
            .map(|t| VenueTrade {
                id: t.id,
                venue_order_id: t.order_id,
                price: t.price,
                qty: t.qty,
                commission: t.commission,
                commission_asset: t.commission_asset,
                is_maker: t.is_maker,
            })
            .collect())
    }

    fn private_event(&self, frame: &str) -> Result<PrivateEvent, ExecError> {
        match OrderTradeUpdate::parse(frame) {
            Ok(Some(u)) => return Ok(PrivateEvent::Order(order_update(u))),
            Ok(None) => {}
            Err(e) => return Err(unreadable("ORDER_TRADE_UPDATE", e)),
        }
        match AccountUpdate::parse(frame) {
            Ok(Some(a)) => return Ok(PrivateEvent::Account(account_change(a))),
            Ok(None) => {}
            Err(e) => return Err(unreadable("ACCOUNT_UPDATE", e)),
        }
        match usdm::MarkPriceUpdate::parse(frame) {
            Ok(Some(m)) => {
                return Ok(PrivateEvent::Mark {
                    symbol: m.symbol,
                    price: m.mark_price,
                })
            }
            Ok(None) => {}
            Err(e) => return Err(unreadable("markPriceUpdate", e)),
        }
        if is_listen_key_expired(frame) {
            return Ok(PrivateEvent::StreamExpired);
        }
        Ok(PrivateEvent::Other)
    }

    fn derivatives(&self) -> Option<&dyn DerivativesAccount> {
        Some(self)
    }
}

impl DerivativesAccount for USdmExecution {
    fn position_mode(&self, now_ms: u64) -> VenueRequest {
        timed_get(self.credentials.as_ref(), usdm::POSITION_MODE_PATH, now_ms)
    }

    fn is_hedge_mode(&self, body: &str) -> Result<bool, ExecError> {
        usdm::parse_position_mode(body).map_err(|e| unreadable("positionSide/dual", e))
    }

    fn set_leverage(&self, symbol: &str, leverage: u32, now_ms: u64) -> VenueRequest {
        self.setting(symbol, Setting::Leverage(leverage), now_ms)
    }

    fn leverage_set(&self, body: &str) -> Result<u32, ExecError> {
        usdm::parse_leverage(body).map_err(|e| unreadable("leverage", e))
    }

    fn set_margin_type(&self, symbol: &str, isolated: bool, now_ms: u64) -> Option<VenueRequest> {
        let m = if isolated {
            MarginType::Isolated
        } else {
            MarginType::Cross
        };
        Some(self.setting(symbol, Setting::MarginType(m), now_ms))
    }

    fn margin_type_unchanged(&self, refusal: &Refusal) -> bool {
        refusal.code == Some(i64::from(usdm::NO_NEED_TO_CHANGE_MARGIN_TYPE))
    }

    fn positions(&self, now_ms: u64) -> VenueRequest {
        timed_get(self.credentials.as_ref(), usdm::POSITION_RISK_PATH, now_ms)
    }

    fn position_risks(&self, body: &str) -> Result<Vec<PositionRiskState>, ExecError> {
        let risks = usdm::parse_position_risk(body).map_err(|e| unreadable("positionRisk", e))?;
        Ok(risks
            .into_iter()
            .map(|r| PositionRiskState {
                symbol: r.symbol,
                qty: r.position_amt,
                entry_price: r.entry_price,
                mark_price: r.mark_price,
                liquidation_price: r.liquidation_price,
                leverage: r.leverage,
                isolated: r.margin_type == MarginType::Isolated,
            })
            .collect())
    }

    fn funding_history(&self, start_ms: u64, now_ms: u64) -> VenueRequest {
        let q = format!(
            "{}&timestamp={now_ms}",
            usdm_income::funding_query(start_ms)
        );
        signed(
            self.credentials.as_ref(),
            Method::Get,
            usdm_income::INCOME_PATH,
            &q,
        )
    }

    fn funding_payments(&self, body: &str) -> Result<Vec<FundingPayment>, ExecError> {
        let mut records = usdm_income::parse_income(body).map_err(|e| unreadable("income", e))?;
        records.sort_by_key(|r| (r.time_ms, r.tran_id));
        Ok(records
            .into_iter()
            .filter(|r| r.income_type == usdm_income::FUNDING_FEE)
            .map(|r| FundingPayment {
                symbol: r.symbol,
                asset: r.asset,
                amount: r.income,
                time_ms: r.time_ms,
                id: r.tran_id,
            })
            .collect())
    }
}

/// An `ORDER_TRADE_UPDATE` as a venue-neutral update. Futures cancels have no id of their
/// own: `c` is the cancelled order's.
fn order_update(u: OrderTradeUpdate) -> OrderUpdate {
    let leaves = Qty(u.orig_qty.0.saturating_sub(u.cum_qty.0).max(0));
    let kind = match u.exec_type {
        FuturesExecType::New => UpdateKind::Accepted,
        // A trade, or a liquidation's (CALCULATED): both move the position.
        FuturesExecType::Trade | FuturesExecType::Calculated => UpdateKind::Fill(VenueFill {
            trade_id: u.trade_id,
            price: u.last_price,
            qty: u.last_qty,
            is_maker: u.is_maker,
            commission: u.commission,
            commission_asset: u.commission_asset.unwrap_or_default(),
        }),
        FuturesExecType::Canceled => UpdateKind::Cancelled,
        FuturesExecType::Expired if u.status == OrderStatus::ExpiredInMatch => {
            UpdateKind::ExpiredBySelfTradePrevention
        }
        FuturesExecType::Expired => UpdateKind::Expired,
        // An amended price or quantity: the order stays as it was accepted for us (the
        // engine never amends).
        FuturesExecType::Amendment => UpdateKind::Accepted,
    };
    OrderUpdate {
        symbol: u.symbol,
        client_id: u.client_order_id,
        side: u.side,
        kind,
        leaves,
    }
}

fn account_change(a: AccountUpdate) -> AccountChange {
    let reason = match a.reason.as_str() {
        "ORDER" => AccountReason::Order,
        usdm::FUNDING_FEE => AccountReason::Funding,
        other => AccountReason::Other(other.to_owned()),
    };
    AccountChange {
        reason,
        balance_changes: a
            .balances
            .iter()
            .map(|b| (b.asset.clone(), b.balance_change))
            .collect(),
        positions: a
            .positions
            .into_iter()
            .map(|p| VenuePosition {
                symbol: p.symbol,
                qty: p.amount,
                entry_price: p.entry_price,
            })
            .collect(),
        time_ms: a.transaction_time_ms,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rt_core::{OrderKind, Price, Side};

    use super::*;
    use crate::binance::errors::ApiError;
    use crate::binance::signing::{signed_query, API_KEY_HEADER};
    use crate::binance::test_support::{doc_signer, DOC_API_KEY, DOC_SECRET};
    use crate::binance::usdm::{BalanceChange, FuturesTif};
    use crate::execution::{PositionSide, RefusalKind};

    fn client() -> USdmExecution {
        USdmExecution::new(Some(doc_signer()), Some(StpMode::ExpireMaker))
    }

    #[test]
    fn orders_go_to_fapi_signed_with_reduce_only() {
        let spec = NewOrderSpec {
            symbol: "BTCUSDT",
            client_id: "paper_1-7",
            side: Side::Sell,
            kind: OrderKind::PostOnly,
            price: Price(6_180_000_000_000),
            qty: Qty(200_000),
            reduce_only: true,
            position_side: PositionSide::Both,
        };
        let r = client().new_order(&spec, 1_700_000_000_000).unwrap();
        let q = "symbol=BTCUSDT&side=SELL&positionSide=BOTH&type=LIMIT&timeInForce=GTX&\
                 quantity=0.002&reduceOnly=true&price=61800&newClientOrderId=paper_1-7&\
                 selfTradePreventionMode=EXPIRE_MAKER&timestamp=1700000000000";
        assert_eq!(
            r.path,
            format!("/fapi/v1/order?{}", signed_query(q, DOC_SECRET.as_bytes()))
        );
        assert_eq!(r.header_refs(), vec![(API_KEY_HEADER, DOC_API_KEY)]);
        let hedge = NewOrderSpec {
            position_side: PositionSide::Long,
            ..spec
        };
        assert!(client().new_order(&hedge, 1).is_err());
        let c = client();
        assert!(c
            .cancel_all("BTCUSDT", 1)
            .path
            .starts_with("/fapi/v1/allOpenOrders?"));
        assert!(c.order_trades("BTCUSDT", 5, 0, 1).path.starts_with(
            "/fapi/v1/userTrades?symbol=BTCUSDT&orderId=5&fromId=0&limit=1000&timestamp=1"
        ));
        assert_eq!(
            c.open_stream().expect("a listen key").path,
            "/fapi/v1/listenKey"
        );
        assert_eq!(c.keep_stream_alive("k").unwrap().method, Method::Put);
        let d = c.derivatives().unwrap();
        assert!(d
            .set_leverage("BTCUSDT", 3, 1)
            .path
            .starts_with("/fapi/v1/leverage?symbol=BTCUSDT&leverage=3&timestamp=1"));
        assert!(d
            .set_margin_type("BTCUSDT", true, 1)
            .unwrap()
            .path
            .starts_with("/fapi/v1/marginType?symbol=BTCUSDT&marginType=ISOLATED"));
        let unchanged = Refusal {
            kind: RefusalKind::Other,
            code: Some(-4046),
            message: "No need to change margin type.".into(),
        };
        assert!(d.margin_type_unchanged(&unchanged));
        assert!(d.is_hedge_mode("{\"dualSidePosition\":true}").unwrap());
    }

    #[test]
    fn gtx_refusals_are_post_only_crossings() {
        let post_only = Operation::NewOrder {
            kind: OrderKind::PostOnly,
        };
        let body = ApiError::new(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.").to_json();
        let Outcome::Rejected(r) = client().classify(post_only, 400, &body, None) else {
            panic!("a refusal");
        };
        assert_eq!(r.kind, RefusalKind::PostOnlyWouldCross);
    }

    #[test]
    fn stream_events_become_order_updates_and_funding() {
        let update = OrderTradeUpdate {
            event_time_ms: 2,
            transaction_time_ms: 1,
            symbol: "BTCUSDT".into(),
            client_order_id: "paper_1-9".into(),
            side: Side::Buy,
            order_type: crate::binance::vocab::OrderType::Limit,
            time_in_force: FuturesTif::Gtc,
            orig_qty: Qty(300_000),
            price: Price(100),
            avg_price: Price(100),
            exec_type: FuturesExecType::Trade,
            status: OrderStatus::PartiallyFilled,
            order_id: 7,
            last_qty: Qty(100_000),
            cum_qty: Qty(100_000),
            last_price: Price(100),
            commission_asset: Some("USDT".into()),
            commission: 5,
            trade_id: 42,
            is_maker: true,
            reduce_only: false,
            position_side: PositionSide::Both,
            realized_profit: 0,
            self_trade_prevention_mode: StpMode::None,
        };
        let PrivateEvent::Order(u) = client().private_event(&update.to_json()).unwrap() else {
            panic!("an order update");
        };
        assert_eq!(
            (u.client_id.as_str(), u.leaves),
            ("paper_1-9", Qty(200_000))
        );
        let UpdateKind::Fill(f) = u.kind else {
            panic!("a fill");
        };
        assert_eq!(
            (f.trade_id, f.commission, f.commission_asset.as_str()),
            (42, 5, "USDT")
        );
        let funding = AccountUpdate {
            event_time_ms: 5,
            transaction_time_ms: 4,
            reason: usdm::FUNDING_FEE.into(),
            balances: vec![BalanceChange {
                asset: "USDT".into(),
                wallet_balance: 1,
                cross_wallet_balance: 1,
                balance_change: -618_000,
            }],
            positions: vec![],
        };
        let PrivateEvent::Account(a) = client().private_event(&funding.to_json()).unwrap() else {
            panic!("an account change");
        };
        assert_eq!(a.reason, AccountReason::Funding);
        assert_eq!(a.balance_changes, vec![("USDT".to_owned(), -618_000)]);
        assert_eq!(
            client().private_event(r#"{"e":"listenKeyExpired","E":1,"listenKey":"k"}"#),
            Ok(PrivateEvent::StreamExpired)
        );
        let mark = r#"{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"61800.10","i":"61799.00","P":"61800.00","r":"0.00010000","T":2}}"#;
        assert_eq!(
            client().private_event(mark),
            Ok(PrivateEvent::Mark {
                symbol: "BTCUSDT".into(),
                price: Price(6_180_010_000_000)
            })
        );
        let symbols = ["BTCUSDT".to_owned(), "ETHUSDT".to_owned()];
        assert_eq!(
            client().with_marks(&symbols).stream_url("ws://h:1/", "k"),
            "ws://h:1/stream?streams=k/btcusdt@markPrice@1s/ethusdt@markPrice@1s"
        );
        assert_eq!(client().stream_url("ws://h:1", "k"), "ws://h:1/ws/k");
        assert!(client()
            .private_event(r#"{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"X"}}"#)
            .is_err());
    }
}
