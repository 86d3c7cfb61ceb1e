//! An OKX account's derivatives (swaps) behind the boundary's [`DerivativesAccount`], without
//! I/O: the settings the engine sets and verifies before it trades, the positions it watches,
//! and the funding payments it books (OKX docs-v5, "Trading Account"; paths and fields as OKX
//! documents them).
//!
//! | what | request |
//! |---|---|
//! | position mode | `GET /api/v5/account/config`: `posMode` `net_mode` (the engine's), or `long_short_mode` (hedge) |
//! | leverage | `POST /api/v5/account/set-leverage` `{"instId","lever","mgnMode"}`; the answer's `lever` is what is in force |
//! | margin mode | none: OKX takes it with each order (`tdMode`) and with the leverage (`mgnMode`), `cross` unless the instrument says `margin_type: isolated` |
//! | positions | `GET /api/v5/account/positions?instType=SWAP` (or `FUTURES`; no `instType` for an account with both): open positions only (`pos` signed in net mode, contracts; `avgPx`, `markPx`, `liqPx`, `lever`, `mgnMode`); a contract without a row is flat |
//! | funding payments | `GET /api/v5/account/bills?instType=SWAP&type=8&begin=<ms>&limit=100` (type `8`: funding fee; subtype `173` expense, `174` income; the payment is the bill's `pnl`, in `ccy`, the contract's settlement currency), newest first |
//! | a future's delivery | `GET /api/v5/public/delivery-exercise-history?instType=FUTURES&instFamily=<family>` (public; `instFamily` the instId without its expiry, `BTC-USD` of `BTC-USD-250328`): `data[]` of `{ts, details: [{type: "delivery", insId, px}]}`, `px` the delivery price the open positions were closed at |
//!
//! The private stream's `balance_and_position` channel says when a funding payment was made
//! (`eventType` `funding_fee`) but not how much: its `balData` holds balances after the
//! payment. The engine reads the amounts from the bills ([`AccountChange`] with no balance
//! change: the gateway asks the history).

use serde_json::Value;

use super::execution::{
    balance_units, data, id, inst_type, parse, split_8, text, units, unreadable, OkxExecution,
};
use crate::execution::{
    AccountChange, AccountReason, Delivery, DerivativesAccount, ExecError, FundingPayment, Method,
    PositionRiskState, PrivateEvent, Refusal, VenuePosition,
};
use rt_core::Price;

pub const CONFIG_PATH: &str = "/api/v5/account/config";
pub const SET_LEVERAGE_PATH: &str = "/api/v5/account/set-leverage";
pub const POSITIONS_PATH: &str = "/api/v5/account/positions";
pub const BILLS_PATH: &str = "/api/v5/account/bills";
/// Futures deliveries and options exercises (public).
pub const DELIVERY_PATH: &str = "/api/v5/public/delivery-exercise-history";
/// The private channel of balance and position changes.
pub const BALANCE_AND_POSITION: &str = "balance_and_position";
/// A bill's `type` for a funding fee.
pub const FUNDING_BILL: &str = "8";
/// Bills one page holds at most.
pub const BILLS_LIMIT: usize = 100;
/// `posMode` of an account in hedge mode.
pub const HEDGE_MODE: &str = "long_short_mode";

/// A decimal with up to 18 decimals in 10^-8 units, rounded down (towards -inf): a payment
/// made is never understated, one received never overstated.
fn floor_units(v: &Value, key: &'static str) -> Result<i64, ExecError> {
    let t = text(v, key);
    let (cut, beyond) = split_8(t, key)?;
    if cut.is_empty() {
        return Ok(0);
    }
    let units = rt_core::parse_signed_units(cut.as_bytes())
        .map_err(|e| unreadable(key, format!("{t:?}: {e}")))?;
    Ok(units - i64::from(beyond && t.starts_with('-')))
}

impl OkxExecution {
    /// A `balance_and_position` push: a funding payment (`eventType` `funding_fee`, its
    /// amount left to the bills), a fill, or another change of the account.
    pub(super) fn balance_and_position(&self, v: &Value) -> Result<PrivateEvent, ExecError> {
        let entry = v
            .get("data")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .ok_or_else(|| unreadable(BALANCE_AND_POSITION, "no data"))?;
        let reason = match text(entry, "eventType") {
            "funding_fee" => AccountReason::Funding,
            "filled" => AccountReason::Order,
            other => AccountReason::Other(other.to_owned()),
        };
        // Our instruments' rows only (another desk's on the same account are not ours to
        // read); OKX's computed prices have more than 8 decimals: truncated.
        let positions = entry
            .get("posData")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|p| self.lists(text(p, "instId")))
            .map(|p| {
                Ok(VenuePosition {
                    symbol: self.name_of(text(p, "instId")).to_owned(),
                    qty: units(p, "pos")?,
                    entry_price: Price(balance_units(p, "avgPx")?),
                })
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        let time_ms = text(entry, "pTime").parse::<u64>().unwrap_or(0);
        Ok(PrivateEvent::Account(AccountChange {
            reason,
            balance_changes: Vec::new(),
            positions,
            time_ms,
        }))
    }
}

impl DerivativesAccount for OkxExecution {
    fn position_mode(&self, now_ms: u64) -> crate::execution::VenueRequest {
        self.request(Method::Get, CONFIG_PATH.into(), String::new(), now_ms)
    }

    fn is_hedge_mode(&self, body: &str) -> Result<bool, ExecError> {
        let v = parse(body, "account config")?;
        let config = data(&v, "account config")?
            .first()
            .ok_or_else(|| unreadable("account config", "an empty data"))?;
        match text(config, "posMode") {
            "net_mode" => Ok(false),
            HEDGE_MODE => Ok(true),
            other => Err(unreadable("posMode", format!("{other:?}"))),
        }
    }

    fn set_leverage(
        &self,
        symbol: &str,
        leverage: u32,
        now_ms: u64,
    ) -> crate::execution::VenueRequest {
        let body = serde_json::json!({
            "instId": self.inst_id(symbol),
            "lever": leverage.to_string(),
            "mgnMode": self.margin_mode(symbol),
        })
        .to_string();
        self.request(Method::Post, SET_LEVERAGE_PATH.into(), body, now_ms)
    }

    fn leverage_set(&self, body: &str) -> Result<u32, ExecError> {
        let v = parse(body, "set-leverage")?;
        let set = data(&v, "set-leverage")?
            .first()
            .ok_or_else(|| unreadable("set-leverage", "an empty data"))?;
        lever(set)
    }

    /// OKX has no margin-type setting: the mode goes with each order and the leverage.
    fn set_margin_type(
        &self,
        _symbol: &str,
        _isolated: bool,
        _now_ms: u64,
    ) -> Option<crate::execution::VenueRequest> {
        None
    }

    fn margin_type_unchanged(&self, _refusal: &Refusal) -> bool {
        false
    }

    fn positions(&self, now_ms: u64) -> crate::execution::VenueRequest {
        // The contracts' one `instType`, or none for swaps and futures alike (a filter keeps
        // the account's margin and option positions out).
        let mut kinds: Vec<&str> = self
            .instruments
            .iter()
            .map(|(_, inst)| inst_type(inst))
            .filter(|k| *k != "SPOT")
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let path = match kinds.as_slice() {
            [kind] => format!("{POSITIONS_PATH}?instType={kind}"),
            _ => POSITIONS_PATH.to_owned(),
        };
        self.request(Method::Get, path, String::new(), now_ms)
    }

    fn lists_flat_positions(&self) -> bool {
        false
    }

    /// Our instruments' rows only (another desk's on the same account are not read: one it
    /// holds in hedge mode, or with a field we cannot read, must not blind our checks). The
    /// average, mark and liquidation prices OKX computes (more than 8 decimals, e.g. `liqPx`
    /// `"1438.7380360728976"`) are truncated to 10^-8.
    fn position_risks(&self, body: &str) -> Result<Vec<PositionRiskState>, ExecError> {
        let v = parse(body, "positions")?;
        data(&v, "positions")?
            .iter()
            .filter(|p| {
                let inst = text(p, "instId");
                inst_type(inst) != "SPOT" && self.lists(inst)
            })
            .map(|p| {
                if !matches!(text(p, "posSide"), "net" | "") {
                    return Err(unreadable(
                        "posSide",
                        format!(
                            "{:?} on {}: a hedge-mode position (the engine trades net mode)",
                            text(p, "posSide"),
                            text(p, "instId")
                        ),
                    ));
                }
                Ok(PositionRiskState {
                    symbol: self.name_of(text(p, "instId")).to_owned(),
                    qty: units(p, "pos")?,
                    entry_price: Price(balance_units(p, "avgPx")?),
                    mark_price: Price(balance_units(p, "markPx")?),
                    liquidation_price: Price(balance_units(p, "liqPx")?),
                    leverage: lever(p)?,
                    isolated: text(p, "mgnMode") == "isolated",
                })
            })
            .collect()
    }

    fn funding_history(&self, start_ms: u64, now_ms: u64) -> crate::execution::VenueRequest {
        let path = format!(
            "{BILLS_PATH}?instType=SWAP&type={FUNDING_BILL}&begin={start_ms}&limit={BILLS_LIMIT}"
        );
        self.request(Method::Get, path, String::new(), now_ms)
    }

    /// Oldest first (OKX answers newest first); the payment is the bill's `pnl` (OKX: "refer
    /// to pnl for the fee payment"), rounded down to 10^-8; a bill without one counts its
    /// balance changes, the account's (`balChg`, cross) and the position's (`posBalChg`,
    /// isolated margin).
    fn funding_payments(&self, body: &str) -> Result<Vec<FundingPayment>, ExecError> {
        let v = parse(body, "bills")?;
        let mut out = data(&v, "bills")?
            .iter()
            .filter(|b| text(b, "type") == FUNDING_BILL)
            .map(|b| {
                let amount = if text(b, "pnl").is_empty() {
                    floor_units(b, "balChg")?.saturating_add(floor_units(b, "posBalChg")?)
                } else {
                    floor_units(b, "pnl")?
                };
                Ok(FundingPayment {
                    symbol: self.name_of(text(b, "instId")).to_owned(),
                    asset: text(b, "ccy").to_owned(),
                    amount,
                    time_ms: text(b, "ts")
                        .parse::<u64>()
                        .map_err(|e| unreadable("ts", e))?,
                    id: id(b, "billId")?,
                })
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        out.sort_by_key(|p| (p.time_ms, p.id));
        Ok(out)
    }

    /// A future's family is its instId without the expiry (`BTC-USD-250328` -> `BTC-USD`);
    /// OKX lists the deliveries of a family (`instFamily`, or the older `uly`: the same
    /// string for futures), newest first.
    fn delivery_history(
        &self,
        symbol: &str,
        _now_ms: u64,
    ) -> Option<crate::execution::VenueRequest> {
        let inst_id = self.inst_id(symbol);
        if inst_type(inst_id) != "FUTURES" {
            return None;
        }
        let (family, _) = inst_id.rsplit_once('-')?;
        Some(crate::execution::VenueRequest {
            method: Method::Get,
            path: format!("{DELIVERY_PATH}?instType=FUTURES&instFamily={family}"),
            headers: Vec::new(),
            body: String::new(),
        })
    }

    /// The row whose `details` hold a `delivery` of the instrument (`insId`, OKX's spelling
    /// in this answer): its `px`, and the row's `ts`.
    fn delivery(&self, symbol: &str, body: &str) -> Result<Option<Delivery>, ExecError> {
        let inst_id = self.inst_id(symbol);
        let v = parse(body, "delivery-exercise-history")?;
        for row in data(&v, "delivery-exercise-history")? {
            let details = row.get("details").and_then(Value::as_array);
            let Some(d) = details
                .into_iter()
                .flatten()
                .find(|d| text(d, "type") == "delivery" && text(d, "insId") == inst_id)
            else {
                continue;
            };
            let price = units(d, "px")?;
            if price <= 0 {
                return Err(unreadable("px", format!("{:?}", text(d, "px"))));
            }
            let time_ms = text(row, "ts")
                .parse::<u64>()
                .map_err(|e| unreadable("ts", e))?;
            return Ok(Some(Delivery {
                price: Price(price),
                time_ms,
            }));
        }
        Ok(None)
    }
}

/// `lever` (OKX writes it as a decimal string, `"5"` or `"5.0"`): whole leverage only.
fn lever(v: &Value) -> Result<u32, ExecError> {
    let t = text(v, "lever");
    if t.is_empty() {
        return Ok(0);
    }
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if !frac.bytes().all(|b| b == b'0') {
        return Err(unreadable("lever", format!("{t:?}: not a whole leverage")));
    }
    int.parse::<u32>()
        .map_err(|e| unreadable("lever", format!("{t:?}: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::execution::ExecutionClient;

    fn client() -> OkxExecution {
        OkxExecution::new(
            None,
            [
                ("UNIUSDSWAP".to_owned(), "UNI-USD-SWAP".to_owned()),
                ("BTCUSDTSWAP".to_owned(), "BTC-USDT-SWAP".to_owned()),
                ("BTCUSDT".to_owned(), "BTC-USDT".to_owned()),
            ],
        )
        .with_isolated(["BTCUSDTSWAP".to_owned()])
    }

    #[test]
    fn a_futures_delivery_price_is_read_from_the_public_history() {
        let c = OkxExecution::new(
            None,
            [("BTCUSD250328".to_owned(), "BTC-USD-250328".to_owned())],
        );
        let d = c.derivatives().unwrap();
        let r = d.delivery_history("BTCUSD250328", 0).unwrap();
        assert_eq!(
            r.path,
            "/api/v5/public/delivery-exercise-history?instType=FUTURES&instFamily=BTC-USD"
        );
        assert!(r.headers.is_empty());
        // A swap is never delivered.
        assert!(client().delivery_history("UNIUSDSWAP", 0).is_none());
        // OKX's answer, newest first: another contract's delivery, then ours.
        let body = r#"{"code":"0","msg":"","data":[
            {"ts":"1743148800000","details":[{"type":"delivery","insId":"BTC-USD-250404","px":"84000.1"}]},
            {"ts":"1743148800001","details":[{"type":"delivery","insId":"BTC-USD-250328","px":"84321.5"}]}]}"#;
        assert_eq!(
            d.delivery("BTCUSD250328", body).unwrap(),
            Some(Delivery {
                price: Price(8_432_150_000_000),
                time_ms: 1_743_148_800_001
            })
        );
        // Not delivered yet: not listed.
        let none = r#"{"code":"0","msg":"","data":[]}"#;
        assert_eq!(d.delivery("BTCUSD250328", none).unwrap(), None);
        assert!(d
            .delivery("BTCUSD250328", r#"{"code":"51000","msg":"x","data":[]}"#)
            .is_err());
    }

    #[test]
    fn only_an_account_trading_contracts_has_derivatives() {
        assert!(client().derivatives().is_some());
        let spot = OkxExecution::new(None, [("BTCUSDT".to_owned(), "BTC-USDT".to_owned())]);
        assert!(spot.derivatives().is_none());
        assert!(!spot.stream_handshake(0)[0].contains(BALANCE_AND_POSITION));
        assert!(client().stream_handshake(0)[0].contains(BALANCE_AND_POSITION));
    }

    #[test]
    fn the_margin_mode_goes_with_the_order_and_the_leverage() {
        let c = client();
        let order = |symbol| crate::execution::NewOrderSpec {
            symbol,
            client_id: "e1-1",
            side: rt_core::Side::Buy,
            kind: rt_core::OrderKind::Limit,
            price: Price(500_000_000),
            qty: rt_core::Qty(100_000_000),
            reduce_only: false,
            position_side: crate::execution::PositionSide::Both,
        };
        let body =
            |r: crate::execution::VenueRequest| -> Value { serde_json::from_str(&r.body).unwrap() };
        assert_eq!(
            body(c.new_order(&order("BTCUSDTSWAP"), 1).unwrap())["tdMode"],
            "isolated"
        );
        assert_eq!(
            body(c.new_order(&order("UNIUSDSWAP"), 1).unwrap())["tdMode"],
            "cross"
        );
        assert_eq!(
            body(c.new_order(&order("BTCUSDT"), 1).unwrap())["tdMode"],
            "cash"
        );
        let d = c.derivatives().unwrap();
        let r = d.set_leverage("BTCUSDTSWAP", 5, 1);
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Post, SET_LEVERAGE_PATH)
        );
        assert_eq!(
            body(r),
            serde_json::json!({"instId": "BTC-USDT-SWAP", "lever": "5", "mgnMode": "isolated"})
        );
        assert!(d.set_margin_type("BTCUSDTSWAP", true, 1).is_none());
        let answer = r#"{"code":"0","msg":"","data":[{"instId":"BTC-USDT-SWAP","lever":"5","mgnMode":"isolated","posSide":""}]}"#;
        assert_eq!(d.leverage_set(answer).unwrap(), 5);
        assert!(d
            .leverage_set(r#"{"code":"0","data":[{"lever":"2.5"}]}"#)
            .is_err());
        assert!(d
            .leverage_set(r#"{"code":"51000","msg":"Parameter lever error","data":[]}"#)
            .is_err());
    }

    #[test]
    fn the_position_mode_is_read_from_the_account_config() {
        let d = client();
        let d = d.derivatives().unwrap();
        assert_eq!(d.position_mode(1).path, CONFIG_PATH);
        let config = |mode: &str| {
            format!(
                r#"{{"code":"0","msg":"","data":[{{"acctLv":"2","posMode":"{mode}","uid":"1"}}]}}"#
            )
        };
        assert!(!d.is_hedge_mode(&config("net_mode")).unwrap());
        assert!(d.is_hedge_mode(&config("long_short_mode")).unwrap());
        assert!(d.is_hedge_mode(&config("")).is_err());
    }

    #[test]
    fn open_positions_are_read_and_a_missing_row_is_flat() {
        let c = client();
        let d = c.derivatives().unwrap();
        assert!(!d.lists_flat_positions());
        assert_eq!(
            d.positions(1).path,
            "/api/v5/account/positions?instType=SWAP"
        );
        // A future's account asks FUTURES; one with both asks every type.
        let future = ("UNIUSD250328".to_owned(), "UNI-USD-250328".to_owned());
        let futures = OkxExecution::new(None, [future.clone()]);
        assert_eq!(
            futures.positions(1).path,
            "/api/v5/account/positions?instType=FUTURES"
        );
        let both = OkxExecution::new(None, [future, ("X".to_owned(), "UNI-USD-SWAP".to_owned())]);
        assert_eq!(both.positions(1).path, "/api/v5/account/positions");
        let body = r#"{"code":"0","msg":"","data":[
            {"instType":"SWAP","instId":"UNI-USD-SWAP","mgnMode":"cross","posSide":"net","pos":"-3","avgPx":"5.1234","markPx":"5.2","liqPx":"","lever":"3","ccy":"UNI"},
            {"instType":"SWAP","instId":"BTC-USDT-SWAP","mgnMode":"isolated","posSide":"net","pos":"2","avgPx":"100000.1","markPx":"100010","liqPx":"90500.5","lever":"10","ccy":"USDT"}]}"#;
        let risks = d.position_risks(body).unwrap();
        assert_eq!(risks.len(), 2);
        assert_eq!(
            risks[0],
            PositionRiskState {
                symbol: "UNIUSDSWAP".into(),
                qty: -300_000_000,
                entry_price: Price(512_340_000),
                mark_price: Price(520_000_000),
                liquidation_price: Price(0),
                leverage: 3,
                isolated: false,
            }
        );
        assert!(risks[1].isolated);
        assert_eq!(risks[1].liquidation_price, Price(9_050_050_000_000));
        let hedged = body.replace(r#""posSide":"net""#, r#""posSide":"long""#);
        assert!(d.position_risks(&hedged).is_err());
        // OKX's computed prices carry more than 8 decimals: truncated, not refused; another
        // desk's rows on the account (an instrument not ours, even in hedge mode) are skipped.
        let long = r#"{"code":"0","msg":"","data":[
            {"instType":"SWAP","instId":"ETH-USD-SWAP","mgnMode":"cross","posSide":"long","pos":"7","avgPx":"x","lever":"2.5"},
            {"instType":"SWAP","instId":"UNI-USD-SWAP","mgnMode":"cross","posSide":"net","pos":"-3","avgPx":"5.123456789123","markPx":"5.2000000001","liqPx":"1438.7380360728976","lever":"3"}]}"#;
        let risks = d.position_risks(long).unwrap();
        assert_eq!(risks.len(), 1);
        assert_eq!(
            (
                risks[0].entry_price,
                risks[0].mark_price,
                risks[0].liquidation_price
            ),
            (
                Price(512_345_678),
                Price(520_000_000),
                Price(143_873_803_607)
            )
        );
    }

    #[test]
    fn funding_bills_are_payments_oldest_first_never_understated() {
        let c = client();
        let d = c.derivatives().unwrap();
        assert_eq!(
            d.funding_history(1_700_000_000_000, 1).path,
            "/api/v5/account/bills?instType=SWAP&type=8&begin=1700000000000&limit=100"
        );
        let body = r#"{"code":"0","msg":"","data":[
            {"billId":"702","type":"8","subType":"174","instId":"BTC-USDT-SWAP","ccy":"USDT","pnl":"0.123456789","balChg":"0.123456789","ts":"1700000002000"},
            {"billId":"701","type":"8","subType":"173","instId":"UNI-USD-SWAP","ccy":"UNI","pnl":"-0.000123456789","balChg":"-0.000123456789","ts":"1700000001000"},
            {"billId":"700","type":"2","subType":"1","instId":"UNI-USD-SWAP","ccy":"UNI","pnl":"5","balChg":"5","ts":"1700000000000"}]}"#;
        let p = d.funding_payments(body).unwrap();
        assert_eq!(p.len(), 2, "the trade bill is not a funding payment");
        assert_eq!(
            p[0],
            FundingPayment {
                symbol: "UNIUSDSWAP".into(),
                asset: "UNI".into(),
                // -0.00012345|6789: a payment made, rounded away from zero.
                amount: -12_346,
                time_ms: 1_700_000_001_000,
                id: 701,
            }
        );
        // 0.12345678|9 received: rounded down.
        assert_eq!(
            (p[1].symbol.as_str(), p[1].amount),
            ("BTCUSDTSWAP", 12_345_678)
        );
        // Without pnl: the account's and the position's balance changes (isolated margin
        // moves the position's).
        let isolated = r#"{"code":"0","data":[{"billId":"9","type":"8","instId":"BTC-USDT-SWAP","ccy":"USDT","pnl":"","balChg":"0","posBalChg":"-0.5","ts":"5"}]}"#;
        assert_eq!(d.funding_payments(isolated).unwrap()[0].amount, -50_000_000);
    }

    #[test]
    fn a_funding_push_names_its_positions_and_leaves_the_amount_to_the_bills() {
        let c = client();
        let frame = r#"{"arg":{"channel":"balance_and_position","uid":"1"},"data":[{"pTime":"1700000001000","eventType":"funding_fee","balData":[{"ccy":"UNI","cashBal":"99.99987654","uTime":"1700000001000"}],"posData":[{"posId":"1","tradeId":"9","instId":"UNI-USD-SWAP","instType":"SWAP","mgnMode":"cross","posSide":"net","pos":"-3","ccy":"UNI","posCcy":"","avgPx":"5.1234","uTime":"1700000001000"}],"trades":[]}]}"#;
        let PrivateEvent::Account(change) = c.private_event(frame).unwrap() else {
            panic!("not an account change");
        };
        assert_eq!(change.reason, AccountReason::Funding);
        assert!(change.balance_changes.is_empty());
        assert_eq!(
            change.positions,
            vec![VenuePosition {
                symbol: "UNIUSDSWAP".into(),
                qty: -300_000_000,
                entry_price: Price(512_340_000),
            }]
        );
        assert_eq!(change.time_ms, 1_700_000_001_000);
        let filled = frame.replace("funding_fee", "filled");
        let PrivateEvent::Account(change) = c.private_event(&filled).unwrap() else {
            panic!("not an account change");
        };
        assert_eq!(change.reason, AccountReason::Order);
    }
}
