//! Binance USD-M futures order entry as Binance documents it (derivatives docs, "USDⓈ-M
//! Futures"), without I/O: shared by the sim venue (server side) and the engine's gateway
//! (client side, through [`super::USdmExecution`]).
//!
//! - Requests: `POST /fapi/v1/order` ([`FuturesOrder`]: `positionSide`, `reduceOnly`,
//!   `timeInForce` `GTX` for post-only); cancels, queries and the account's trades take the
//!   same parameters as on spot (`symbol` + `orderId`/`origClientOrderId`; `orderId`,
//!   `fromId`, `limit`), so the spot request types ([`super::requests`]) serve for them on the
//!   `/fapi` paths below.
//! - Answers: an order ([`FuturesOrderInfo`], the shape of `GET /fapi/v1/order` and of the
//!   order and cancel answers), the account's trades ([`FuturesTrade`], `GET
//!   /fapi/v1/userTrades`, with `realizedPnl`), balances (`GET /fapi/v2/balance`), positions
//!   (`GET /fapi/v2/positionRisk`, [`PositionRisk`] with `liquidationPrice`), the position
//!   mode (`GET /fapi/v1/positionSide/dual`), leverage (`POST /fapi/v1/leverage`) and the
//!   symbol filters (`GET /fapi/v1/exchangeInfo`, `MIN_NOTIONAL.notional`).
//! - The user data stream (`POST /fapi/v1/listenKey`, `/ws/<listenKey>`):
//!   `ORDER_TRADE_UPDATE` ([`OrderTradeUpdate`]), `ACCOUNT_UPDATE` ([`AccountUpdate`], with its
//!   reason: `ORDER`, `FUNDING_FEE`, ...), and `listenKeyExpired`.
//! - Market data it adds to spot's: `<symbol>@markPrice` ([`MarkPriceUpdate`]).
//!
//! Decimals are 10^-8 fixed point here and decimal strings on the wire, as on spot.

use std::borrow::Cow;

use rt_core::{Cash, Price, Qty, Side};
use serde::Deserialize;

use super::account::SymbolFilters;
use super::errors::OrderError;
use super::query::{Params, QueryBuilder, Timing};
use super::requests::{positive, NewOrder};
use super::vocab::{parse_side, side_str, OrderStatus, OrderType, StpMode, TimeInForce};
use super::wire::{close_object, dec_field, json, put_dec, put_num, put_str, short_units};
use crate::execution::PositionSide;

/// New order (`POST`), cancel (`DELETE`), query (`GET`).
pub const ORDER_PATH: &str = "/fapi/v1/order";
/// Cancel every open order of a symbol (`DELETE`).
pub const ALL_OPEN_ORDERS_PATH: &str = "/fapi/v1/allOpenOrders";
/// The open orders (`GET`).
pub const OPEN_ORDERS_PATH: &str = "/fapi/v1/openOrders";
/// The account's trades of a symbol (`GET`).
pub const USER_TRADES_PATH: &str = "/fapi/v1/userTrades";
/// Largest `limit` of `GET /fapi/v1/userTrades` (default 500).
pub const MAX_USER_TRADES_LIMIT: u32 = 1000;
/// Create (`POST`), keep alive (`PUT`), close (`DELETE`) the user stream's key.
pub const LISTEN_KEY_PATH: &str = "/fapi/v1/listenKey";
/// The account's balances (`GET`).
pub const BALANCE_PATH: &str = "/fapi/v2/balance";
/// Symbol filters (`GET`).
pub const EXCHANGE_INFO_PATH: &str = "/fapi/v1/exchangeInfo";
/// Depth snapshot (`GET`).
pub const DEPTH_PATH: &str = "/fapi/v1/depth";
/// A symbol's initial leverage (`POST symbol, leverage`).
pub const LEVERAGE_PATH: &str = "/fapi/v1/leverage";
/// A symbol's margin type (`POST symbol, marginType=ISOLATED|CROSSED`).
pub const MARGIN_TYPE_PATH: &str = "/fapi/v1/marginType";
/// The position mode (`GET`: `{"dualSidePosition":bool}`; `POST dualSidePosition`).
pub const POSITION_MODE_PATH: &str = "/fapi/v1/positionSide/dual";
/// Positions with their mark, leverage, margin type and liquidation price (`GET`).
pub const POSITION_RISK_PATH: &str = "/fapi/v2/positionRisk";

/// Binance: the margin type is already the one asked for (`-4046 No need to change margin
/// type.`): success for a client that sets it at every start.
pub const NO_NEED_TO_CHANGE_MARGIN_TYPE: i32 = -4046;
/// A post-only (`GTX`) order that would take is refused (`-5022`).
pub const POST_ONLY_REJECTED: i32 = -5022;
/// A reduce-only order that would not reduce the position (`-2022`).
pub const REDUCE_ONLY_REJECTED: i32 = -2022;

/// `timeInForce` of a futures order: spot's GTC and IOC, and GTX (post-only: good till
/// crossing, refused when it would take).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuturesTif {
    Gtc,
    Ioc,
    Gtx,
}

impl FuturesTif {
    pub const fn as_str(self) -> &'static str {
        match self {
            FuturesTif::Gtc => "GTC",
            FuturesTif::Ioc => "IOC",
            FuturesTif::Gtx => "GTX",
        }
    }

    pub fn parse(text: &str) -> Result<FuturesTif, OrderError> {
        match text {
            "GTC" => Ok(FuturesTif::Gtc),
            "IOC" => Ok(FuturesTif::Ioc),
            "GTX" => Ok(FuturesTif::Gtx),
            _ => Err(OrderError::Invalid {
                name: "timeInForce",
                value: text.to_owned(),
                reason: "expected GTC, IOC or GTX",
            }),
        }
    }
}

/// `positionSide` on the wire.
pub const fn position_side_str(side: PositionSide) -> &'static str {
    match side {
        PositionSide::Both => "BOTH",
        PositionSide::Long => "LONG",
        PositionSide::Short => "SHORT",
    }
}

pub fn parse_position_side(text: &str) -> Result<PositionSide, OrderError> {
    match text {
        "BOTH" => Ok(PositionSide::Both),
        "LONG" => Ok(PositionSide::Long),
        "SHORT" => Ok(PositionSide::Short),
        _ => Err(OrderError::Invalid {
            name: "positionSide",
            value: text.to_owned(),
            reason: "expected BOTH, LONG or SHORT",
        }),
    }
}

/// Margin type of a symbol's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarginType {
    Cross,
    Isolated,
}

impl MarginType {
    /// As `POST /fapi/v1/marginType` takes it (`CROSSED`, `ISOLATED`).
    pub const fn request_str(self) -> &'static str {
        match self {
            MarginType::Cross => "CROSSED",
            MarginType::Isolated => "ISOLATED",
        }
    }

    /// As positions show it (`cross`, `isolated`).
    pub const fn shown_str(self) -> &'static str {
        match self {
            MarginType::Cross => "cross",
            MarginType::Isolated => "isolated",
        }
    }

    /// Either spelling, any case.
    pub fn parse(text: &str) -> Result<MarginType, OrderError> {
        match text.to_ascii_lowercase().as_str() {
            "cross" | "crossed" => Ok(MarginType::Cross),
            "isolated" => Ok(MarginType::Isolated),
            _ => Err(OrderError::Invalid {
                name: "marginType",
                value: text.to_owned(),
                reason: "expected ISOLATED or CROSSED",
            }),
        }
    }
}

/// `POST /fapi/v1/order` (LIMIT and MARKET; the engine sends no conditional orders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuturesOrder {
    pub symbol: String,
    pub side: Side,
    pub position_side: PositionSide,
    /// LIMIT or MARKET.
    pub order_type: OrderType,
    /// Required for LIMIT, refused for MARKET.
    pub time_in_force: Option<FuturesTif>,
    pub quantity: Qty,
    /// May only reduce the position (one-way mode only).
    pub reduce_only: bool,
    pub price: Option<Price>,
    pub new_client_order_id: Option<String>,
    pub self_trade_prevention_mode: Option<StpMode>,
    pub timing: Timing,
}

impl FuturesOrder {
    /// The order for a core order kind: LIMIT GTC, LIMIT IOC, LIMIT GTX (post-only), MARKET.
    pub fn from_kind(
        symbol: &str,
        side: Side,
        kind: rt_core::OrderKind,
        price: Price,
        quantity: Qty,
        client_order_id: Option<String>,
        timing: Timing,
    ) -> FuturesOrder {
        use rt_core::OrderKind as K;
        let (order_type, time_in_force, price) = match kind {
            K::Limit => (OrderType::Limit, Some(FuturesTif::Gtc), Some(price)),
            K::Ioc => (OrderType::Limit, Some(FuturesTif::Ioc), Some(price)),
            K::PostOnly => (OrderType::Limit, Some(FuturesTif::Gtx), Some(price)),
            K::Market => (OrderType::Market, None, None),
        };
        FuturesOrder {
            symbol: symbol.to_owned(),
            side,
            position_side: PositionSide::Both,
            order_type,
            time_in_force,
            quantity,
            reduce_only: false,
            price,
            new_client_order_id: client_order_id,
            self_trade_prevention_mode: None,
            timing,
        }
    }

    /// The unsigned query string, parameters in Binance's documented order.
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        q.put("symbol", &self.symbol)
            .put("side", side_str(self.side))
            .put("positionSide", position_side_str(self.position_side))
            .put("type", self.order_type.as_str())
            .put_opt("timeInForce", self.time_in_force.map(FuturesTif::as_str))
            .put("quantity", &short_units(self.quantity.0))
            .put_opt("reduceOnly", self.reduce_only.then_some("true"))
            .put_opt("price", self.price.map(|p| short_units(p.0)).as_deref())
            .put_opt("newClientOrderId", self.new_client_order_id.as_deref())
            .put_opt(
                "selfTradePreventionMode",
                self.self_trade_prevention_mode.map(StpMode::as_str),
            );
        self.timing.put(&mut q);
        q.0
    }

    /// Parses the params of a new order (signature split off), with Binance's rules.
    pub fn parse(params: &str) -> Result<FuturesOrder, OrderError> {
        let mut p = Params::parse(params)?;
        let symbol = p.symbol()?;
        let side = parse_side(&p.required("side")?, "side")?;
        let position_side = p
            .take("positionSide")
            .map(|s| parse_position_side(&s))
            .transpose()?
            .unwrap_or(PositionSide::Both);
        let order_type = OrderType::parse(&p.required("type")?)?;
        if order_type == OrderType::LimitMaker {
            return Err(OrderError::Invalid {
                name: "type",
                value: "LIMIT_MAKER".into(),
                reason: "not a futures order type (post-only is LIMIT with timeInForce GTX)",
            });
        }
        let time_in_force = p
            .take("timeInForce")
            .map(|t| FuturesTif::parse(&t))
            .transpose()?;
        let quantity = Qty(positive(&p.required("quantity")?, "quantity")?);
        let reduce_only = match p.take("reduceOnly").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(OrderError::Invalid {
                    name: "reduceOnly",
                    value: other.to_owned(),
                    reason: "expected true or false",
                })
            }
        };
        if reduce_only && position_side != PositionSide::Both {
            return Err(OrderError::Invalid {
                name: "reduceOnly",
                value: "true".into(),
                reason: "cannot be sent in hedge mode",
            });
        }
        let price = p
            .take("price")
            .map(|v| positive(&v, "price").map(Price))
            .transpose()?;
        let new_client_order_id = p.client_id("newClientOrderId")?;
        let self_trade_prevention_mode = p
            .take("selfTradePreventionMode")
            .map(|t| StpMode::parse(&t))
            .transpose()?;
        // Accepted and ignored: the answer's shape.
        p.take("newOrderRespType");
        let timing = p.timing()?;
        match order_type {
            OrderType::Market if time_in_force.is_some() => {
                return Err(OrderError::NotRequired("timeInForce"))
            }
            OrderType::Market if price.is_some() => return Err(OrderError::NotRequired("price")),
            OrderType::Limit if time_in_force.is_none() => {
                return Err(OrderError::Missing("timeInForce"))
            }
            OrderType::Limit if price.is_none() => return Err(OrderError::Missing("price")),
            _ => {}
        }
        p.finish()?;
        Ok(FuturesOrder {
            symbol,
            side,
            position_side,
            order_type,
            time_in_force,
            quantity,
            reduce_only,
            price,
            new_client_order_id,
            self_trade_prevention_mode,
            timing,
        })
    }

    /// How a matcher executes it: the spot order of the same kind (GTX is LIMIT_MAKER).
    pub fn to_spot(&self) -> NewOrder {
        let kind = match (self.order_type, self.time_in_force) {
            (OrderType::Market, _) => rt_core::OrderKind::Market,
            (_, Some(FuturesTif::Ioc)) => rt_core::OrderKind::Ioc,
            (_, Some(FuturesTif::Gtx)) => rt_core::OrderKind::PostOnly,
            _ => rt_core::OrderKind::Limit,
        };
        let mut spot = NewOrder::from_kind(
            &self.symbol,
            self.side,
            kind,
            self.price.unwrap_or(Price::ZERO),
            self.quantity,
            self.new_client_order_id.clone(),
            self.timing,
        );
        spot.self_trade_prevention_mode = self.self_trade_prevention_mode;
        spot.new_order_resp_type = Some(super::vocab::RespType::Result);
        spot
    }
}

/// `POST /fapi/v1/leverage` and `POST /fapi/v1/marginType`: a symbol and its setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolSetting {
    pub symbol: String,
    /// `leverage=<1..125>` or `marginType=<ISOLATED|CROSSED>`.
    pub setting: Setting,
    pub timing: Timing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Leverage(u32),
    MarginType(MarginType),
}

impl SymbolSetting {
    pub fn to_query(&self) -> String {
        let mut q = QueryBuilder::default();
        q.put("symbol", &self.symbol);
        match self.setting {
            Setting::Leverage(l) => q.put("leverage", &l.to_string()),
            Setting::MarginType(m) => q.put("marginType", m.request_str()),
        };
        self.timing.put(&mut q);
        q.0
    }

    /// Parses one of the two (the path says which is expected: `leverage` picks it).
    pub fn parse(params: &str, leverage: bool) -> Result<SymbolSetting, OrderError> {
        let mut p = Params::parse(params)?;
        let symbol = p.symbol()?;
        let setting = if leverage {
            let text = p.required("leverage")?;
            match text.parse::<u32>() {
                Ok(l) if (1..=125).contains(&l) => Setting::Leverage(l),
                _ => {
                    return Err(OrderError::Invalid {
                        name: "leverage",
                        value: text.into_owned(),
                        reason: "expected an integer 1-125",
                    })
                }
            }
        } else {
            Setting::MarginType(MarginType::parse(&p.required("marginType")?)?)
        };
        let timing = p.timing()?;
        p.finish()?;
        Ok(SymbolSetting {
            symbol,
            setting,
            timing,
        })
    }
}

/// `{"dualSidePosition":true|false}`: hedge mode (true) or one-way mode.
pub fn format_position_mode(dual: bool) -> String {
    format!("{{\"dualSidePosition\":{dual}}}")
}

pub fn parse_position_mode(body: &str) -> Result<bool, OrderError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "dualSidePosition")]
        dual: bool,
    }
    let raw: Raw = json(body, "positionSide/dual")?;
    Ok(raw.dual)
}

/// The answer to `POST /fapi/v1/leverage`: the leverage now in force.
pub fn format_leverage(symbol: &str, leverage: u32, max_notional: i64) -> String {
    let mut out = String::from("{");
    put_num(&mut out, "leverage", leverage);
    put_dec(&mut out, "maxNotionalValue", max_notional);
    put_str(&mut out, "symbol", symbol);
    close_object(&mut out);
    out
}

pub fn parse_leverage(body: &str) -> Result<u32, OrderError> {
    #[derive(Deserialize)]
    struct Raw {
        leverage: u32,
    }
    let raw: Raw = json(body, "leverage")?;
    Ok(raw.leverage)
}

/// An order as `/fapi/v1/order` answers it (new, cancel, query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuturesOrderInfo {
    pub symbol: String,
    pub order_id: u64,
    pub client_order_id: String,
    pub price: Price,
    pub avg_price: Price,
    pub orig_qty: Qty,
    pub executed_qty: Qty,
    pub cum_quote: Cash,
    pub status: OrderStatus,
    /// `GTC`, `IOC`, `GTX`.
    pub time_in_force: FuturesTif,
    pub order_type: OrderType,
    pub side: Side,
    pub reduce_only: bool,
    pub position_side: PositionSide,
    pub self_trade_prevention_mode: StpMode,
    pub time_ms: u64,
    pub update_time_ms: u64,
}

impl FuturesOrderInfo {
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        put_dec(out, "avgPrice", self.avg_price.0);
        put_str(out, "clientOrderId", &self.client_order_id);
        put_dec(out, "cumQuote", self.cum_quote);
        put_dec(out, "executedQty", self.executed_qty.0);
        put_num(out, "orderId", self.order_id);
        put_dec(out, "origQty", self.orig_qty.0);
        put_str(out, "origType", self.order_type.as_str());
        put_dec(out, "price", self.price.0);
        put_num(out, "reduceOnly", self.reduce_only);
        put_str(out, "side", side_str(self.side));
        put_str(out, "positionSide", position_side_str(self.position_side));
        put_str(out, "status", self.status.as_str());
        put_dec(out, "stopPrice", 0);
        put_num(out, "closePosition", false);
        put_str(out, "symbol", &self.symbol);
        put_num(out, "time", self.time_ms);
        put_str(out, "timeInForce", self.time_in_force.as_str());
        put_str(out, "type", self.order_type.as_str());
        put_num(out, "updateTime", self.update_time_ms);
        put_str(out, "workingType", "CONTRACT_PRICE");
        put_num(out, "priceProtect", false);
        put_str(out, "priceMatch", "NONE");
        put_str(
            out,
            "selfTradePreventionMode",
            self.self_trade_prevention_mode.as_str(),
        );
        put_num(out, "goodTillDate", 0);
        close_object(out);
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512);
        self.write_json(&mut out);
        out
    }

    pub fn parse(body: &str) -> Result<FuturesOrderInfo, OrderError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw<'a> {
            #[serde(borrow)]
            symbol: Cow<'a, str>,
            order_id: u64,
            #[serde(borrow)]
            client_order_id: Cow<'a, str>,
            #[serde(borrow)]
            price: Cow<'a, str>,
            #[serde(borrow, default)]
            avg_price: Option<Cow<'a, str>>,
            #[serde(borrow)]
            orig_qty: Cow<'a, str>,
            #[serde(borrow)]
            executed_qty: Cow<'a, str>,
            #[serde(borrow, default)]
            cum_quote: Option<Cow<'a, str>>,
            #[serde(borrow)]
            status: Cow<'a, str>,
            #[serde(borrow)]
            time_in_force: Cow<'a, str>,
            #[serde(rename = "type", borrow)]
            order_type: Cow<'a, str>,
            #[serde(borrow)]
            side: Cow<'a, str>,
            #[serde(default)]
            reduce_only: bool,
            #[serde(borrow, default)]
            position_side: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            self_trade_prevention_mode: Option<Cow<'a, str>>,
            #[serde(default)]
            time: u64,
            #[serde(default)]
            update_time: u64,
        }
        let r: Raw<'_> = json(body, "order")?;
        let opt_dec =
            |v: &Option<Cow<'_, str>>, name| v.as_deref().map_or(Ok(0), |t| dec_field(t, name));
        Ok(FuturesOrderInfo {
            symbol: r.symbol.into_owned(),
            order_id: r.order_id,
            client_order_id: r.client_order_id.into_owned(),
            price: Price(dec_field(&r.price, "price")?),
            avg_price: Price(opt_dec(&r.avg_price, "avgPrice")?),
            orig_qty: Qty(dec_field(&r.orig_qty, "origQty")?),
            executed_qty: Qty(dec_field(&r.executed_qty, "executedQty")?),
            cum_quote: opt_dec(&r.cum_quote, "cumQuote")?,
            status: OrderStatus::parse(&r.status)?,
            time_in_force: FuturesTif::parse(&r.time_in_force)?,
            order_type: OrderType::parse(&r.order_type)?,
            side: parse_side(&r.side, "side")?,
            reduce_only: r.reduce_only,
            position_side: r
                .position_side
                .as_deref()
                .map_or(Ok(PositionSide::Both), parse_position_side)?,
            self_trade_prevention_mode: r
                .self_trade_prevention_mode
                .as_deref()
                .map_or(Ok(StpMode::None), StpMode::parse)?,
            time_ms: r.time,
            update_time_ms: r.update_time,
        })
    }

    /// A spot order's fields in this shape (the sim keeps its orders in spot's shape).
    pub fn from_spot(
        info: &super::rest::OrderInfo,
        gtx: bool,
        reduce_only: bool,
        stp: StpMode,
    ) -> FuturesOrderInfo {
        let avg = if info.executed_qty.0 > 0 {
            let q = i128::from(info.cum_quote_qty) * i128::from(rt_core::SCALE)
                / i128::from(info.executed_qty.0);
            Price(i64::try_from(q).unwrap_or(0))
        } else {
            Price::ZERO
        };
        let (order_type, tif) = match info.order_type {
            OrderType::Market => (OrderType::Market, FuturesTif::Gtc),
            OrderType::LimitMaker => (OrderType::Limit, FuturesTif::Gtx),
            OrderType::Limit => (
                OrderType::Limit,
                match info.time_in_force {
                    TimeInForce::Ioc => FuturesTif::Ioc,
                    TimeInForce::Gtc if gtx => FuturesTif::Gtx,
                    TimeInForce::Gtc => FuturesTif::Gtc,
                },
            ),
        };
        FuturesOrderInfo {
            symbol: info.symbol.clone(),
            order_id: info.order_id,
            client_order_id: info.client_order_id.clone(),
            price: info.price,
            avg_price: avg,
            orig_qty: info.orig_qty,
            executed_qty: info.executed_qty,
            cum_quote: info.cum_quote_qty,
            // Futures has no EXPIRED_IN_MATCH on the order itself before 2023; it shows it now.
            status: info.status,
            time_in_force: tif,
            order_type,
            side: info.side,
            reduce_only,
            position_side: PositionSide::Both,
            self_trade_prevention_mode: stp,
            time_ms: info.time_ms,
            update_time_ms: info.update_time_ms,
        }
    }
}

/// One trade of the account, as `GET /fapi/v1/userTrades` answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuturesTrade {
    pub symbol: String,
    pub id: u64,
    pub order_id: u64,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub quote_qty: Cash,
    pub realized_pnl: Cash,
    pub commission: Cash,
    pub commission_asset: String,
    pub time_ms: u64,
    pub is_maker: bool,
}

pub fn format_user_trades(trades: &[FuturesTrade]) -> String {
    let mut out = String::with_capacity(64 + trades.len() * 320);
    out.push('[');
    for t in trades {
        out.push('{');
        put_num(&mut out, "buyer", t.side == Side::Buy);
        put_dec(&mut out, "commission", t.commission);
        put_str(&mut out, "commissionAsset", &t.commission_asset);
        put_num(&mut out, "id", t.id);
        put_num(&mut out, "maker", t.is_maker);
        put_num(&mut out, "orderId", t.order_id);
        put_dec(&mut out, "price", t.price.0);
        put_dec(&mut out, "qty", t.qty.0);
        put_dec(&mut out, "quoteQty", t.quote_qty);
        put_dec(&mut out, "realizedPnl", t.realized_pnl);
        put_str(&mut out, "side", side_str(t.side));
        put_str(&mut out, "positionSide", "BOTH");
        put_str(&mut out, "symbol", &t.symbol);
        put_num(&mut out, "time", t.time_ms);
        close_object(&mut out);
        out.push(',');
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push(']');
    out
}

pub fn parse_user_trades(body: &str) -> Result<Vec<FuturesTrade>, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw<'a> {
        #[serde(borrow)]
        symbol: Cow<'a, str>,
        id: u64,
        order_id: u64,
        #[serde(borrow)]
        side: Cow<'a, str>,
        #[serde(borrow)]
        price: Cow<'a, str>,
        #[serde(borrow)]
        qty: Cow<'a, str>,
        #[serde(borrow, default)]
        quote_qty: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        realized_pnl: Option<Cow<'a, str>>,
        #[serde(borrow)]
        commission: Cow<'a, str>,
        #[serde(borrow)]
        commission_asset: Cow<'a, str>,
        #[serde(default)]
        time: u64,
        maker: bool,
    }
    let raw: Vec<Raw<'_>> = json(body, "userTrades")?;
    raw.into_iter()
        .map(|r| {
            let opt =
                |v: &Option<Cow<'_, str>>, name| v.as_deref().map_or(Ok(0), |t| dec_field(t, name));
            Ok(FuturesTrade {
                symbol: r.symbol.into_owned(),
                id: r.id,
                order_id: r.order_id,
                side: parse_side(&r.side, "side")?,
                price: Price(dec_field(&r.price, "price")?),
                qty: Qty(dec_field(&r.qty, "qty")?),
                quote_qty: opt(&r.quote_qty, "quoteQty")?,
                realized_pnl: opt(&r.realized_pnl, "realizedPnl")?,
                // Binance's documentation shows the commission negative in places: its
                // magnitude is what was charged.
                commission: dec_field(&r.commission, "commission")?.abs(),
                commission_asset: r.commission_asset.into_owned(),
                time_ms: r.time,
                is_maker: r.maker,
            })
        })
        .collect()
}

/// One asset of `GET /fapi/v2/balance`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuturesBalance {
    pub asset: String,
    /// The wallet balance.
    pub balance: i64,
    pub cross_wallet_balance: i64,
    pub cross_un_pnl: i64,
    pub available_balance: i64,
}

pub fn format_balances(balances: &[FuturesBalance], update_time_ms: u64) -> String {
    let mut out = String::from("[");
    for b in balances {
        out.push('{');
        put_str(&mut out, "accountAlias", "sim");
        put_str(&mut out, "asset", &b.asset);
        put_dec(&mut out, "balance", b.balance);
        put_dec(&mut out, "crossWalletBalance", b.cross_wallet_balance);
        put_dec(&mut out, "crossUnPnl", b.cross_un_pnl);
        put_dec(&mut out, "availableBalance", b.available_balance);
        put_dec(&mut out, "maxWithdrawAmount", b.available_balance);
        put_num(&mut out, "marginAvailable", true);
        put_num(&mut out, "updateTime", update_time_ms);
        close_object(&mut out);
        out.push(',');
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push(']');
    out
}

pub fn parse_balances(body: &str) -> Result<Vec<FuturesBalance>, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw<'a> {
        #[serde(borrow)]
        asset: Cow<'a, str>,
        #[serde(borrow)]
        balance: Cow<'a, str>,
        #[serde(borrow, default)]
        cross_wallet_balance: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        cross_un_pnl: Option<Cow<'a, str>>,
        #[serde(borrow)]
        available_balance: Cow<'a, str>,
    }
    let raw: Vec<Raw<'_>> = json(body, "balance")?;
    raw.into_iter()
        .map(|r| {
            let opt =
                |v: &Option<Cow<'_, str>>, name| v.as_deref().map_or(Ok(0), |t| dec_field(t, name));
            Ok(FuturesBalance {
                asset: r.asset.into_owned(),
                balance: dec_field(&r.balance, "balance")?,
                cross_wallet_balance: opt(&r.cross_wallet_balance, "crossWalletBalance")?,
                cross_un_pnl: opt(&r.cross_un_pnl, "crossUnPnl")?,
                available_balance: dec_field(&r.available_balance, "availableBalance")?,
            })
        })
        .collect()
}

/// One position of `GET /fapi/v2/positionRisk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionRisk {
    pub symbol: String,
    /// Signed: positive long, negative short.
    pub position_amt: i64,
    pub entry_price: Price,
    pub mark_price: Price,
    pub unrealized_profit: Cash,
    /// 0 without a position.
    pub liquidation_price: Price,
    pub leverage: u32,
    pub margin_type: MarginType,
    pub isolated_margin: Cash,
    pub position_side: PositionSide,
}

pub fn format_position_risk(positions: &[PositionRisk], update_time_ms: u64) -> String {
    let mut out = String::from("[");
    for p in positions {
        out.push('{');
        put_str(&mut out, "symbol", &p.symbol);
        put_dec(&mut out, "positionAmt", p.position_amt);
        put_dec(&mut out, "entryPrice", p.entry_price.0);
        put_dec(&mut out, "markPrice", p.mark_price.0);
        put_dec(&mut out, "unRealizedProfit", p.unrealized_profit);
        put_dec(&mut out, "liquidationPrice", p.liquidation_price.0);
        put_str(&mut out, "leverage", &p.leverage.to_string());
        put_str(&mut out, "marginType", p.margin_type.shown_str());
        put_dec(&mut out, "isolatedMargin", p.isolated_margin);
        put_str(&mut out, "positionSide", position_side_str(p.position_side));
        put_num(&mut out, "updateTime", update_time_ms);
        close_object(&mut out);
        out.push(',');
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push(']');
    out
}

pub fn parse_position_risk(body: &str) -> Result<Vec<PositionRisk>, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw<'a> {
        #[serde(borrow)]
        symbol: Cow<'a, str>,
        #[serde(borrow)]
        position_amt: Cow<'a, str>,
        #[serde(borrow)]
        entry_price: Cow<'a, str>,
        #[serde(borrow)]
        mark_price: Cow<'a, str>,
        #[serde(borrow)]
        un_realized_profit: Cow<'a, str>,
        #[serde(borrow)]
        liquidation_price: Cow<'a, str>,
        #[serde(borrow)]
        leverage: Cow<'a, str>,
        #[serde(borrow)]
        margin_type: Cow<'a, str>,
        #[serde(borrow, default)]
        isolated_margin: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        position_side: Option<Cow<'a, str>>,
    }
    let raw: Vec<Raw<'_>> = json(body, "positionRisk")?;
    raw.into_iter()
        .map(|r| {
            Ok(PositionRisk {
                symbol: r.symbol.into_owned(),
                position_amt: dec_field(&r.position_amt, "positionAmt")?,
                entry_price: Price(dec_field(&r.entry_price, "entryPrice")?),
                mark_price: Price(dec_field(&r.mark_price, "markPrice")?),
                unrealized_profit: dec_field(&r.un_realized_profit, "unRealizedProfit")?,
                liquidation_price: Price(dec_field(&r.liquidation_price, "liquidationPrice")?),
                leverage: r.leverage.parse().map_err(|_| OrderError::Invalid {
                    name: "leverage",
                    value: r.leverage.clone().into_owned(),
                    reason: "not an integer",
                })?,
                margin_type: MarginType::parse(&r.margin_type)?,
                isolated_margin: r
                    .isolated_margin
                    .as_deref()
                    .map_or(Ok(0), |t| dec_field(t, "isolatedMargin"))?,
                position_side: r
                    .position_side
                    .as_deref()
                    .map_or(Ok(PositionSide::Both), parse_position_side)?,
            })
        })
        .collect()
}

/// `GET /fapi/v1/exchangeInfo` for the given symbols (perpetuals, `MIN_NOTIONAL.notional`).
pub fn format_exchange_info(symbols: &[SymbolFilters], server_time_ms: u64) -> String {
    let mut out = String::from("{\"timezone\":\"UTC\",");
    put_num(&mut out, "serverTime", server_time_ms);
    out.push_str("\"symbols\":[");
    for s in symbols {
        out.push('{');
        put_str(&mut out, "symbol", &s.symbol);
        put_str(&mut out, "pair", &s.symbol);
        put_str(&mut out, "contractType", "PERPETUAL");
        put_str(&mut out, "status", "TRADING");
        put_str(&mut out, "baseAsset", &s.base_asset);
        put_str(&mut out, "quoteAsset", &s.quote_asset);
        put_str(&mut out, "marginAsset", &s.quote_asset);
        out.push_str("\"filters\":[{\"filterType\":\"PRICE_FILTER\",");
        put_dec(&mut out, "tickSize", s.tick_size);
        close_object(&mut out);
        out.push_str(",{\"filterType\":\"LOT_SIZE\",");
        put_dec(&mut out, "stepSize", s.step_size);
        close_object(&mut out);
        out.push_str(",{\"filterType\":\"MIN_NOTIONAL\",");
        put_dec(&mut out, "notional", s.min_notional);
        close_object(&mut out);
        out.push_str("]},");
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push_str("]}");
    out
}

pub fn parse_exchange_info(body: &str) -> Result<Vec<SymbolFilters>, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Filter<'a> {
        #[serde(borrow)]
        filter_type: Cow<'a, str>,
        #[serde(borrow, default)]
        tick_size: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        step_size: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        notional: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Symbol<'a> {
        #[serde(borrow)]
        symbol: Cow<'a, str>,
        #[serde(borrow, default)]
        base_asset: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        quote_asset: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        filters: Vec<Filter<'a>>,
    }
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        symbols: Vec<Symbol<'a>>,
    }
    let raw: Raw<'_> = json(body, "exchangeInfo")?;
    raw.symbols
        .into_iter()
        .map(|s| {
            let mut out = SymbolFilters {
                symbol: s.symbol.into_owned(),
                base_asset: s.base_asset.map(Cow::into_owned).unwrap_or_default(),
                quote_asset: s.quote_asset.map(Cow::into_owned).unwrap_or_default(),
                tick_size: 0,
                step_size: 0,
                min_notional: 0,
            };
            for f in &s.filters {
                match (&*f.filter_type, &f.tick_size, &f.step_size, &f.notional) {
                    ("PRICE_FILTER", Some(t), _, _) => out.tick_size = dec_field(t, "tickSize")?,
                    ("LOT_SIZE", _, Some(t), _) => out.step_size = dec_field(t, "stepSize")?,
                    ("MIN_NOTIONAL", _, _, Some(t)) => out.min_notional = dec_field(t, "notional")?,
                    _ => {}
                }
            }
            Ok(out)
        })
        .collect()
}

/// Execution types of `ORDER_TRADE_UPDATE` (`x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuturesExecType {
    New,
    Canceled,
    /// A liquidation or ADL execution.
    Calculated,
    Expired,
    Trade,
    Amendment,
}

impl FuturesExecType {
    pub const fn as_str(self) -> &'static str {
        match self {
            FuturesExecType::New => "NEW",
            FuturesExecType::Canceled => "CANCELED",
            FuturesExecType::Calculated => "CALCULATED",
            FuturesExecType::Expired => "EXPIRED",
            FuturesExecType::Trade => "TRADE",
            FuturesExecType::Amendment => "AMENDMENT",
        }
    }

    pub fn parse(text: &str) -> Result<FuturesExecType, OrderError> {
        Ok(match text {
            "NEW" => FuturesExecType::New,
            "CANCELED" => FuturesExecType::Canceled,
            "CALCULATED" => FuturesExecType::Calculated,
            "EXPIRED" => FuturesExecType::Expired,
            "TRADE" => FuturesExecType::Trade,
            "AMENDMENT" => FuturesExecType::Amendment,
            _ => {
                return Err(OrderError::Invalid {
                    name: "x",
                    value: text.to_owned(),
                    reason: "not a futures execution type",
                })
            }
        })
    }
}

/// An `ORDER_TRADE_UPDATE` event of the futures user stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderTradeUpdate {
    /// `E`
    pub event_time_ms: u64,
    /// `T`
    pub transaction_time_ms: u64,
    /// `o.s`
    pub symbol: String,
    /// `o.c`: the order's client id (a cancel names the cancelled order).
    pub client_order_id: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: FuturesTif,
    /// `q`
    pub orig_qty: Qty,
    /// `p`
    pub price: Price,
    /// `ap`
    pub avg_price: Price,
    /// `x`
    pub exec_type: FuturesExecType,
    /// `X`
    pub status: OrderStatus,
    /// `i`
    pub order_id: u64,
    /// `l`
    pub last_qty: Qty,
    /// `z`
    pub cum_qty: Qty,
    /// `L`
    pub last_price: Price,
    /// `N`: absent without a trade.
    pub commission_asset: Option<String>,
    /// `n`
    pub commission: Cash,
    /// `t`: 0 without a trade.
    pub trade_id: i64,
    /// `m`
    pub is_maker: bool,
    /// `R`
    pub reduce_only: bool,
    /// `ps`
    pub position_side: PositionSide,
    /// `rp`: the realised profit of this trade.
    pub realized_profit: Cash,
    /// `V`
    pub self_trade_prevention_mode: StpMode,
}

impl OrderTradeUpdate {
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        put_str(out, "e", "ORDER_TRADE_UPDATE");
        put_num(out, "E", self.event_time_ms);
        put_num(out, "T", self.transaction_time_ms);
        out.push_str("\"o\":{");
        put_str(out, "s", &self.symbol);
        put_str(out, "c", &self.client_order_id);
        put_str(out, "S", side_str(self.side));
        put_str(out, "o", self.order_type.as_str());
        put_str(out, "f", self.time_in_force.as_str());
        put_dec(out, "q", self.orig_qty.0);
        put_dec(out, "p", self.price.0);
        put_dec(out, "ap", self.avg_price.0);
        put_dec(out, "sp", 0);
        put_str(out, "x", self.exec_type.as_str());
        put_str(out, "X", self.status.as_str());
        put_num(out, "i", self.order_id);
        put_dec(out, "l", self.last_qty.0);
        put_dec(out, "z", self.cum_qty.0);
        put_dec(out, "L", self.last_price.0);
        if let Some(asset) = &self.commission_asset {
            put_str(out, "N", asset);
            put_dec(out, "n", self.commission);
        }
        put_num(out, "T", self.transaction_time_ms);
        put_num(out, "t", self.trade_id);
        put_dec(out, "b", 0);
        put_dec(out, "a", 0);
        put_num(out, "m", self.is_maker);
        put_num(out, "R", self.reduce_only);
        put_str(out, "wt", "CONTRACT_PRICE");
        put_str(out, "ot", self.order_type.as_str());
        put_str(out, "ps", position_side_str(self.position_side));
        put_num(out, "cp", false);
        put_dec(out, "rp", self.realized_profit);
        put_num(out, "pP", false);
        put_num(out, "si", 0);
        put_num(out, "ss", 0);
        put_str(out, "V", self.self_trade_prevention_mode.as_str());
        put_str(out, "pm", "NONE");
        put_num(out, "gtd", 0);
        close_object(out);
        close_object(out);
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(640);
        self.write_json(&mut out);
        out
    }

    /// Parses an `ORDER_TRADE_UPDATE`, bare or in a combined-stream envelope; `Ok(None)` for
    /// another event.
    pub fn parse(frame: &str) -> Result<Option<OrderTradeUpdate>, OrderError> {
        #[derive(Deserialize)]
        struct Order<'a> {
            #[serde(borrow)]
            s: Cow<'a, str>,
            #[serde(borrow)]
            c: Cow<'a, str>,
            #[serde(rename = "S", borrow)]
            side: Cow<'a, str>,
            #[serde(borrow)]
            o: Cow<'a, str>,
            #[serde(borrow)]
            f: Cow<'a, str>,
            #[serde(borrow)]
            q: Cow<'a, str>,
            #[serde(borrow)]
            p: Cow<'a, str>,
            #[serde(borrow, default)]
            ap: Option<Cow<'a, str>>,
            #[serde(borrow)]
            x: Cow<'a, str>,
            #[serde(rename = "X", borrow)]
            status: Cow<'a, str>,
            i: u64,
            #[serde(borrow)]
            l: Cow<'a, str>,
            #[serde(borrow)]
            z: Cow<'a, str>,
            #[serde(rename = "L", borrow)]
            last_price: Cow<'a, str>,
            #[serde(rename = "N", borrow, default)]
            commission_asset: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            n: Option<Cow<'a, str>>,
            #[serde(default)]
            t: i64,
            #[serde(default)]
            m: bool,
            #[serde(rename = "R", default)]
            reduce_only: bool,
            #[serde(borrow, default)]
            ps: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            rp: Option<Cow<'a, str>>,
            #[serde(rename = "V", borrow, default)]
            stp: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Event<'a> {
            #[serde(borrow)]
            e: Cow<'a, str>,
            #[serde(rename = "E", default)]
            event_time: u64,
            #[serde(rename = "T", default)]
            transaction_time: u64,
            #[serde(borrow, default)]
            o: Option<Order<'a>>,
        }
        let Some(ev) = event::<Event<'_>>(frame, "ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE")?
        else {
            return Ok(None);
        };
        if ev.e != "ORDER_TRADE_UPDATE" {
            return Ok(None);
        }
        let o = ev.o.ok_or(OrderError::Response {
            what: "ORDER_TRADE_UPDATE",
            reason: "no order (o)".into(),
        })?;
        let opt =
            |v: &Option<Cow<'_, str>>, name| v.as_deref().map_or(Ok(0), |t| dec_field(t, name));
        // `N`/`n` may be absent, or present as "0" with no asset before a trade.
        let commission_asset = o
            .commission_asset
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        Ok(Some(OrderTradeUpdate {
            event_time_ms: ev.event_time,
            transaction_time_ms: ev.transaction_time,
            symbol: o.s.into_owned(),
            client_order_id: o.c.into_owned(),
            side: parse_side(&o.side, "S")?,
            order_type: OrderType::parse(&o.o)?,
            time_in_force: FuturesTif::parse(&o.f)?,
            orig_qty: Qty(dec_field(&o.q, "q")?),
            price: Price(dec_field(&o.p, "p")?),
            avg_price: Price(opt(&o.ap, "ap")?),
            exec_type: FuturesExecType::parse(&o.x)?,
            status: OrderStatus::parse(&o.status)?,
            order_id: o.i,
            last_qty: Qty(dec_field(&o.l, "l")?),
            cum_qty: Qty(dec_field(&o.z, "z")?),
            last_price: Price(dec_field(&o.last_price, "L")?),
            commission_asset,
            commission: opt(&o.n, "n")?,
            trade_id: o.t,
            is_maker: o.m,
            reduce_only: o.reduce_only,
            position_side: o
                .ps
                .as_deref()
                .map_or(Ok(PositionSide::Both), parse_position_side)?,
            realized_profit: opt(&o.rp, "rp")?,
            self_trade_prevention_mode: o
                .stp
                .as_deref()
                .map_or(Ok(StpMode::None), StpMode::parse)?,
        }))
    }
}

/// An event of type `kind`, bare or the `data` of a combined-stream envelope; `None` when the
/// frame is another event (a cheap look first).
fn event<'a, T: Deserialize<'a>>(
    frame: &'a str,
    kind: &str,
    what: &'static str,
) -> Result<Option<T>, OrderError> {
    if !frame.contains(kind) {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Envelope<T> {
        data: T,
    }
    if frame.trim_start().starts_with("{\"stream\"") {
        let env: Envelope<T> = json(frame, what)?;
        return Ok(Some(env.data));
    }
    json(frame, what).map(Some)
}

/// One asset of an `ACCOUNT_UPDATE` (`a.B`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceChange {
    pub asset: String,
    /// `wb`: the wallet balance after it.
    pub wallet_balance: i64,
    /// `cw`
    pub cross_wallet_balance: i64,
    /// `bc`: the change, but for P&L and commission.
    pub balance_change: i64,
}

/// One position of an `ACCOUNT_UPDATE` (`a.P`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionChange {
    pub symbol: String,
    /// `pa`: signed.
    pub amount: i64,
    /// `ep`
    pub entry_price: Price,
    /// `cr`: accumulated realised P&L (before fees).
    pub accumulated_realized: Cash,
    /// `up`
    pub unrealized_pnl: Cash,
    /// `mt`
    pub margin_type: MarginType,
    /// `iw`
    pub isolated_wallet: Cash,
    pub position_side: PositionSide,
}

/// An `ACCOUNT_UPDATE` event: balances and positions after an order, a funding payment, a
/// deposit... (`a.m`, the reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUpdate {
    pub event_time_ms: u64,
    pub transaction_time_ms: u64,
    /// `a.m`: `ORDER`, `FUNDING_FEE`, `DEPOSIT`, `WITHDRAW`, `MARGIN_TYPE_CHANGE`, ...
    pub reason: String,
    pub balances: Vec<BalanceChange>,
    pub positions: Vec<PositionChange>,
}

/// The reason of a funding payment.
pub const FUNDING_FEE: &str = "FUNDING_FEE";

impl AccountUpdate {
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(320);
        out.push('{');
        put_str(&mut out, "e", "ACCOUNT_UPDATE");
        put_num(&mut out, "E", self.event_time_ms);
        put_num(&mut out, "T", self.transaction_time_ms);
        out.push_str("\"a\":{");
        put_str(&mut out, "m", &self.reason);
        out.push_str("\"B\":[");
        for b in &self.balances {
            out.push('{');
            put_str(&mut out, "a", &b.asset);
            put_dec(&mut out, "wb", b.wallet_balance);
            put_dec(&mut out, "cw", b.cross_wallet_balance);
            put_dec(&mut out, "bc", b.balance_change);
            close_object(&mut out);
            out.push(',');
        }
        if out.ends_with(',') {
            out.pop();
        }
        out.push_str("],\"P\":[");
        for p in &self.positions {
            out.push('{');
            put_str(&mut out, "s", &p.symbol);
            put_dec(&mut out, "pa", p.amount);
            put_dec(&mut out, "ep", p.entry_price.0);
            put_dec(&mut out, "bep", p.entry_price.0);
            put_dec(&mut out, "cr", p.accumulated_realized);
            put_dec(&mut out, "up", p.unrealized_pnl);
            put_str(&mut out, "mt", p.margin_type.shown_str());
            put_dec(&mut out, "iw", p.isolated_wallet);
            put_str(&mut out, "ps", position_side_str(p.position_side));
            close_object(&mut out);
            out.push(',');
        }
        if out.ends_with(',') {
            out.pop();
        }
        out.push_str("]}}");
        out
    }

    /// Parses an `ACCOUNT_UPDATE`, bare or in an envelope; `Ok(None)` for another event.
    pub fn parse(frame: &str) -> Result<Option<AccountUpdate>, OrderError> {
        #[derive(Deserialize)]
        struct B<'a> {
            #[serde(borrow)]
            a: Cow<'a, str>,
            #[serde(borrow)]
            wb: Cow<'a, str>,
            #[serde(borrow, default)]
            cw: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            bc: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct P<'a> {
            #[serde(borrow)]
            s: Cow<'a, str>,
            #[serde(borrow)]
            pa: Cow<'a, str>,
            #[serde(borrow)]
            ep: Cow<'a, str>,
            #[serde(borrow, default)]
            cr: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            up: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            mt: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            iw: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            ps: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct A<'a> {
            #[serde(borrow)]
            m: Cow<'a, str>,
            #[serde(rename = "B", borrow, default)]
            balances: Vec<B<'a>>,
            #[serde(rename = "P", borrow, default)]
            positions: Vec<P<'a>>,
        }
        #[derive(Deserialize)]
        struct Event<'a> {
            #[serde(borrow)]
            e: Cow<'a, str>,
            #[serde(rename = "E", default)]
            event_time: u64,
            #[serde(rename = "T", default)]
            transaction_time: u64,
            #[serde(borrow, default)]
            a: Option<A<'a>>,
        }
        let Some(ev) = event::<Event<'_>>(frame, "ACCOUNT_UPDATE", "ACCOUNT_UPDATE")? else {
            return Ok(None);
        };
        if ev.e != "ACCOUNT_UPDATE" {
            return Ok(None);
        }
        let a = ev.a.ok_or(OrderError::Response {
            what: "ACCOUNT_UPDATE",
            reason: "no update (a)".into(),
        })?;
        let opt =
            |v: &Option<Cow<'_, str>>, name| v.as_deref().map_or(Ok(0), |t| dec_field(t, name));
        let balances = a
            .balances
            .iter()
            .map(|b| {
                Ok(BalanceChange {
                    asset: b.a.clone().into_owned(),
                    wallet_balance: dec_field(&b.wb, "wb")?,
                    cross_wallet_balance: opt(&b.cw, "cw")?,
                    balance_change: opt(&b.bc, "bc")?,
                })
            })
            .collect::<Result<Vec<_>, OrderError>>()?;
        let positions = a
            .positions
            .iter()
            .map(|p| {
                Ok(PositionChange {
                    symbol: p.s.clone().into_owned(),
                    amount: dec_field(&p.pa, "pa")?,
                    entry_price: Price(dec_field(&p.ep, "ep")?),
                    accumulated_realized: opt(&p.cr, "cr")?,
                    unrealized_pnl: opt(&p.up, "up")?,
                    margin_type: p
                        .mt
                        .as_deref()
                        .map_or(Ok(MarginType::Cross), MarginType::parse)?,
                    isolated_wallet: opt(&p.iw, "iw")?,
                    position_side: p
                        .ps
                        .as_deref()
                        .map_or(Ok(PositionSide::Both), parse_position_side)?,
                })
            })
            .collect::<Result<Vec<_>, OrderError>>()?;
        Ok(Some(AccountUpdate {
            event_time_ms: ev.event_time,
            transaction_time_ms: ev.transaction_time,
            reason: a.m.into_owned(),
            balances,
            positions,
        }))
    }
}

/// A `<symbol>@markPrice` event: the mark, the index, the funding rate and the next funding
/// time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkPriceUpdate {
    pub event_time_ms: u64,
    pub symbol: String,
    /// `p`
    pub mark_price: Price,
    /// `i`
    pub index_price: Price,
    /// `r`: 10^-8 units (a rate of 0.0001 is 10_000).
    pub funding_rate: i64,
    /// `T`
    pub next_funding_time_ms: u64,
}

impl MarkPriceUpdate {
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(200);
        out.push('{');
        put_str(&mut out, "e", "markPriceUpdate");
        put_num(&mut out, "E", self.event_time_ms);
        put_str(&mut out, "s", &self.symbol);
        put_dec(&mut out, "p", self.mark_price.0);
        put_dec(&mut out, "i", self.index_price.0);
        put_dec(&mut out, "P", self.mark_price.0);
        put_dec(&mut out, "r", self.funding_rate);
        put_num(&mut out, "T", self.next_funding_time_ms);
        close_object(&mut out);
        out
    }

    /// Parses a `markPriceUpdate`, bare or in an envelope; `Ok(None)` for another event.
    pub fn parse(frame: &str) -> Result<Option<MarkPriceUpdate>, OrderError> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            e: Cow<'a, str>,
            #[serde(rename = "E", default)]
            event_time: u64,
            #[serde(borrow)]
            s: Cow<'a, str>,
            #[serde(borrow)]
            p: Cow<'a, str>,
            #[serde(borrow, default)]
            i: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            r: Option<Cow<'a, str>>,
            #[serde(rename = "T", default)]
            next: u64,
        }
        let Some(raw) = event::<Raw<'_>>(frame, "markPriceUpdate", "markPriceUpdate")? else {
            return Ok(None);
        };
        if raw.e != "markPriceUpdate" {
            return Ok(None);
        }
        let opt =
            |v: &Option<Cow<'_, str>>, name| v.as_deref().map_or(Ok(0), |t| dec_field(t, name));
        Ok(Some(MarkPriceUpdate {
            event_time_ms: raw.event_time,
            symbol: raw.s.into_owned(),
            mark_price: Price(dec_field(&raw.p, "p")?),
            index_price: Price(opt(&raw.i, "i")?),
            funding_rate: opt(&raw.r, "r")?,
            next_funding_time_ms: raw.next,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn futures_orders_round_trip_and_map_to_the_matcher() {
        let timing = Timing::new(1_700_000_000_000);
        for kind in [
            rt_core::OrderKind::Limit,
            rt_core::OrderKind::Ioc,
            rt_core::OrderKind::PostOnly,
            rt_core::OrderKind::Market,
        ] {
            let mut o = FuturesOrder::from_kind(
                "BTCUSDT",
                Side::Sell,
                kind,
                Price(6_180_000_000_000),
                Qty(100_000),
                Some("paper_1-3".into()),
                timing,
            );
            o.reduce_only = kind == rt_core::OrderKind::Limit;
            o.self_trade_prevention_mode = Some(StpMode::ExpireMaker);
            let q = o.to_query();
            assert_eq!(FuturesOrder::parse(&q), Ok(o.clone()), "{q}");
            assert_eq!(o.to_spot().kind(), kind);
        }
        let post = FuturesOrder::from_kind(
            "BTCUSDT",
            Side::Buy,
            rt_core::OrderKind::PostOnly,
            Price(6_180_000_000_000),
            Qty(100_000),
            Some("x".into()),
            timing,
        );
        assert_eq!(
            post.to_query(),
            "symbol=BTCUSDT&side=BUY&positionSide=BOTH&type=LIMIT&timeInForce=GTX&\
             quantity=0.001&price=61800&newClientOrderId=x&timestamp=1700000000000"
        );
        // Hedge mode takes no reduceOnly; LIMIT_MAKER is a spot type.
        let hedge = "symbol=BTCUSDT&side=BUY&positionSide=LONG&type=MARKET&quantity=1&reduceOnly=true&timestamp=1";
        assert!(FuturesOrder::parse(hedge).is_err());
        let maker = "symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=1&price=1&timestamp=1";
        assert!(FuturesOrder::parse(maker).is_err());
    }

    #[test]
    fn order_trade_updates_round_trip() {
        let u = OrderTradeUpdate {
            event_time_ms: 2,
            transaction_time_ms: 1,
            symbol: "BTCUSDT".into(),
            client_order_id: "paper_1-9".into(),
            side: Side::Sell,
            order_type: OrderType::Limit,
            time_in_force: FuturesTif::Gtx,
            orig_qty: Qty(300_000),
            price: Price(6_180_010_000_000),
            avg_price: Price(6_180_010_000_000),
            exec_type: FuturesExecType::Trade,
            status: OrderStatus::PartiallyFilled,
            order_id: 7,
            last_qty: Qty(100_000),
            cum_qty: Qty(100_000),
            last_price: Price(6_180_010_000_000),
            commission_asset: Some("USDT".into()),
            commission: 1_236_002,
            trade_id: 42,
            is_maker: true,
            reduce_only: true,
            position_side: PositionSide::Both,
            realized_profit: -50_000,
            self_trade_prevention_mode: StpMode::ExpireMaker,
        };
        let text = u.to_json();
        assert_eq!(OrderTradeUpdate::parse(&text), Ok(Some(u.clone())));
        let wrapped = format!("{{\"stream\":\"k\",\"data\":{text}}}");
        assert_eq!(OrderTradeUpdate::parse(&wrapped), Ok(Some(u)));
        assert_eq!(
            OrderTradeUpdate::parse("{\"e\":\"ACCOUNT_UPDATE\"}"),
            Ok(None)
        );
    }

    #[test]
    fn account_updates_carry_their_reason() {
        let a = AccountUpdate {
            event_time_ms: 5,
            transaction_time_ms: 4,
            reason: FUNDING_FEE.into(),
            balances: vec![BalanceChange {
                asset: "USDT".into(),
                wallet_balance: 10_000_000_000_000,
                cross_wallet_balance: 10_000_000_000_000,
                balance_change: -618_000,
            }],
            positions: vec![PositionChange {
                symbol: "BTCUSDT".into(),
                amount: -100_000,
                entry_price: Price(6_180_000_000_000),
                accumulated_realized: 0,
                unrealized_pnl: 12,
                margin_type: MarginType::Isolated,
                isolated_wallet: 3,
                position_side: PositionSide::Both,
            }],
        };
        assert_eq!(AccountUpdate::parse(&a.to_json()), Ok(Some(a)));
    }

    #[test]
    fn answers_round_trip() {
        let info = FuturesOrderInfo {
            symbol: "BTCUSDT".into(),
            order_id: 3,
            client_order_id: "c".into(),
            price: Price(100),
            avg_price: Price(0),
            orig_qty: Qty(5),
            executed_qty: Qty(0),
            cum_quote: 0,
            status: OrderStatus::New,
            time_in_force: FuturesTif::Gtx,
            order_type: OrderType::Limit,
            side: Side::Buy,
            reduce_only: false,
            position_side: PositionSide::Both,
            self_trade_prevention_mode: StpMode::None,
            time_ms: 1,
            update_time_ms: 2,
        };
        assert_eq!(FuturesOrderInfo::parse(&info.to_json()), Ok(info));
        let trade = FuturesTrade {
            symbol: "BTCUSDT".into(),
            id: 9,
            order_id: 3,
            side: Side::Sell,
            price: Price(100),
            qty: Qty(5),
            quote_qty: 0,
            realized_pnl: -7,
            commission: 2,
            commission_asset: "USDT".into(),
            time_ms: 4,
            is_maker: true,
        };
        assert_eq!(
            parse_user_trades(&format_user_trades(std::slice::from_ref(&trade))),
            Ok(vec![trade])
        );
        let risk = PositionRisk {
            symbol: "BTCUSDT".into(),
            position_amt: -5,
            entry_price: Price(100),
            mark_price: Price(101),
            unrealized_profit: -5,
            liquidation_price: Price(150),
            leverage: 5,
            margin_type: MarginType::Cross,
            isolated_margin: 0,
            position_side: PositionSide::Both,
        };
        assert_eq!(
            parse_position_risk(&format_position_risk(std::slice::from_ref(&risk), 1)),
            Ok(vec![risk])
        );
        assert_eq!(parse_position_mode(&format_position_mode(false)), Ok(false));
        assert_eq!(parse_leverage(&format_leverage("BTCUSDT", 3, 1)), Ok(3));
        let filters = SymbolFilters {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: 10_000_000,
            step_size: 100_000,
            min_notional: 10_000_000_000,
        };
        assert_eq!(
            parse_exchange_info(&format_exchange_info(std::slice::from_ref(&filters), 1)),
            Ok(vec![filters])
        );
        let mark = MarkPriceUpdate {
            event_time_ms: 1,
            symbol: "BTCUSDT".into(),
            mark_price: Price(6_180_000_000_000),
            index_price: Price(6_179_000_000_000),
            funding_rate: 10_000,
            next_funding_time_ms: 2,
        };
        assert_eq!(MarkPriceUpdate::parse(&mark.to_json()), Ok(Some(mark)));
    }
}
