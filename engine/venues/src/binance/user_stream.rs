//! The user data stream: the `executionReport` event ([`ExecutionReport`], written by the sim
//! venue, parsed by the gateway) and `listenKeyExpired` ([`is_listen_key_expired`]).

use std::borrow::Cow;

use rt_core::{Cash, Price, Qty, Side};
use serde::Deserialize;

use super::errors::OrderError;
use super::vocab::{parse_side, side_str, ExecType, OrderStatus, OrderType, TimeInForce};
use super::wire::{close_object, dec_field, json, put_dec, put_num, put_str};

/// Create (`POST`), keep alive (`PUT`), close (`DELETE`) a listen key.
pub const USER_DATA_STREAM_PATH: &str = "/api/v3/userDataStream";

/// Whether a user-data event (bare or in a combined-stream envelope) is `listenKeyExpired`:
/// the stream delivers nothing more on that key, so the client must make a new one.
pub fn is_listen_key_expired(frame: &str) -> bool {
    user_event(frame).is_ok_and(|(kind, _)| kind.as_deref() == Some("listenKeyExpired"))
}

/// A user-data event's type (`e`) and whether it came in a combined-stream envelope
/// (`{"stream":..,"data":{..}}`): a first light pass over the frame.
fn user_event(frame: &str) -> Result<(Option<Cow<'_, str>>, bool), OrderError> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, default)]
        e: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        e: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        data: Option<Kind<'a>>,
    }
    let head: Head<'_> = json(frame, "user data event")?;
    Ok(match head.data {
        Some(data) => (data.e, true),
        None => (head.e, false),
    })
}

/// An `executionReport` event of the user data stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionReport {
    /// `E`: event time, ms.
    pub event_time_ms: u64,
    /// `s`
    pub symbol: String,
    /// `c`: the order's client id (for a cancel, the cancel request's id).
    pub client_order_id: String,
    /// `S`
    pub side: Side,
    /// `o`
    pub order_type: OrderType,
    /// `f`
    pub time_in_force: TimeInForce,
    /// `q`
    pub quantity: Qty,
    /// `p`
    pub price: Price,
    /// `C`: for a cancel, the cancelled order's client id; empty otherwise.
    pub orig_client_order_id: String,
    /// `x`
    pub exec_type: ExecType,
    /// `X`
    pub status: OrderStatus,
    /// `r`: `NONE` unless rejected.
    pub reject_reason: String,
    /// `i`
    pub order_id: u64,
    /// `l`: last executed quantity.
    pub last_qty: Qty,
    /// `z`: cumulative filled quantity.
    pub cum_qty: Qty,
    /// `L`: last executed price.
    pub last_price: Price,
    /// `n`: commission of this execution.
    pub commission: Cash,
    /// `N`: commission asset, `null` without a trade.
    pub commission_asset: Option<String>,
    /// `T`: transaction time, ms.
    pub transaction_time_ms: u64,
    /// `t`: trade id, -1 without a trade.
    pub trade_id: i64,
    /// `w`: on the book.
    pub is_working: bool,
    /// `m`: this execution was as a maker.
    pub is_maker: bool,
    /// `O`: order creation time, ms.
    pub creation_time_ms: u64,
    /// `Z`: cumulative quote quantity.
    pub cum_quote_qty: Cash,
    /// `Y`: last quote quantity (`l * L`).
    pub last_quote_qty: Cash,
    /// Self-trade prevention (only for an order it expired): `v`, the prevented match's id.
    pub prevented_match_id: Option<u64>,
    /// `A`: the quantity self-trade prevention expired over the order's life (0 without).
    pub prevented_qty: Qty,
}

impl ExecutionReport {
    /// Appends the event's JSON (a bare event, as `/ws/<listenKey>` sends it).
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        put_str(out, "e", "executionReport");
        put_num(out, "E", self.event_time_ms);
        put_str(out, "s", &self.symbol);
        put_str(out, "c", &self.client_order_id);
        put_str(out, "S", side_str(self.side));
        put_str(out, "o", self.order_type.as_str());
        put_str(out, "f", self.time_in_force.as_str());
        put_dec(out, "q", self.quantity.0);
        put_dec(out, "p", self.price.0);
        put_dec(out, "P", 0);
        put_dec(out, "F", 0);
        put_num(out, "g", -1);
        put_str(out, "C", &self.orig_client_order_id);
        put_str(out, "x", self.exec_type.as_str());
        put_str(out, "X", self.status.as_str());
        put_str(out, "r", &self.reject_reason);
        put_num(out, "i", self.order_id);
        put_dec(out, "l", self.last_qty.0);
        put_dec(out, "z", self.cum_qty.0);
        put_dec(out, "L", self.last_price.0);
        put_dec(out, "n", self.commission);
        match &self.commission_asset {
            Some(asset) => put_str(out, "N", asset),
            None => out.push_str("\"N\":null,"),
        }
        put_num(out, "T", self.transaction_time_ms);
        put_num(out, "t", self.trade_id);
        put_num(out, "I", 0);
        put_num(out, "w", self.is_working);
        put_num(out, "m", self.is_maker);
        put_num(out, "M", false);
        put_num(out, "O", self.creation_time_ms);
        put_dec(out, "Z", self.cum_quote_qty);
        put_dec(out, "Y", self.last_quote_qty);
        put_dec(out, "Q", 0);
        put_num(out, "W", self.creation_time_ms);
        put_str(out, "V", "NONE");
        if let Some(v) = self.prevented_match_id {
            put_num(out, "v", v);
        }
        // Whatever the parser read (a venue's `A` may come without `v`).
        if self.prevented_match_id.is_some() || self.prevented_qty != Qty::ZERO {
            put_dec(out, "A", self.prevented_qty.0);
            put_dec(out, "B", self.prevented_qty.0);
        }
        close_object(out);
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(640);
        self.write_json(&mut out);
        out
    }

    /// Parses an `executionReport`, bare or in a combined-stream envelope. `Ok(None)` for
    /// another user-data event (`outboundAccountPosition`, `balanceUpdate`, ...).
    pub fn parse(frame: &str) -> Result<Option<ExecutionReport>, OrderError> {
        #[derive(Deserialize)]
        struct Wrapped<'a> {
            #[serde(borrow)]
            data: Raw<'a>,
        }
        let (kind, wrapped) = user_event(frame)?;
        if kind.as_deref() != Some("executionReport") {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(rename = "E")]
            event_time: u64,
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
            #[serde(rename = "C", borrow, default)]
            orig: Option<Cow<'a, str>>,
            #[serde(borrow)]
            x: Cow<'a, str>,
            #[serde(rename = "X", borrow)]
            status: Cow<'a, str>,
            #[serde(borrow)]
            r: Cow<'a, str>,
            i: u64,
            #[serde(borrow)]
            l: Cow<'a, str>,
            #[serde(borrow)]
            z: Cow<'a, str>,
            #[serde(rename = "L", borrow)]
            last_price: Cow<'a, str>,
            #[serde(borrow)]
            n: Cow<'a, str>,
            #[serde(rename = "N", borrow)]
            asset: Option<Cow<'a, str>>,
            #[serde(rename = "T")]
            transaction_time: u64,
            t: i64,
            w: bool,
            m: bool,
            #[serde(rename = "O")]
            creation_time: u64,
            #[serde(rename = "Z", borrow)]
            cum_quote: Cow<'a, str>,
            #[serde(rename = "Y", borrow, default)]
            last_quote: Option<Cow<'a, str>>,
            #[serde(default)]
            v: Option<u64>,
            #[serde(rename = "A", borrow, default)]
            prevented: Option<Cow<'a, str>>,
        }
        let raw: Raw<'_> = if wrapped {
            json::<Wrapped<'_>>(frame, "executionReport")?.data
        } else {
            json(frame, "executionReport")?
        };
        Ok(Some(ExecutionReport {
            event_time_ms: raw.event_time,
            symbol: raw.s.into_owned(),
            client_order_id: raw.c.into_owned(),
            side: parse_side(&raw.side, "S")?,
            order_type: OrderType::parse(&raw.o)?,
            time_in_force: TimeInForce::parse(&raw.f)?,
            quantity: Qty(dec_field(&raw.q, "q")?),
            price: Price(dec_field(&raw.p, "p")?),
            orig_client_order_id: raw.orig.map(Cow::into_owned).unwrap_or_default(),
            exec_type: ExecType::parse(&raw.x)?,
            status: OrderStatus::parse(&raw.status)?,
            reject_reason: raw.r.into_owned(),
            order_id: raw.i,
            last_qty: Qty(dec_field(&raw.l, "l")?),
            cum_qty: Qty(dec_field(&raw.z, "z")?),
            last_price: Price(dec_field(&raw.last_price, "L")?),
            commission: dec_field(&raw.n, "n")?,
            commission_asset: raw.asset.map(Cow::into_owned),
            transaction_time_ms: raw.transaction_time,
            trade_id: raw.t,
            is_working: raw.w,
            is_maker: raw.m,
            creation_time_ms: raw.creation_time,
            cum_quote_qty: dec_field(&raw.cum_quote, "Z")?,
            last_quote_qty: match raw.last_quote {
                Some(y) => dec_field(&y, "Y")?,
                None => 0,
            },
            prevented_match_id: raw.v,
            prevented_qty: match raw.prevented {
                Some(a) => Qty(dec_field(&a, "A")?),
                None => Qty::ZERO,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report() -> ExecutionReport {
        ExecutionReport {
            event_time_ms: 1_723_161_253_000,
            symbol: "BTCUSDT".into(),
            client_order_id: "mm-1".into(),
            side: Side::Sell,
            order_type: OrderType::LimitMaker,
            time_in_force: TimeInForce::Gtc,
            quantity: Qty(200_000),
            price: Price(6_183_763_000_000),
            orig_client_order_id: String::new(),
            exec_type: ExecType::Trade,
            status: OrderStatus::PartiallyFilled,
            reject_reason: "NONE".into(),
            order_id: 17,
            last_qty: Qty(100_000),
            cum_qty: Qty(100_000),
            last_price: Price(6_183_763_000_000),
            commission: -6_184,
            commission_asset: Some("USDT".into()),
            transaction_time_ms: 1_723_161_253_001,
            trade_id: 9,
            is_working: true,
            is_maker: true,
            creation_time_ms: 1_723_161_252_000,
            cum_quote_qty: 6_183_763_000,
            last_quote_qty: 6_183_763_000,
            prevented_match_id: None,
            prevented_qty: Qty::ZERO,
        }
    }

    #[test]
    fn execution_report_round_trips_with_binance_field_names() {
        let r = report();
        let text = r.to_json();
        assert!(text.starts_with(
            "{\"e\":\"executionReport\",\"E\":1723161253000,\"s\":\"BTCUSDT\",\"c\":\"mm-1\",\
             \"S\":\"SELL\",\"o\":\"LIMIT_MAKER\",\"f\":\"GTC\",\"q\":\"0.00200000\",\
             \"p\":\"61837.63000000\""
        ));
        assert!(text.contains("\"n\":\"-0.00006184\",\"N\":\"USDT\""));
        assert!(text.contains("\"x\":\"TRADE\",\"X\":\"PARTIALLY_FILLED\",\"r\":\"NONE\",\"i\":17"));
        // Valid JSON, every documented key present.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x", "X", "r", "i",
            "l", "z", "L", "n", "N", "T", "t", "I", "w", "m", "M", "O", "Z", "Y", "Q",
        ] {
            assert!(value.get(key).is_some(), "{key}");
        }
        assert_eq!(ExecutionReport::parse(&text), Ok(Some(r.clone())));
        let wrapped = format!("{{\"stream\":\"abc\",\"data\":{text}}}");
        assert_eq!(ExecutionReport::parse(&wrapped), Ok(Some(r.clone())));
        let mut new = r;
        new.exec_type = ExecType::New;
        new.commission_asset = None;
        new.trade_id = -1;
        let text = new.to_json();
        assert!(text.contains("\"N\":null"));
        assert_eq!(ExecutionReport::parse(&text), Ok(Some(new.clone())));
        // Self-trade prevention expired it: TRADE_PREVENTION / EXPIRED_IN_MATCH, v and A.
        let mut prevented = new;
        prevented.exec_type = ExecType::TradePrevention;
        prevented.status = OrderStatus::ExpiredInMatch;
        prevented.prevented_match_id = Some(3);
        prevented.prevented_qty = Qty(200_000);
        let text = prevented.to_json();
        assert!(text.contains("\"x\":\"TRADE_PREVENTION\",\"X\":\"EXPIRED_IN_MATCH\""));
        assert!(text.contains("\"v\":3,\"A\":\"0.00200000\",\"B\":\"0.00200000\""));
        assert_eq!(ExecutionReport::parse(&text), Ok(Some(prevented)));
        assert!(!OrderStatus::ExpiredInMatch.is_open());
        let expired = "{\"e\":\"listenKeyExpired\",\"E\":1,\"listenKey\":\"k\"}";
        assert_eq!(ExecutionReport::parse(expired), Ok(None));
        assert!(is_listen_key_expired(expired));
        assert!(is_listen_key_expired(&format!(
            "{{\"stream\":\"k\",\"data\":{expired}}}"
        )));
        assert!(!is_listen_key_expired(&text));
        assert!(!is_listen_key_expired("not json"));
        assert_eq!(
            ExecutionReport::parse("{\"e\":\"outboundAccountPosition\",\"E\":1}"),
            Ok(None)
        );
        assert!(ExecutionReport::parse("{\"e\":\"executionReport\"}").is_err());
    }

    #[test]
    fn a_prevented_quantity_without_a_match_id_is_written_back() {
        // Found by fuzzing (engine/fuzz, target binance_user_stream): `A` came without `v`; it
        // was read, but written back only with `v`, so a report did not survive the sim's writer.
        let frame = r#"{"e":"executionReport","E":1723161253000,"s":"BTCUSDT","c":"mm-2","S":"BUY","o":"LIMIT","f":"GTC","q":"0.00200000","p":"61837.63000000","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE_PREVENTION","X":"EXPIRED_IN_MATCH","r":"NONE","i":18,"l":"0.00000000","z":"0.00000000","L":"0.00000000","n":"0","N":null,"T":1723161253000,"t":-1,"I":41,"w":false,"m":false,"M":false,"O":1723161252000,"Z":"0.00000000","Y":"0.00000000","Q":"0.00000000","W":1723161252000,"V":"EXPIRE_TAKER","u":3,"u":9,"U":18,"A":"0.00200000","B":"0.00000000"}"#;
        let report = ExecutionReport::parse(frame).unwrap().unwrap();
        assert_eq!(
            (report.prevented_match_id, report.prevented_qty),
            (None, Qty(200_000))
        );
        assert_eq!(ExecutionReport::parse(&report.to_json()), Ok(Some(report)));
    }
}
