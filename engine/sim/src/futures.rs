//! The sim's USD-M futures endpoints (a child of the server: it uses its request plumbing).
//!
//! On a `market: usdm` sim exchange the REST port also serves `/fapi`: `POST`/`DELETE`/`GET
//! /fapi/v1/order` (orders with `positionSide=BOTH`, `reduceOnly`, `timeInForce` GTC/IOC/GTX,
//! matched by the spot matcher after the latency like every order; a reduce-only order that
//! would not reduce the position is refused `-2022`, a GTX order that would take `-5022`),
//! `DELETE /fapi/v1/allOpenOrders`, `GET /fapi/v1/openOrders`, `GET /fapi/v1/userTrades`
//! (with `realizedPnl`), `POST`/`PUT`/`DELETE /fapi/v1/listenKey` (the user stream then sends
//! `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE`, see `futures_account`), `GET /fapi/v2/balance`,
//! `GET /fapi/v2/positionRisk`, `GET`/`POST /fapi/v1/positionSide/dual`, `POST
//! /fapi/v1/leverage`, `POST /fapi/v1/marginType` (`-4046` when unchanged), `GET
//! /fapi/v1/depth`, `GET /fapi/v1/exchangeInfo`, `GET /fapi/v1/ping` and `/fapi/v1/time`.

use rt_core::Nanos;
use rt_venues::binance::usdm::{
    self, format_balances, format_position_mode, format_user_trades, FuturesBalance, FuturesOrder,
    FuturesTif, Setting, SymbolSetting,
};
use rt_venues::binance::usdm_income;
use rt_venues::binance_orders::{
    self as bo, ApiError, CancelOpenOrders, CancelOrder, CancelResponse, ExecutionReport,
    MyTradesQuery, NewOrderResponse, OpenOrdersQuery, Params, QueryOrder, StpMode,
};

use super::{authorize, check_api_key, depth, engine_call, open_listen_key, wall_ms, Cmd, Shared};
use crate::futures_account::{OrderFlags, MARGIN_ASSET};
use crate::venue::Venue;

/// A futures request for the engine task (after the order latency).
#[derive(Debug)]
pub(super) enum FuturesCmd {
    Order(FuturesOrder),
    Cancel(CancelOrder),
    CancelAll(CancelOpenOrders),
}

fn no_futures() -> ApiError {
    ApiError::new(
        -1000,
        "this simulator venue is spot: it has no /fapi endpoints",
    )
}

/// Runs a futures request at capture time `ts`.
pub(super) fn execute(
    venue: &mut Venue,
    ts: Nanos,
    cmd: FuturesCmd,
    reports: &mut Vec<ExecutionReport>,
) -> Result<String, ApiError> {
    if venue.futures().is_none() {
        return Err(no_futures());
    }
    match cmd {
        FuturesCmd::Order(order) => new_order(venue, ts, &order, reports),
        FuturesCmd::Cancel(cancel) => {
            let body = venue.cancel(ts, &cancel, reports)?;
            let info = CancelResponse::parse(&body)
                .map_err(|e| ApiError::new(-1000, e.to_string()))?
                .info;
            Ok(order_json(venue, &info))
        }
        FuturesCmd::CancelAll(cancel) => match venue.cancel_all(ts, &cancel, reports) {
            // Futures answers the same whether there was anything to cancel or not.
            Ok(_) | Err(ApiError { code: -2011, .. }) => Ok(
                "{\"code\":200,\"msg\":\"The operation of cancel all open order is done.\"}".into(),
            ),
            Err(e) => Err(e),
        },
    }
}

fn order_json(venue: &Venue, info: &bo::OrderInfo) -> String {
    venue
        .futures()
        .map(|f| f.order_info(info).to_json())
        .unwrap_or_default()
}

fn new_order(
    venue: &mut Venue,
    ts: Nanos,
    order: &FuturesOrder,
    reports: &mut Vec<ExecutionReport>,
) -> Result<String, ApiError> {
    let Some(account) = venue.futures_mut() else {
        return Err(no_futures());
    };
    if account.dual_side() && order.position_side == rt_venues::execution::PositionSide::Both {
        return Err(ApiError::new(
            -4061,
            "Order's position side does not match user's setting.",
        ));
    }
    if !account.dual_side() && order.position_side != rt_venues::execution::PositionSide::Both {
        return Err(ApiError::new(
            -4061,
            "Order's position side does not match user's setting.",
        ));
    }
    if order.reduce_only && !account.reduces(&order.symbol, order.side, order.quantity) {
        return Err(ApiError::new(
            usdm::REDUCE_ONLY_REJECTED,
            "ReduceOnly Order is rejected.",
        ));
    }
    let client_id = order.new_client_order_id.clone();
    let flags = OrderFlags {
        reduce_only: order.reduce_only,
        gtx: order.time_in_force == Some(FuturesTif::Gtx),
        stp: order.self_trade_prevention_mode.unwrap_or(StpMode::None),
    };
    if let Some(id) = &client_id {
        account.remember(&order.symbol, id, flags);
    }
    let body = match venue.new_order(ts, &order.to_spot(), reports) {
        Ok(b) => b,
        Err(e) if flags.gtx && e.code == -2010 && e.msg.contains("immediately match") => {
            return Err(ApiError::new(
                usdm::POST_ONLY_REJECTED,
                "Due to the order could not be executed as maker, the Post Only order will be \
                 rejected. The order will not be recorded in the order history",
            ))
        }
        Err(e) => return Err(e),
    };
    let response =
        NewOrderResponse::parse(&body).map_err(|e| ApiError::new(-1000, e.to_string()))?;
    if client_id.is_none() {
        if let Some(account) = venue.futures_mut() {
            account.remember(&order.symbol, &response.client_order_id, flags);
        }
    }
    match &response.info {
        Some(info) => Ok(order_json(venue, info)),
        None => Err(ApiError::new(-1000, "the matcher answered no order")),
    }
}

/// Answers a `/fapi` request; `not_found` when there is no such endpoint.
pub(super) async fn route(
    shared: &Shared,
    method: &hyper::Method,
    path: &str,
    query: &str,
    body: &str,
    api_key: Option<&str>,
    not_found: &mut bool,
) -> Result<String, ApiError> {
    use hyper::Method as M;
    if shared.venue().futures().is_none() {
        *not_found = true;
        return Err(no_futures());
    }
    let signed = || -> Result<String, ApiError> {
        let params = authorize(shared, api_key, query, body)?;
        Ok(params)
    };
    let timed = |t: &bo::Timing| t.check(wall_ms()).map_err(|e| e.to_api_error());
    match (method, path) {
        (&M::GET, "/fapi/v1/ping") => Ok("{}".into()),
        (&M::GET, "/fapi/v1/time") => Ok(format!("{{\"serverTime\":{}}}", wall_ms())),
        (&M::GET, usdm::DEPTH_PATH) => depth(shared, query),
        (&M::GET, usdm::EXCHANGE_INFO_PATH) => {
            let v = shared.venue();
            Ok(usdm::format_exchange_info(v.served_filters(), wall_ms()))
        }
        (&M::POST, usdm::ORDER_PATH) => {
            let order = FuturesOrder::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&order.timing)?;
            engine_call(shared, |tx| Cmd::Futures(FuturesCmd::Order(order), tx)).await
        }
        (&M::DELETE, usdm::ORDER_PATH) => {
            let cancel = CancelOrder::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&cancel.timing)?;
            engine_call(shared, |tx| Cmd::Futures(FuturesCmd::Cancel(cancel), tx)).await
        }
        (&M::DELETE, usdm::ALL_OPEN_ORDERS_PATH) => {
            let cancel = CancelOpenOrders::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&cancel.timing)?;
            engine_call(shared, |tx| Cmd::Futures(FuturesCmd::CancelAll(cancel), tx)).await
        }
        (&M::GET, usdm::ORDER_PATH) => {
            let q = QueryOrder::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&q.timing)?;
            let v = shared.venue();
            let info = bo::parse_order(&v.query_order(&q)?)
                .map_err(|e| ApiError::new(-1000, e.to_string()))?;
            Ok(order_json(&v, &info))
        }
        (&M::GET, usdm::OPEN_ORDERS_PATH) => {
            let q = OpenOrdersQuery::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&q.timing)?;
            let v = shared.venue();
            let open = bo::parse_open_orders(&v.open_orders(q.symbol.as_deref())?)
                .map_err(|e| ApiError::new(-1000, e.to_string()))?;
            let items: Vec<String> = open.iter().map(|i| order_json(&v, i)).collect();
            Ok(format!("[{}]", items.join(",")))
        }
        (&M::GET, usdm::USER_TRADES_PATH) => {
            let q = MyTradesQuery::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&q.timing)?;
            let v = shared.venue();
            let trades = bo::parse_my_trades(&v.my_trades(&q)?)
                .map_err(|e| ApiError::new(-1000, e.to_string()))?;
            let account = v.futures().ok_or_else(no_futures)?;
            let trades: Vec<_> = trades.iter().map(|t| account.trade(t)).collect();
            Ok(format_user_trades(&trades))
        }
        (&M::GET, usdm::BALANCE_PATH) => {
            let q = bo::AccountQuery::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&q.timing)?;
            let v = shared.venue();
            let account = v.futures().ok_or_else(no_futures)?;
            let marks = v.marks();
            let upnl: i64 = account
                .position_risk(&marks)
                .iter()
                .map(|p| p.unrealized_profit)
                .sum();
            let b = FuturesBalance {
                asset: MARGIN_ASSET.into(),
                balance: account.wallet(),
                cross_wallet_balance: account.wallet(),
                cross_un_pnl: upnl,
                available_balance: account.wallet().saturating_add(upnl.min(0)),
            };
            Ok(format_balances(&[b], wall_ms()))
        }
        (&M::GET, usdm_income::INCOME_PATH) => {
            let params = signed()?;
            let mut p = Params::parse(&params).map_err(|e| e.to_api_error())?;
            let text = |p: &mut Params<'_>, key: &str| p.take(key).map(|s| s.into_owned());
            let income_type = text(&mut p, "incomeType");
            let symbol = text(&mut p, "symbol");
            let number = |v: Option<String>, key: &str, default: u64| -> Result<u64, ApiError> {
                match v {
                    None => Ok(default),
                    Some(v) => v.parse().map_err(|_| {
                        ApiError::new(-1100, format!("Illegal characters found in parameter '{key}'; legal range is '^[0-9]{{1,20}}$'."))
                    }),
                }
            };
            let start = number(text(&mut p, "startTime"), "startTime", 0)?;
            let end = number(text(&mut p, "endTime"), "endTime", u64::MAX)?;
            let limit = number(text(&mut p, "limit"), "limit", 100)?;
            if !(1..=u64::from(usdm_income::MAX_INCOME_LIMIT)).contains(&limit) {
                return Err(ApiError::new(
                    -1130,
                    "Data sent for parameter 'limit' is not valid.",
                ));
            }
            p.take("page");
            p.take("recvWindow");
            p.take("timestamp");
            p.finish().map_err(|e| e.to_api_error())?;
            let v = shared.venue();
            let account = v.futures().ok_or_else(no_futures)?;
            let records = account.income(
                income_type.as_deref(),
                symbol.as_deref(),
                start,
                end,
                usize::try_from(limit).unwrap_or(usize::MAX),
            );
            Ok(usdm_income::format_income(&records))
        }
        (&M::GET, usdm::POSITION_RISK_PATH) => {
            let params = signed()?;
            let mut p = Params::parse(&params).map_err(|e| e.to_api_error())?;
            let symbol = p.take("symbol").map(|s| s.into_owned());
            p.take("recvWindow");
            p.take("timestamp");
            p.finish().map_err(|e| e.to_api_error())?;
            let v = shared.venue();
            let account = v.futures().ok_or_else(no_futures)?;
            let marks: Vec<_> = v
                .marks()
                .into_iter()
                .filter(|(s, _)| symbol.as_deref().map_or(true, |want| want == s))
                .collect();
            Ok(usdm::format_position_risk(
                &account.position_risk(&marks),
                wall_ms(),
            ))
        }
        (&M::GET, usdm::POSITION_MODE_PATH) => {
            let q = bo::AccountQuery::parse(&signed()?).map_err(|e| e.to_api_error())?;
            timed(&q.timing)?;
            let v = shared.venue();
            let account = v.futures().ok_or_else(no_futures)?;
            Ok(format_position_mode(account.dual_side()))
        }
        (&M::POST, usdm::POSITION_MODE_PATH) => {
            let params = signed()?;
            let mut p = Params::parse(&params).map_err(|e| e.to_api_error())?;
            let dual = match p.take("dualSidePosition").as_deref() {
                Some("true") => true,
                Some("false") => false,
                _ => return Err(bo::OrderError::Missing("dualSidePosition").to_api_error()),
            };
            p.take("recvWindow");
            p.take("timestamp");
            p.finish().map_err(|e| e.to_api_error())?;
            let mut v = shared.venue();
            let account = v.futures_mut().ok_or_else(no_futures)?;
            if account.dual_side() == dual {
                return Err(ApiError::new(-4059, "No need to change position side."));
            }
            account.set_dual_side(dual);
            Ok("{\"code\":200,\"msg\":\"success\"}".into())
        }
        (&M::POST, usdm::LEVERAGE_PATH) | (&M::POST, usdm::MARGIN_TYPE_PATH) => {
            let leverage = path == usdm::LEVERAGE_PATH;
            let s = SymbolSetting::parse(&signed()?, leverage).map_err(|e| e.to_api_error())?;
            timed(&s.timing)?;
            let mut v = shared.venue();
            if !v.symbols().any(|name| name == s.symbol) {
                return Err(ApiError::new(-1121, "Invalid symbol."));
            }
            let account = v.futures_mut().ok_or_else(no_futures)?;
            match s.setting {
                Setting::Leverage(l) => {
                    account.set_leverage(&s.symbol, l);
                    Ok(usdm::format_leverage(
                        &s.symbol,
                        l,
                        1_000_000_000 * rt_core::SCALE,
                    ))
                }
                Setting::MarginType(m) => {
                    if account.set_margin_type(&s.symbol, m) {
                        Ok("{\"code\":200,\"msg\":\"success\"}".into())
                    } else {
                        Err(ApiError::new(
                            usdm::NO_NEED_TO_CHANGE_MARGIN_TYPE,
                            "No need to change margin type.",
                        ))
                    }
                }
            }
        }
        (&M::POST, usdm::LISTEN_KEY_PATH) => open_listen_key(shared, api_key),
        // One key per account: keep-alive and close need not name it.
        (&M::PUT | &M::DELETE, usdm::LISTEN_KEY_PATH) => {
            check_api_key(shared, api_key)?;
            if shared.listen_keys().is_empty() {
                return Err(ApiError::new(-1125, "This listenKey does not exist."));
            }
            if method == M::DELETE {
                shared.listen_keys().clear();
            }
            Ok("{}".into())
        }
        _ => {
            *not_found = true;
            Err(ApiError::new(
                -1000,
                format!("no such endpoint: {method} {path} (the simulator serves USD-M order entry, positions, depth and the user data stream)"),
            ))
        }
    }
}

/// A `funding` fault: every position pays or receives `rate` at its mark, on the user stream.
pub(super) fn fund(shared: &Shared, rate: i64) {
    let frames = {
        let mut v = shared.venue();
        let marks = v.marks();
        let Some(account) = v.futures_mut() else {
            return;
        };
        account.fund(rate, wall_ms(), |s| {
            marks
                .iter()
                .find(|(name, _)| name == s)
                .and_then(|(_, m)| *m)
        })
    };
    for frame in frames {
        let _ = shared
            .user_tx
            .send(tokio_tungstenite::tungstenite::Utf8Bytes::from(frame));
    }
}

/// Whether a subscription to stream `wanted` gets a replayed frame of stream `recorded`: the
/// same stream; the same symbol's depth diffs at another update speed (a replay sends the
/// cadence the capture recorded: the USD-M capture has `@depth@0ms`, a client asks for
/// `@depth@100ms`); the same symbol's trades for an `aggTrade` subscription (the capture
/// recorded `@trade`, which the decoder reads alike).
pub(super) fn serves(wanted: &str, recorded: &str) -> bool {
    if wanted == recorded {
        return true;
    }
    let (Some((ws, wc)), Some((rs, rc))) = (wanted.split_once('@'), recorded.split_once('@'))
    else {
        return false;
    };
    ws == rs
        && ((wc.starts_with("depth") && rc.starts_with("depth"))
            || (wc == "aggTrade" && rc == "trade"))
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn recorded_streams_serve_their_equivalents() {
        assert!(serves("btcusdt@depth@100ms", "btcusdt@depth@0ms"));
        assert!(serves("btcusdt@aggTrade", "btcusdt@trade"));
        assert!(serves("btcusdt@bookTicker", "btcusdt@bookTicker"));
        assert!(!serves("ethusdt@depth@100ms", "btcusdt@depth@0ms"));
        assert!(!serves("btcusdt@trade", "btcusdt@aggTrade"));
        assert!(!serves("btcusdt@bookTicker", "btcusdt@trade"));
    }
}
