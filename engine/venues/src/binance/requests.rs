//! The requests of Binance Spot order entry, built into query strings (`to_query`, parameters
//! in Binance's documented order) and parsed back (`parse`, server side, with Binance's rules for
//! which parameters each needs): `POST /api/v3/order` ([`NewOrder`]), `DELETE /api/v3/order`
//! ([`CancelOrder`]), `GET /api/v3/order` ([`QueryOrder`]), `DELETE /api/v3/openOrders`
//! ([`CancelOpenOrders`]), `GET /api/v3/openOrders` ([`OpenOrdersQuery`]), `GET /api/v3/account`
//! ([`AccountQuery`]) and `GET /api/v3/myTrades` ([`MyTradesQuery`]).

use rt_core::{OrderKind, Price, Qty, Side};

use super::errors::OrderError;
use super::query::{Params, QueryBuilder, Timing};
use super::vocab::{parse_side, side_str, OrderType, RespType, StpMode, TimeInForce};
use super::wire::{parse_unsigned, short_units};

/// New order (`POST`), cancel (`DELETE`), query (`GET`).
pub const ORDER_PATH: &str = "/api/v3/order";
/// List open orders (`GET`), cancel all of a symbol (`DELETE`).
pub const OPEN_ORDERS_PATH: &str = "/api/v3/openOrders";
/// The account's trades of a symbol (`GET`).
pub const MY_TRADES_PATH: &str = "/api/v3/myTrades";
/// Trades `GET /api/v3/myTrades` answers when the request has no `limit`.
pub const DEFAULT_MY_TRADES_LIMIT: u32 = 500;
/// Largest `limit` of `GET /api/v3/myTrades`.
pub const MAX_MY_TRADES_LIMIT: u32 = 1000;

/// `POST /api/v3/order`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    /// Required for LIMIT, refused for MARKET and LIMIT_MAKER.
    pub time_in_force: Option<TimeInForce>,
    pub quantity: Qty,
    /// Required for LIMIT and LIMIT_MAKER, refused for MARKET.
    pub price: Option<Price>,
    pub new_client_order_id: Option<String>,
    pub new_order_resp_type: Option<RespType>,
    /// `None`: the symbol's default mode.
    pub self_trade_prevention_mode: Option<StpMode>,
    pub timing: Timing,
}

impl NewOrder {
    /// The unsigned query string, parameters in Binance's documented order.
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        q.put("symbol", &self.symbol)
            .put("side", side_str(self.side))
            .put("type", self.order_type.as_str())
            .put_opt("timeInForce", self.time_in_force.map(TimeInForce::as_str))
            .put("quantity", &short_units(self.quantity.0))
            .put_opt("price", self.price.map(|p| short_units(p.0)).as_deref())
            .put_opt("newClientOrderId", self.new_client_order_id.as_deref())
            .put_opt(
                "newOrderRespType",
                self.new_order_resp_type.map(RespType::as_str),
            )
            .put_opt(
                "selfTradePreventionMode",
                self.self_trade_prevention_mode.map(StpMode::as_str),
            );
        self.timing.put(&mut q);
        q.0
    }

    /// Parses the total params of a new order (the signature already split off, see
    /// [`super::signing::SignedParams`]), with Binance's rules for which parameters each type
    /// needs.
    pub fn parse(params: &str) -> Result<NewOrder, OrderError> {
        let mut p = Params::parse(params)?;
        let symbol = p.symbol()?;
        let side = parse_side(&p.required("side")?, "side")?;
        let order_type = OrderType::parse(&p.required("type")?)?;
        let time_in_force = p
            .take("timeInForce")
            .map(|t| TimeInForce::parse(&t))
            .transpose()?;
        if p.take("quoteOrderQty").is_some() {
            return Err(OrderError::Invalid {
                name: "quoteOrderQty",
                value: String::new(),
                reason: "not supported by this venue; send quantity",
            });
        }
        let quantity = Qty(positive(&p.required("quantity")?, "quantity")?);
        let price = p
            .take("price")
            .map(|v| positive(&v, "price").map(Price))
            .transpose()?;
        let new_client_order_id = p.client_id("newClientOrderId")?;
        let new_order_resp_type = p
            .take("newOrderRespType")
            .map(|t| RespType::parse(&t))
            .transpose()?;
        let self_trade_prevention_mode = p
            .take("selfTradePreventionMode")
            .map(|t| StpMode::parse(&t))
            .transpose()?;
        let timing = p.timing()?;
        match order_type {
            OrderType::Limit => {
                if time_in_force.is_none() {
                    return Err(OrderError::Missing("timeInForce"));
                }
                if price.is_none() {
                    return Err(OrderError::Missing("price"));
                }
            }
            OrderType::LimitMaker => {
                if time_in_force.is_some() {
                    return Err(OrderError::NotRequired("timeInForce"));
                }
                if price.is_none() {
                    return Err(OrderError::Missing("price"));
                }
            }
            OrderType::Market => {
                if time_in_force.is_some() {
                    return Err(OrderError::NotRequired("timeInForce"));
                }
                if price.is_some() {
                    return Err(OrderError::NotRequired("price"));
                }
            }
        }
        p.finish()?;
        Ok(NewOrder {
            symbol,
            side,
            order_type,
            time_in_force,
            quantity,
            price,
            new_client_order_id,
            new_order_resp_type,
            self_trade_prevention_mode,
            timing,
        })
    }

    /// How the matcher executes it.
    pub fn kind(&self) -> OrderKind {
        match (self.order_type, self.time_in_force) {
            (OrderType::Market, _) => OrderKind::Market,
            (OrderType::LimitMaker, _) => OrderKind::PostOnly,
            (OrderType::Limit, Some(TimeInForce::Ioc)) => OrderKind::Ioc,
            (OrderType::Limit, _) => OrderKind::Limit,
        }
    }

    /// The order for a core order kind: LIMIT GTC, LIMIT IOC, MARKET or LIMIT_MAKER.
    pub fn from_kind(
        symbol: &str,
        side: Side,
        kind: OrderKind,
        price: Price,
        quantity: Qty,
        client_order_id: Option<String>,
        timing: Timing,
    ) -> NewOrder {
        let (order_type, time_in_force, price) = match kind {
            OrderKind::Limit => (OrderType::Limit, Some(TimeInForce::Gtc), Some(price)),
            OrderKind::Ioc => (OrderType::Limit, Some(TimeInForce::Ioc), Some(price)),
            OrderKind::PostOnly => (OrderType::LimitMaker, None, Some(price)),
            OrderKind::Market => (OrderType::Market, None, None),
        };
        NewOrder {
            symbol: symbol.to_owned(),
            side,
            order_type,
            time_in_force,
            quantity,
            price,
            new_client_order_id: client_order_id,
            new_order_resp_type: None,
            self_trade_prevention_mode: None,
            timing,
        }
    }

    /// `newOrderRespType`, or Binance's default (FULL for LIMIT and MARKET, ACK otherwise).
    pub fn resp_type(&self) -> RespType {
        self.new_order_resp_type.unwrap_or(match self.order_type {
            OrderType::Limit | OrderType::Market => RespType::Full,
            OrderType::LimitMaker => RespType::Ack,
        })
    }

    /// `timeInForce` as responses show it (GTC when the request had none).
    pub fn shown_time_in_force(&self) -> TimeInForce {
        self.time_in_force.unwrap_or(TimeInForce::Gtc)
    }
}

pub(super) fn positive(text: &str, name: &'static str) -> Result<i64, OrderError> {
    let units = parse_unsigned(text, name)?;
    if units <= 0 {
        return Err(OrderError::Invalid {
            name,
            value: text.to_owned(),
            reason: "must be greater than zero",
        });
    }
    Ok(units)
}

/// `DELETE /api/v3/order`: by `orderId` or `origClientOrderId` (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelOrder {
    pub symbol: String,
    pub order_id: Option<u64>,
    pub orig_client_order_id: Option<String>,
    pub timing: Timing,
}

/// The parameters naming one order: `symbol`, then `orderId` and/or `origClientOrderId`.
pub(super) fn order_ref_query(
    symbol: &str,
    order_id: Option<u64>,
    orig_client_order_id: Option<&str>,
    timing: &Timing,
) -> String {
    let mut q = QueryBuilder::default();
    q.put("symbol", symbol)
        .put_opt("orderId", order_id.map(|id| id.to_string()).as_deref())
        .put_opt("origClientOrderId", orig_client_order_id);
    timing.put(&mut q);
    q.0
}

/// Reads the parameters naming one order (see [`order_ref_query`]).
pub(super) fn order_ref(
    p: &mut Params<'_>,
) -> Result<(String, Option<u64>, Option<String>), OrderError> {
    Ok((
        p.symbol()?,
        p.u64_opt("orderId")?,
        p.client_id("origClientOrderId")?,
    ))
}

impl CancelOrder {
    pub fn to_query(&self) -> String {
        order_ref_query(
            &self.symbol,
            self.order_id,
            self.orig_client_order_id.as_deref(),
            &self.timing,
        )
    }

    pub fn parse(params: &str) -> Result<CancelOrder, OrderError> {
        let mut p = Params::parse(params)?;
        let (symbol, order_id, orig_client_order_id) = order_ref(&mut p)?;
        // Accepted and ignored: the id of the cancel itself.
        p.client_id("newClientOrderId")?;
        let timing = p.timing()?;
        if order_id.is_none() && orig_client_order_id.is_none() {
            return Err(OrderError::Missing("origClientOrderId"));
        }
        p.finish()?;
        Ok(CancelOrder {
            symbol,
            order_id,
            orig_client_order_id,
            timing,
        })
    }
}

/// `DELETE /api/v3/openOrders`: cancel every open order of a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelOpenOrders {
    pub symbol: String,
    pub timing: Timing,
}

impl CancelOpenOrders {
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        q.put("symbol", &self.symbol);
        self.timing.put(&mut q);
        q.0
    }

    pub fn parse(params: &str) -> Result<CancelOpenOrders, OrderError> {
        let mut p = Params::parse(params)?;
        let symbol = p.symbol()?;
        let timing = p.timing()?;
        p.finish()?;
        Ok(CancelOpenOrders { symbol, timing })
    }
}

/// `GET /api/v3/openOrders`: of one symbol, or of all without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOrdersQuery {
    pub symbol: Option<String>,
    pub timing: Timing,
}

impl OpenOrdersQuery {
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        q.put_opt("symbol", self.symbol.as_deref());
        self.timing.put(&mut q);
        q.0
    }

    pub fn parse(params: &str) -> Result<OpenOrdersQuery, OrderError> {
        let mut p = Params::parse(params)?;
        let symbol = p.symbol_opt()?;
        let timing = p.timing()?;
        p.finish()?;
        Ok(OpenOrdersQuery { symbol, timing })
    }
}

/// `GET /api/v3/account` (see `binance_account`): only the request's timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountQuery {
    pub timing: Timing,
}

impl AccountQuery {
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        self.timing.put(&mut q);
        q.0
    }

    pub fn parse(params: &str) -> Result<AccountQuery, OrderError> {
        let mut p = Params::parse(params)?;
        let timing = p.timing()?;
        p.finish()?;
        Ok(AccountQuery { timing })
    }
}

/// `GET /api/v3/order`: one order, open or finished, by `orderId` or `origClientOrderId` (at
/// least one; with both, the order found by id must carry that client id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOrder {
    pub symbol: String,
    pub order_id: Option<u64>,
    pub orig_client_order_id: Option<String>,
    pub timing: Timing,
}

impl QueryOrder {
    pub fn to_query(&self) -> String {
        order_ref_query(
            &self.symbol,
            self.order_id,
            self.orig_client_order_id.as_deref(),
            &self.timing,
        )
    }

    pub fn parse(params: &str) -> Result<QueryOrder, OrderError> {
        let mut p = Params::parse(params)?;
        let (symbol, order_id, orig_client_order_id) = order_ref(&mut p)?;
        let timing = p.timing()?;
        if order_id.is_none() && orig_client_order_id.is_none() {
            return Err(OrderError::MissingEither("orderId", "origClientOrderId"));
        }
        p.finish()?;
        Ok(QueryOrder {
            symbol,
            order_id,
            orig_client_order_id,
            timing,
        })
    }
}

/// `GET /api/v3/myTrades`: the account's trades of a symbol, ascending by trade id.
///
/// Binance's rules: with `fromId`, the trades with id >= `fromId`, oldest first; without it,
/// the most recent ones. At most `limit` ([`DEFAULT_MY_TRADES_LIMIT`] when absent, at most
/// [`MAX_MY_TRADES_LIMIT`]). `orderId` keeps the trades of one order (and combines with
/// `fromId`). To read every trade of an order page by page, start from `fromId=0` and go on
/// from the last id + 1 while pages come back full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MyTradesQuery {
    pub symbol: String,
    pub order_id: Option<u64>,
    pub from_id: Option<u64>,
    /// `None`: [`DEFAULT_MY_TRADES_LIMIT`].
    pub limit: Option<u32>,
    pub timing: Timing,
}

impl MyTradesQuery {
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        q.put("symbol", &self.symbol)
            .put_opt("orderId", self.order_id.map(|id| id.to_string()).as_deref())
            .put_opt("fromId", self.from_id.map(|id| id.to_string()).as_deref())
            .put_opt("limit", self.limit.map(|n| n.to_string()).as_deref());
        self.timing.put(&mut q);
        q.0
    }

    pub fn parse(params: &str) -> Result<MyTradesQuery, OrderError> {
        let mut p = Params::parse(params)?;
        let symbol = p.symbol()?;
        let order_id = p.u64_opt("orderId")?;
        let from_id = p.u64_opt("fromId")?;
        let limit = match p.u64_opt("limit")? {
            None => None,
            Some(n) => match u32::try_from(n) {
                Ok(n) if (1..=MAX_MY_TRADES_LIMIT).contains(&n) => Some(n),
                _ => {
                    return Err(OrderError::Invalid {
                        name: "limit",
                        value: n.to_string(),
                        reason: "must be between 1 and 1000",
                    })
                }
            },
        };
        let timing = p.timing()?;
        p.finish()?;
        Ok(MyTradesQuery {
            symbol,
            order_id,
            from_id,
            limit,
            timing,
        })
    }

    /// `limit`, or Binance's default.
    pub fn limit_or_default(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_MY_TRADES_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::binance::errors::PRECISION;
    use crate::binance::test_support::doc_order;

    #[test]
    fn self_trade_prevention_mode_is_sent_and_read_back() {
        let mut order = doc_order();
        order.self_trade_prevention_mode = Some(StpMode::ExpireMaker);
        let q = order.to_query();
        assert!(q.contains("&price=0.1&selfTradePreventionMode=EXPIRE_MAKER&recvWindow=5000"));
        assert_eq!(NewOrder::parse(&q), Ok(order));
        let bad = q.replace("EXPIRE_MAKER", "DECREMENTS");
        assert!(NewOrder::parse(&bad).is_err());
    }

    #[test]
    fn new_order_round_trips_every_type() {
        let timing = Timing::new(1_700_000_000_000);
        for kind in [
            OrderKind::Limit,
            OrderKind::Ioc,
            OrderKind::PostOnly,
            OrderKind::Market,
        ] {
            let mut order = NewOrder::from_kind(
                "BTCUSDT",
                Side::Sell,
                kind,
                Price(6_183_763_000_000),
                Qty(200_000),
                Some("mm-1:a/b_c.d".into()),
                timing,
            );
            order.new_order_resp_type = Some(RespType::Result);
            let query = order.to_query();
            let parsed = NewOrder::parse(&query).unwrap();
            assert_eq!(parsed, order, "{query}");
            assert_eq!(parsed.kind(), kind);
        }
        let order = NewOrder::from_kind(
            "BTCUSDT",
            Side::Buy,
            OrderKind::PostOnly,
            Price(6_183_763_000_000),
            Qty(200_000),
            Some("x:y".into()),
            timing,
        );
        assert_eq!(
            order.to_query(),
            "symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=0.002&price=61837.63&\
             newClientOrderId=x%3Ay&timestamp=1700000000000"
        );
        assert_eq!(order.resp_type(), RespType::Ack);
        assert_eq!(doc_order().resp_type(), RespType::Full);
    }

    #[test]
    fn new_order_errors_name_the_parameter() {
        let base = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=60000&timestamp=1";
        assert!(NewOrder::parse(base).is_ok());
        let cases: &[(&str, &str, OrderError, i32)] = &[
            (
                "side=BUY",
                "side=HOLD",
                OrderError::Invalid {
                    name: "side",
                    value: "HOLD".into(),
                    reason: "expected BUY or SELL",
                },
                -1117,
            ),
            (
                "type=LIMIT",
                "type=STOP",
                OrderError::Invalid {
                    name: "type",
                    value: "STOP".into(),
                    reason: "expected LIMIT, MARKET or LIMIT_MAKER",
                },
                -1116,
            ),
            (
                "timeInForce=GTC",
                "timeInForce=FOK",
                OrderError::Invalid {
                    name: "timeInForce",
                    value: "FOK".into(),
                    reason: "expected GTC or IOC",
                },
                -1115,
            ),
            (
                "&timeInForce=GTC",
                "",
                OrderError::Missing("timeInForce"),
                -1102,
            ),
            (
                "quantity=0.001",
                "quantity=0.000000001",
                OrderError::Invalid {
                    name: "quantity",
                    value: "0.000000001".into(),
                    reason: PRECISION,
                },
                -1111,
            ),
            (
                "quantity=0.001",
                "quantity=0",
                OrderError::Invalid {
                    name: "quantity",
                    value: "0".into(),
                    reason: "must be greater than zero",
                },
                -1013,
            ),
            (
                "price=60000",
                "price=-1",
                OrderError::Invalid {
                    name: "price",
                    value: "-1".into(),
                    reason: "must not be negative",
                },
                -1013,
            ),
            (
                "price=60000",
                "price=6e4",
                OrderError::Invalid {
                    name: "price",
                    value: "6e4".into(),
                    reason: "not a decimal number",
                },
                -1013,
            ),
            (
                "symbol=BTCUSDT",
                "symbol=btc%20usdt",
                OrderError::Invalid {
                    name: "symbol",
                    value: "btc usdt".into(),
                    reason: "expected 1-20 upper-case letters and digits",
                },
                -1121,
            ),
            ("&timestamp=1", "", OrderError::Missing("timestamp"), -1102),
            (
                "timestamp=1",
                "timestamp=1&colour=red",
                OrderError::Unknown("colour".into()),
                -1104,
            ),
            (
                "timestamp=1",
                "timestamp=1&side=SELL",
                OrderError::Duplicate("side".into()),
                -1101,
            ),
            (
                "timestamp=1",
                "timestamp=1&recvWindow=70000",
                OrderError::Invalid {
                    name: "recvWindow",
                    value: "70000".into(),
                    reason: "must be less than or equal to 60000",
                },
                -1131,
            ),
            (
                "timestamp=1",
                "timestamp=1&newClientOrderId=has%20space",
                OrderError::Invalid {
                    name: "newClientOrderId",
                    value: "has space".into(),
                    reason: "expected 1-36 characters of [.A-Z:/a-z0-9_-]",
                },
                -1100,
            ),
            (
                "price=60000",
                "price=%zz",
                OrderError::Malformed {
                    at: 72,
                    reason: "bad percent escape",
                },
                -1100,
            ),
        ];
        for (from, to, expected, code) in cases {
            let query = base.replacen(from, to, 1);
            let err = NewOrder::parse(&query).unwrap_err();
            assert_eq!(&err, expected, "{query}");
            assert_eq!(err.code(), *code, "{query}");
            assert!(err.to_string().contains(match &err {
                OrderError::Invalid { name, .. } => name,
                OrderError::Missing(name) => name,
                _ => "",
            }));
        }
        // Per-type rules.
        let market = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1";
        assert!(NewOrder::parse(market).is_ok());
        assert_eq!(
            NewOrder::parse(&format!("{market}&price=1")),
            Err(OrderError::NotRequired("price"))
        );
        assert_eq!(
            NewOrder::parse(&format!("{market}&timeInForce=IOC")),
            Err(OrderError::NotRequired("timeInForce"))
        );
        let maker = "symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=1&timestamp=1";
        assert_eq!(NewOrder::parse(maker), Err(OrderError::Missing("price")));
        assert_eq!(
            NewOrder::parse(&format!("{maker}&price=1&timeInForce=GTC")),
            Err(OrderError::NotRequired("timeInForce"))
        );
        assert_eq!(
            NewOrder::parse(&format!("{maker}&price=1")).unwrap().kind(),
            OrderKind::PostOnly
        );
    }

    #[test]
    fn cancel_and_open_orders_requests_round_trip() {
        let timing = Timing {
            timestamp_ms: 5,
            recv_window_ms: Some(1000),
        };
        let cancel = CancelOrder {
            symbol: "BTCUSDT".into(),
            order_id: None,
            orig_client_order_id: Some("mm-7".into()),
            timing,
        };
        assert_eq!(
            cancel.to_query(),
            "symbol=BTCUSDT&origClientOrderId=mm-7&recvWindow=1000&timestamp=5"
        );
        assert_eq!(CancelOrder::parse(&cancel.to_query()), Ok(cancel));
        let by_id = CancelOrder {
            symbol: "BTCUSDT".into(),
            order_id: Some(42),
            orig_client_order_id: None,
            timing,
        };
        assert_eq!(CancelOrder::parse(&by_id.to_query()), Ok(by_id));
        assert_eq!(
            CancelOrder::parse("symbol=BTCUSDT&timestamp=5"),
            Err(OrderError::Missing("origClientOrderId"))
        );
        let all = CancelOpenOrders {
            symbol: "BTCUSDT".into(),
            timing,
        };
        assert_eq!(CancelOpenOrders::parse(&all.to_query()), Ok(all));
        assert_eq!(
            CancelOpenOrders::parse("timestamp=5"),
            Err(OrderError::Missing("symbol"))
        );
        for symbol in [None, Some("BTCUSDT".to_owned())] {
            let q = OpenOrdersQuery { symbol, timing };
            assert_eq!(OpenOrdersQuery::parse(&q.to_query()), Ok(q));
        }
    }

    #[test]
    fn query_order_and_my_trades_requests_round_trip() {
        let timing = Timing {
            timestamp_ms: 7,
            recv_window_ms: Some(2000),
        };
        let by_client = QueryOrder {
            symbol: "BTCUSDT".into(),
            order_id: None,
            orig_client_order_id: Some("rt:1/a_b".into()),
            timing,
        };
        assert_eq!(
            by_client.to_query(),
            "symbol=BTCUSDT&origClientOrderId=rt%3A1%2Fa_b&recvWindow=2000&timestamp=7"
        );
        assert_eq!(QueryOrder::parse(&by_client.to_query()), Ok(by_client));
        let both = QueryOrder {
            symbol: "BTCUSDT".into(),
            order_id: Some(42),
            orig_client_order_id: Some("mm-42".into()),
            timing: Timing::new(7),
        };
        assert_eq!(
            both.to_query(),
            "symbol=BTCUSDT&orderId=42&origClientOrderId=mm-42&timestamp=7"
        );
        assert_eq!(QueryOrder::parse(&both.to_query()), Ok(both));

        let all = MyTradesQuery {
            symbol: "BTCUSDT".into(),
            order_id: Some(3),
            from_id: Some(100),
            limit: Some(1000),
            timing,
        };
        assert_eq!(
            all.to_query(),
            "symbol=BTCUSDT&orderId=3&fromId=100&limit=1000&recvWindow=2000&timestamp=7"
        );
        assert_eq!(MyTradesQuery::parse(&all.to_query()), Ok(all));
        let bare = MyTradesQuery {
            symbol: "BTCUSDT".into(),
            order_id: None,
            from_id: None,
            limit: None,
            timing: Timing::new(7),
        };
        assert_eq!(bare.to_query(), "symbol=BTCUSDT&timestamp=7");
        assert_eq!(bare.limit_or_default(), DEFAULT_MY_TRADES_LIMIT);
        assert_eq!(MyTradesQuery::parse(&bare.to_query()), Ok(bare));
        // fromId 0 is a value (every trade from the first), not an absent parameter.
        let q = MyTradesQuery::parse("symbol=BTCUSDT&fromId=0&timestamp=7").unwrap();
        assert_eq!(q.from_id, Some(0));
    }

    #[test]
    fn query_order_needs_an_id_and_my_trades_a_limit_in_range() {
        let err = QueryOrder::parse("symbol=BTCUSDT&timestamp=5").unwrap_err();
        assert_eq!(
            err,
            OrderError::MissingEither("orderId", "origClientOrderId")
        );
        assert_eq!(err.code(), -1102);
        let msg = err.to_string();
        assert!(
            msg.contains("'orderId'") && msg.contains("'origClientOrderId'"),
            "{msg}"
        );
        // Empty values count as absent.
        assert_eq!(
            QueryOrder::parse("symbol=BTCUSDT&orderId=&origClientOrderId=&timestamp=5"),
            Err(err)
        );
        assert_eq!(
            QueryOrder::parse("orderId=1&timestamp=5"),
            Err(OrderError::Missing("symbol"))
        );
        assert_eq!(
            QueryOrder::parse("symbol=BTCUSDT&orderId=1&timestamp=5&newClientOrderId=x"),
            Err(OrderError::Unknown("newClientOrderId".into()))
        );
        assert_eq!(
            QueryOrder::parse("symbol=BTCUSDT&orderId=-1&timestamp=5"),
            Err(OrderError::Invalid {
                name: "orderId",
                value: "-1".into(),
                reason: "not an unsigned integer",
            })
        );

        for limit in ["0", "1001", "99999999999"] {
            let err = MyTradesQuery::parse(&format!("symbol=BTCUSDT&limit={limit}&timestamp=5"))
                .unwrap_err();
            assert_eq!(
                err,
                OrderError::Invalid {
                    name: "limit",
                    value: limit.into(),
                    reason: "must be between 1 and 1000",
                }
            );
            assert_eq!(err.code(), -1100);
            assert!(err.to_string().contains("'limit'"), "{err}");
        }
        assert!(matches!(
            MyTradesQuery::parse("symbol=BTCUSDT&limit=ten&timestamp=5"),
            Err(OrderError::Invalid { name: "limit", .. })
        ));
        for limit in [1, 500, 1000] {
            let q = MyTradesQuery::parse(&format!("symbol=BTCUSDT&limit={limit}&timestamp=5"));
            assert_eq!(q.unwrap().limit, Some(limit));
        }
        assert_eq!(
            MyTradesQuery::parse("symbol=BTCUSDT&startTime=1&timestamp=5"),
            Err(OrderError::Unknown("startTime".into()))
        );
        assert_eq!(
            MyTradesQuery::parse("limit=5&timestamp=5"),
            Err(OrderError::Missing("symbol"))
        );
    }

    #[test]
    fn timestamps_follow_the_recv_window_rule() {
        let t = Timing::new(10_000);
        assert_eq!(t.check(10_000), Ok(()));
        assert_eq!(t.check(15_000), Ok(()));
        assert!(matches!(t.check(15_001), Err(OrderError::Timestamp { .. })));
        assert_eq!(t.check(9_001), Ok(()));
        let ahead = t.check(9_000).unwrap_err();
        assert_eq!(ahead.code(), -1021);
        let wide = Timing {
            timestamp_ms: 10_000,
            recv_window_ms: Some(60_000),
        };
        assert_eq!(wide.check(70_000), Ok(()));
    }
}
