//! Binance Spot's REST answers, formatted (the sim venue) and parsed (the gateway): the order
//! response (ACK / RESULT / FULL, [`NewOrderResponse`]), cancels ([`CancelResponse`]), the
//! open-orders list and the queried order ([`OrderInfo`], [`order_json`], [`parse_order`]), the
//! account's trades ([`TradeInfo`], [`my_trades_json`], [`parse_my_trades`]) and the listen key.

use std::borrow::Cow;

use rt_core::{Cash, Price, Qty, Side};
use serde::Deserialize;

use super::errors::OrderError;
use super::vocab::{parse_side, side_str, OrderStatus, OrderType, RespType, TimeInForce};
use super::wire::{close_object, dec_field, json, json_string, put_dec, put_num, put_str};

/// An order as the REST API shows it (order responses, open orders, cancels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderInfo {
    pub symbol: String,
    pub order_id: u64,
    pub client_order_id: String,
    pub price: Price,
    pub orig_qty: Qty,
    pub executed_qty: Qty,
    /// `cummulativeQuoteQty` (Binance's spelling): sum of price * qty of the fills.
    pub cum_quote_qty: Cash,
    pub status: OrderStatus,
    pub time_in_force: TimeInForce,
    pub order_type: OrderType,
    pub side: Side,
    /// When the order was created, ms.
    pub time_ms: u64,
    /// Last change, ms.
    pub update_time_ms: u64,
    /// On the book.
    pub is_working: bool,
}

impl OrderInfo {
    /// The fields shared by every form, after `symbol`, `orderId`, `orderListId`,
    /// `clientOrderId` (written by the caller).
    pub(super) fn write_detail(&self, out: &mut String) {
        put_dec(out, "price", self.price.0);
        put_dec(out, "origQty", self.orig_qty.0);
        put_dec(out, "executedQty", self.executed_qty.0);
        put_dec(out, "cummulativeQuoteQty", self.cum_quote_qty);
        put_str(out, "status", self.status.as_str());
        put_str(out, "timeInForce", self.time_in_force.as_str());
        put_str(out, "type", self.order_type.as_str());
        put_str(out, "side", side_str(self.side));
    }

    fn write_open(&self, out: &mut String) {
        out.push('{');
        put_str(out, "symbol", &self.symbol);
        put_num(out, "orderId", self.order_id);
        put_num(out, "orderListId", -1);
        put_str(out, "clientOrderId", &self.client_order_id);
        self.write_detail(out);
        put_dec(out, "stopPrice", 0);
        put_dec(out, "icebergQty", 0);
        put_num(out, "time", self.time_ms);
        put_num(out, "updateTime", self.update_time_ms);
        put_num(out, "isWorking", self.is_working);
        put_num(out, "workingTime", self.time_ms);
        put_dec(out, "origQuoteOrderQty", 0);
        put_str(out, "selfTradePreventionMode", "NONE");
        close_object(out);
    }
}

/// One fill in a FULL order response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillInfo {
    pub price: Price,
    pub qty: Qty,
    pub commission: Cash,
    pub commission_asset: String,
    pub trade_id: u64,
}

/// The raw JSON shape shared by the order forms; decimals as strings.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOrder<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    order_id: u64,
    #[serde(borrow)]
    client_order_id: Cow<'a, str>,
    #[serde(default, borrow)]
    orig_client_order_id: Option<Cow<'a, str>>,
    #[serde(default)]
    transact_time: Option<u64>,
    #[serde(default, borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    orig_qty: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    executed_qty: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    cummulative_quote_qty: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    time_in_force: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type")]
    order_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    side: Option<Cow<'a, str>>,
    #[serde(default)]
    time: Option<u64>,
    #[serde(default)]
    update_time: Option<u64>,
    #[serde(default)]
    working_time: Option<u64>,
    #[serde(default)]
    is_working: Option<bool>,
    #[serde(default, borrow)]
    fills: Vec<RawFill<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFill<'a> {
    #[serde(borrow)]
    price: Cow<'a, str>,
    #[serde(borrow)]
    qty: Cow<'a, str>,
    #[serde(borrow)]
    commission: Cow<'a, str>,
    #[serde(borrow)]
    commission_asset: Cow<'a, str>,
    trade_id: u64,
}

fn need<'b>(value: &'b Option<Cow<'_, str>>, name: &'static str) -> Result<&'b str, OrderError> {
    value.as_deref().ok_or(OrderError::Response {
        what: "order",
        reason: format!("field `{name}` is missing"),
    })
}

impl RawOrder<'_> {
    /// The detail fields, when present (RESULT, FULL, cancels, open orders).
    fn info(&self) -> Result<Option<OrderInfo>, OrderError> {
        if self.status.is_none() {
            return Ok(None);
        }
        let time = self.time.or(self.working_time).or(self.transact_time);
        let status = OrderStatus::parse(need(&self.status, "status")?)?;
        Ok(Some(OrderInfo {
            symbol: self.symbol.to_string(),
            order_id: self.order_id,
            client_order_id: self.client_order_id.to_string(),
            price: Price(dec_field(need(&self.price, "price")?, "price")?),
            orig_qty: Qty(dec_field(need(&self.orig_qty, "origQty")?, "origQty")?),
            executed_qty: Qty(dec_field(
                need(&self.executed_qty, "executedQty")?,
                "executedQty",
            )?),
            cum_quote_qty: dec_field(
                need(&self.cummulative_quote_qty, "cummulativeQuoteQty")?,
                "cummulativeQuoteQty",
            )?,
            status,
            time_in_force: TimeInForce::parse(need(&self.time_in_force, "timeInForce")?)?,
            order_type: OrderType::parse(need(&self.order_type, "type")?)?,
            side: parse_side(need(&self.side, "side")?, "side")?,
            time_ms: time.unwrap_or(0),
            update_time_ms: self
                .update_time
                .or(self.transact_time)
                .or(time)
                .unwrap_or(0),
            // Order responses carry no `isWorking`: an open order is on the book.
            is_working: self.is_working.unwrap_or(status.is_open()),
        }))
    }

    fn fills(&self) -> Result<Vec<FillInfo>, OrderError> {
        self.fills
            .iter()
            .map(|f| {
                Ok(FillInfo {
                    price: Price(dec_field(&f.price, "price")?),
                    qty: Qty(dec_field(&f.qty, "qty")?),
                    commission: dec_field(&f.commission, "commission")?,
                    commission_asset: f.commission_asset.to_string(),
                    trade_id: f.trade_id,
                })
            })
            .collect()
    }
}

/// The answer to `POST /api/v3/order`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrderResponse {
    pub symbol: String,
    pub order_id: u64,
    pub client_order_id: String,
    pub transact_time_ms: u64,
    /// RESULT and FULL only.
    pub info: Option<OrderInfo>,
    /// FULL only (empty otherwise).
    pub fills: Vec<FillInfo>,
}

impl NewOrderResponse {
    /// Formats the response of the given type from the order's state after matching.
    pub fn format(
        resp_type: RespType,
        info: &OrderInfo,
        transact_time_ms: u64,
        fills: &[FillInfo],
    ) -> String {
        let mut out = String::with_capacity(384);
        out.push('{');
        put_str(&mut out, "symbol", &info.symbol);
        put_num(&mut out, "orderId", info.order_id);
        put_num(&mut out, "orderListId", -1);
        put_str(&mut out, "clientOrderId", &info.client_order_id);
        put_num(&mut out, "transactTime", transact_time_ms);
        if resp_type != RespType::Ack {
            info.write_detail(&mut out);
            put_num(&mut out, "workingTime", info.time_ms);
            put_str(&mut out, "selfTradePreventionMode", "NONE");
        }
        if resp_type == RespType::Full {
            out.push_str("\"fills\":[");
            for (i, f) in fills.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                put_dec(&mut out, "price", f.price.0);
                put_dec(&mut out, "qty", f.qty.0);
                put_dec(&mut out, "commission", f.commission);
                put_str(&mut out, "commissionAsset", &f.commission_asset);
                put_num(&mut out, "tradeId", f.trade_id);
                close_object(&mut out);
            }
            out.push_str("],");
        }
        close_object(&mut out);
        out
    }

    pub fn parse(body: &str) -> Result<NewOrderResponse, OrderError> {
        let raw: RawOrder<'_> = json(body, "order response")?;
        Ok(NewOrderResponse {
            symbol: raw.symbol.to_string(),
            order_id: raw.order_id,
            client_order_id: raw.client_order_id.to_string(),
            transact_time_ms: raw.transact_time.unwrap_or(0),
            info: raw.info()?,
            fills: raw.fills()?,
        })
    }
}

/// The answer to `DELETE /api/v3/order` (and each element of `DELETE /api/v3/openOrders`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelResponse {
    /// `origClientOrderId`: the cancelled order's client id.
    pub orig_client_order_id: String,
    /// `clientOrderId`: the id of the cancel request itself.
    pub cancel_client_order_id: String,
    pub transact_time_ms: u64,
    /// The order after the cancel (`client_order_id` is the original one).
    pub info: OrderInfo,
}

impl CancelResponse {
    pub fn write(&self, out: &mut String) {
        out.push('{');
        put_str(out, "symbol", &self.info.symbol);
        put_str(out, "origClientOrderId", &self.orig_client_order_id);
        put_num(out, "orderId", self.info.order_id);
        put_num(out, "orderListId", -1);
        put_str(out, "clientOrderId", &self.cancel_client_order_id);
        put_num(out, "transactTime", self.transact_time_ms);
        self.info.write_detail(out);
        put_str(out, "selfTradePreventionMode", "NONE");
        close_object(out);
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(384);
        self.write(&mut out);
        out
    }

    fn from_raw(raw: &RawOrder<'_>) -> Result<CancelResponse, OrderError> {
        let orig = need(&raw.orig_client_order_id, "origClientOrderId")?.to_owned();
        let mut info = raw.info()?.ok_or(OrderError::Response {
            what: "cancel response",
            reason: "field `status` is missing".into(),
        })?;
        let cancel_id = std::mem::replace(&mut info.client_order_id, orig.clone());
        Ok(CancelResponse {
            orig_client_order_id: orig,
            cancel_client_order_id: cancel_id,
            transact_time_ms: raw.transact_time.unwrap_or(0),
            info,
        })
    }

    pub fn parse(body: &str) -> Result<CancelResponse, OrderError> {
        let raw: RawOrder<'_> = json(body, "cancel response")?;
        CancelResponse::from_raw(&raw)
    }

    /// `DELETE /api/v3/openOrders` answers an array of cancel responses.
    pub fn format_many(cancels: &[CancelResponse]) -> String {
        let mut out = String::with_capacity(2 + cancels.len() * 384);
        out.push('[');
        for (i, c) in cancels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            c.write(&mut out);
        }
        out.push(']');
        out
    }

    pub fn parse_many(body: &str) -> Result<Vec<CancelResponse>, OrderError> {
        let raw: Vec<RawOrder<'_>> = json(body, "cancel-all response")?;
        raw.iter().map(CancelResponse::from_raw).collect()
    }
}

/// `GET /api/v3/openOrders` answers an array of orders.
pub fn format_open_orders(orders: &[OrderInfo]) -> String {
    let mut out = String::with_capacity(2 + orders.len() * 448);
    out.push('[');
    for (i, o) in orders.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        o.write_open(&mut out);
    }
    out.push(']');
    out
}

pub fn parse_open_orders(body: &str) -> Result<Vec<OrderInfo>, OrderError> {
    let raw: Vec<RawOrder<'_>> = json(body, "open orders")?;
    raw.iter()
        .map(|r| {
            r.info()?.ok_or(OrderError::Response {
                what: "open orders",
                reason: "field `status` is missing".into(),
            })
        })
        .collect()
}

/// `GET /api/v3/order` answers the order in the shape of one element of
/// `GET /api/v3/openOrders` (Binance documents both alike).
pub fn order_json(info: &OrderInfo) -> String {
    let mut out = String::with_capacity(448);
    info.write_open(&mut out);
    out
}

pub fn parse_order(body: &str) -> Result<OrderInfo, OrderError> {
    let raw: RawOrder<'_> = json(body, "order")?;
    raw.info()?.ok_or(OrderError::Response {
        what: "order",
        reason: "field `status` is missing".into(),
    })
}

/// One trade of the account, as `GET /api/v3/myTrades` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeInfo {
    pub symbol: String,
    /// The trade id (`t` of the fill's `executionReport`, `tradeId` of a FULL response).
    pub id: u64,
    pub order_id: u64,
    pub price: Price,
    pub qty: Qty,
    /// `quoteQty`: price * qty.
    pub quote_qty: Cash,
    pub commission: Cash,
    pub commission_asset: String,
    /// When it traded, ms.
    pub time_ms: u64,
    /// The account's order was the buy.
    pub is_buyer: bool,
    /// The account's order was the maker.
    pub is_maker: bool,
}

impl TradeInfo {
    fn write(&self, out: &mut String) {
        out.push('{');
        put_str(out, "symbol", &self.symbol);
        put_num(out, "id", self.id);
        put_num(out, "orderId", self.order_id);
        put_num(out, "orderListId", -1);
        put_dec(out, "price", self.price.0);
        put_dec(out, "qty", self.qty.0);
        put_dec(out, "quoteQty", self.quote_qty);
        put_dec(out, "commission", self.commission);
        put_str(out, "commissionAsset", &self.commission_asset);
        put_num(out, "time", self.time_ms);
        put_num(out, "isBuyer", self.is_buyer);
        put_num(out, "isMaker", self.is_maker);
        put_num(out, "isBestMatch", true);
        close_object(out);
    }
}

/// `GET /api/v3/myTrades` answers an array of trades.
pub fn my_trades_json(trades: &[TradeInfo]) -> String {
    let mut out = String::with_capacity(2 + trades.len() * 288);
    out.push('[');
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        t.write(&mut out);
    }
    out.push(']');
    out
}

pub fn parse_my_trades(body: &str) -> Result<Vec<TradeInfo>, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RawTrade<'a> {
        #[serde(borrow)]
        symbol: Cow<'a, str>,
        id: u64,
        order_id: u64,
        #[serde(borrow)]
        price: Cow<'a, str>,
        #[serde(borrow)]
        qty: Cow<'a, str>,
        #[serde(borrow)]
        quote_qty: Cow<'a, str>,
        #[serde(borrow)]
        commission: Cow<'a, str>,
        #[serde(borrow)]
        commission_asset: Cow<'a, str>,
        time: u64,
        is_buyer: bool,
        is_maker: bool,
    }
    let raw: Vec<RawTrade<'_>> = json(body, "my trades")?;
    raw.into_iter()
        .map(|t| {
            Ok(TradeInfo {
                price: Price(dec_field(&t.price, "price")?),
                qty: Qty(dec_field(&t.qty, "qty")?),
                quote_qty: dec_field(&t.quote_qty, "quoteQty")?,
                commission: dec_field(&t.commission, "commission")?,
                symbol: t.symbol.into_owned(),
                id: t.id,
                order_id: t.order_id,
                commission_asset: t.commission_asset.into_owned(),
                time_ms: t.time,
                is_buyer: t.is_buyer,
                is_maker: t.is_maker,
            })
        })
        .collect()
}

/// `POST /api/v3/userDataStream` answers `{"listenKey":"..."}`.
pub fn format_listen_key(key: &str) -> String {
    let mut out = String::from("{\"listenKey\":");
    json_string(&mut out, key);
    out.push('}');
    out
}

pub fn parse_listen_key(body: &str) -> Result<String, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        listen_key: String,
    }
    let raw: Raw = json(body, "listen key")?;
    Ok(raw.listen_key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::binance::errors::ApiError;

    fn info() -> OrderInfo {
        OrderInfo {
            symbol: "BTCUSDT".into(),
            order_id: 3,
            client_order_id: "mm-3".into(),
            price: Price(6_000_000_000_000),
            orig_qty: Qty(300_000),
            executed_qty: Qty(100_000),
            cum_quote_qty: 6_000_000_000,
            status: OrderStatus::PartiallyFilled,
            time_in_force: TimeInForce::Gtc,
            order_type: OrderType::Limit,
            side: Side::Buy,
            time_ms: 1000,
            update_time_ms: 1000,
            is_working: true,
        }
    }

    #[test]
    fn order_responses_round_trip() {
        let info = info();
        let fills = vec![FillInfo {
            price: Price(6_000_000_000_000),
            qty: Qty(100_000),
            commission: 600_000,
            commission_asset: "USDT".into(),
            trade_id: 1,
        }];
        let ack = NewOrderResponse::format(RespType::Ack, &info, 1000, &fills);
        assert_eq!(
            ack,
            "{\"symbol\":\"BTCUSDT\",\"orderId\":3,\"orderListId\":-1,\
             \"clientOrderId\":\"mm-3\",\"transactTime\":1000}"
        );
        let parsed = NewOrderResponse::parse(&ack).unwrap();
        assert_eq!(parsed.info, None);
        assert_eq!(parsed.order_id, 3);
        let full = NewOrderResponse::format(RespType::Full, &info, 1000, &fills);
        let parsed = NewOrderResponse::parse(&full).unwrap();
        assert_eq!(parsed.info, Some(info.clone()));
        assert_eq!(parsed.fills, fills);
        let result = NewOrderResponse::format(RespType::Result, &info, 1000, &fills);
        assert!(NewOrderResponse::parse(&result).unwrap().fills.is_empty());

        let open = format_open_orders(std::slice::from_ref(&info));
        assert_eq!(parse_open_orders(&open), Ok(vec![info.clone()]));
        assert_eq!(parse_open_orders("[]"), Ok(vec![]));

        let mut cancelled = info;
        cancelled.status = OrderStatus::Canceled;
        cancelled.is_working = false;
        let cancel = CancelResponse {
            orig_client_order_id: "mm-3".into(),
            cancel_client_order_id: "cancel-1".into(),
            transact_time_ms: 2000,
            info: cancelled,
        };
        let text = cancel.to_json();
        assert!(text.contains("\"origClientOrderId\":\"mm-3\""));
        let mut expected = cancel.clone();
        // A cancel response carries no creation time nor working flag.
        expected.info.time_ms = 2000;
        expected.info.update_time_ms = 2000;
        assert_eq!(CancelResponse::parse(&text), Ok(expected.clone()));
        let many = CancelResponse::format_many(&[cancel.clone(), cancel]);
        assert_eq!(
            CancelResponse::parse_many(&many),
            Ok(vec![expected.clone(), expected])
        );
    }

    #[test]
    fn queried_orders_have_the_open_orders_shape() {
        let mut filled = info();
        filled.executed_qty = filled.orig_qty;
        filled.cum_quote_qty = 18_000_000_000;
        filled.status = OrderStatus::Filled;
        filled.is_working = false;
        filled.update_time_ms = 5000;
        let text = order_json(&filled);
        // The same object as an element of the open-orders list.
        assert_eq!(
            format_open_orders(std::slice::from_ref(&filled)),
            format!("[{text}]")
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut documented = vec![
            "symbol",
            "orderId",
            "orderListId",
            "clientOrderId",
            "price",
            "origQty",
            "executedQty",
            "cummulativeQuoteQty",
            "status",
            "timeInForce",
            "type",
            "side",
            "stopPrice",
            "icebergQty",
            "time",
            "updateTime",
            "isWorking",
            "workingTime",
            "origQuoteOrderQty",
            "selfTradePreventionMode",
        ];
        documented.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, documented);
        assert_eq!(parse_order(&text), Ok(filled));
        assert_eq!(parse_order(&order_json(&info())), Ok(info()));
        // Binance's documented example of the answer to `GET /api/v3/order`.
        let documented = r#"{
            "symbol": "LTCBTC",
            "orderId": 1,
            "orderListId": -1,
            "clientOrderId": "myOrder1",
            "price": "0.1",
            "origQty": "1.0",
            "executedQty": "0.0",
            "cummulativeQuoteQty": "0.0",
            "status": "NEW",
            "timeInForce": "GTC",
            "type": "LIMIT",
            "side": "BUY",
            "stopPrice": "0.0",
            "icebergQty": "0.0",
            "time": 1499827319559,
            "updateTime": 1499827319559,
            "isWorking": true,
            "workingTime": 1499827319559,
            "origQuoteOrderQty": "0.000000",
            "selfTradePreventionMode": "NONE"
        }"#;
        let o = parse_order(documented).unwrap();
        assert_eq!(
            (o.order_id, o.client_order_id.as_str(), o.status),
            (1, "myOrder1", OrderStatus::New)
        );
        assert_eq!((o.price, o.orig_qty), (Price(10_000_000), Qty::from_int(1)));
        assert_eq!((o.time_ms, o.is_working), (1_499_827_319_559, true));
        assert!(
            parse_order("{\"symbol\":\"BTCUSDT\",\"orderId\":1,\"clientOrderId\":\"a\"}").is_err()
        );
        assert!(parse_order("[]").is_err());
    }

    fn trade(id: u64, is_buyer: bool, is_maker: bool) -> TradeInfo {
        TradeInfo {
            symbol: "BTCUSDT".into(),
            id,
            order_id: 17,
            price: Price(6_183_763_000_000),
            qty: Qty(100_000),
            quote_qty: 6_183_763_000,
            commission: if is_maker { -6_184 } else { 6_184 },
            commission_asset: "USDT".into(),
            time_ms: 1_723_161_253_001,
            is_buyer,
            is_maker,
        }
    }

    #[test]
    fn my_trades_round_trip_with_binance_field_names() {
        let trades = vec![trade(9, true, true), trade(10, false, false)];
        let text = my_trades_json(&trades);
        assert_eq!(
            &text[..text.find("},{").unwrap() + 1],
            "[{\"symbol\":\"BTCUSDT\",\"id\":9,\"orderId\":17,\"orderListId\":-1,\
             \"price\":\"61837.63000000\",\"qty\":\"0.00100000\",\"quoteQty\":\"61.83763000\",\
             \"commission\":\"-0.00006184\",\"commissionAsset\":\"USDT\",\
             \"time\":1723161253001,\"isBuyer\":true,\"isMaker\":true,\"isBestMatch\":true}"
        );
        assert_eq!(parse_my_trades(&text), Ok(trades));
        assert_eq!(my_trades_json(&[]), "[]");
        assert_eq!(parse_my_trades("[]"), Ok(vec![]));
    }

    #[test]
    fn parses_binances_documented_my_trades_example() {
        // The Response of "Account trade list (USER_DATA)", `GET /api/v3/myTrades`.
        let body = r#"[
  {
    "symbol": "BNBBTC",
    "id": 28457,
    "orderId": 100234,
    "orderListId": -1,
    "price": "4.00000100",
    "qty": "12.00000000",
    "quoteQty": "48.000012",
    "commission": "10.10000000",
    "commissionAsset": "BNB",
    "time": 1499865549590,
    "isBuyer": true,
    "isMaker": false,
    "isBestMatch": true
  }
]"#;
        assert_eq!(
            parse_my_trades(body),
            Ok(vec![TradeInfo {
                symbol: "BNBBTC".into(),
                id: 28457,
                order_id: 100_234,
                price: Price(400_000_100),
                qty: Qty(1_200_000_000),
                quote_qty: 4_800_001_200,
                commission: 1_010_000_000,
                commission_asset: "BNB".into(),
                time_ms: 1_499_865_549_590,
                is_buyer: true,
                is_maker: false,
            }])
        );
        // Fields this codec does not know are tolerated; a missing one or a float is not.
        let extra = body.replace(
            "\"isBestMatch\"",
            "\"future\": {\"x\": [1]}, \"isBestMatch\"",
        );
        assert_eq!(parse_my_trades(&extra).unwrap().len(), 1);
        assert!(parse_my_trades(&body.replace("\"orderId\": 100234,", "")).is_err());
        let err = parse_my_trades(&body.replace("\"10.10000000\"", "\"1e1\"")).unwrap_err();
        assert!(matches!(
            err,
            OrderError::Invalid {
                name: "commission",
                ..
            }
        ));
        assert!(parse_my_trades(&body.replace("\"4.00000100\"", "4.000001")).is_err());
    }

    #[test]
    fn error_bodies_and_listen_keys() {
        let err = ApiError::new(-2010, "Order would immediately match and take.");
        let text = err.to_json();
        assert_eq!(
            text,
            "{\"code\":-2010,\"msg\":\"Order would immediately match and take.\"}"
        );
        assert_eq!(ApiError::parse(&text), Ok(err));
        let quoted = ApiError::new(-1100, "bad \"x\"\n");
        assert_eq!(ApiError::parse(&quoted.to_json()), Ok(quoted));
        assert_eq!(ApiError::new(-1015, "").http_status(), 429);
        let e = OrderError::Missing("symbol").to_api_error();
        assert_eq!(e.code, -1102);
        assert!(e.msg.contains("'symbol'"));
        assert!(ApiError::parse("{\"code\":\"x\"}").is_err());
        assert_eq!(
            parse_listen_key(&format_listen_key("abc123")),
            Ok("abc123".into())
        );
    }
}
