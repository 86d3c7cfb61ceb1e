//! The OKX desk's derivatives account ([`crate::okx_orders`]): each swap's net position with
//! its average open price, the leverage set per instrument and margin mode, and the funding
//! payments made, as OKX's "Trading Account" endpoints show them (`rt_venues::okx::account`):
//!
//! - `GET /api/v5/account/config`: `posMode` `net_mode` (the `hedge_mode` fault makes it
//!   `long_short_mode`, which the engine must refuse to trade in);
//! - `POST /api/v5/account/set-leverage` `{"instId","lever","mgnMode"}`: a whole leverage of
//!   1-125 on a swap the desk serves (`51000` otherwise), answered with what is in force;
//! - `GET /api/v5/account/positions`: the open positions (`pos` signed, contracts; `avgPx` the
//!   average open price in the contract's value: harmonic for an inverse contract; `markPx`
//!   the book's mid; `liqPx` empty: the sim keeps no margin, so nothing is ever liquidated;
//!   `lever` and `mgnMode` of the position's last order);
//! - `GET /api/v5/account/bills?type=8`: the funding payments, newest first (`begin`, `limit`);
//! - the `funding` fault (`POST /sim/okx/fault?kind=funding&rate=R`): every open position
//!   pays (`R` > 0: longs pay shorts) `R` x its value at the mark, in the settlement currency
//!   (`|pos| x ctVal x ctMult / mark` coins for an inverse contract, `x mark` for a linear
//!   one), as a bill (type `8`, subtype `173` paid or `174` received, `pnl` = `balChg`) and a
//!   `balance_and_position` push with `eventType` `funding_fee`.
//! - a futures contract's delivery: at its expiry (the listing's `expiry_ms`, the wall clock)
//!   its open position is closed at the book's mid (the sim's mark), without a fill, pushed on
//!   `balance_and_position` with `eventType` `delivered` (the position now `0`), and listed by
//!   `GET /api/v5/public/delivery-exercise-history?instType=FUTURES&instFamily=F` as OKX lists
//!   it (`{ts, details: [{type: "delivery", insId, px}]}`, newest first). From then on orders
//!   on it are refused (`51027` contract expired, `okx_orders`).

use std::collections::HashMap;

use rt_core::{ContractValue, Price, Side, SCALE};
use rt_venues::okx::execution::format_decimal;
use serde_json::{json, Value};

/// The highest leverage OKX offers on a swap.
pub const MAX_LEVER: u32 = 125;

/// One swap's net position.
#[derive(Debug, Default, Clone)]
struct Held {
    /// Signed contracts, 10^-8.
    qty: i64,
    /// Sum over the open contracts of their value price (`ContractValue::value_price`) x
    /// quantity / 10^8: the average open price is its way back.
    value: i128,
    isolated: bool,
}

impl Held {
    /// The margin mode as OKX names it.
    fn mode(&self) -> &'static str {
        if self.isolated {
            "isolated"
        } else {
            "cross"
        }
    }
}

/// A contract the desk serves: its config name, `instId`, terms and settlement currency.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub inst_id: String,
    pub terms: ContractValue,
    pub settle: String,
    /// A futures contract's expiry (ms since the epoch).
    pub expiry_ms: Option<u64>,
}

/// The account's derivatives.
#[derive(Debug, Default)]
pub struct OkxAccount {
    contracts: Vec<Listed>,
    held: HashMap<String, Held>,
    /// (config name, isolated) -> leverage set.
    lever: HashMap<(String, bool), u32>,
    /// Funding bills, oldest first.
    bills: Vec<Value>,
    next_bill: u64,
    pub hedge_mode: bool,
    /// Funding payments made (`/sim/okx/status`).
    pub funding_payments: u64,
    /// Futures deliveries made, oldest first (the delivery history's rows), and the contracts
    /// delivered.
    deliveries: Vec<Value>,
    delivered: Vec<String>,
}

/// The leverage of a position never set: OKX's default for a new account's swaps.
const DEFAULT_LEVER: u32 = 3;

impl OkxAccount {
    pub fn new(contracts: Vec<Listed>) -> OkxAccount {
        OkxAccount {
            contracts,
            next_bill: 1,
            ..OkxAccount::default()
        }
    }

    pub fn listed(&self, name: &str) -> Option<&Listed> {
        self.contracts.iter().find(|c| c.name == name)
    }

    fn by_inst(&self, inst_id: &str) -> Option<&Listed> {
        self.contracts.iter().find(|c| c.inst_id == inst_id)
    }

    /// Whether `name` is a futures contract whose expiry `now_ms` has reached.
    pub fn expired(&self, name: &str, now_ms: u64) -> bool {
        self.listed(name)
            .and_then(|c| c.expiry_ms)
            .is_some_and(|e| now_ms >= e)
    }

    /// The contracts whose expiry `now_ms` has reached and that are not delivered yet.
    pub fn due(&self, now_ms: u64) -> Vec<String> {
        self.contracts
            .iter()
            .filter(|c| {
                c.expiry_ms.is_some_and(|e| now_ms >= e) && !self.delivered.contains(&c.name)
            })
            .map(|c| c.name.clone())
            .collect()
    }

    /// Delivers the expired contract `name` at `price` (the sim's mark at expiry): its open
    /// position is closed there without a fill, the delivery is listed in the history, and
    /// the `balance_and_position` push (`eventType` `delivered`) is returned when a position
    /// was open. Once a contract.
    pub fn deliver(&mut self, name: &str, price: Price, now_ms: u64) -> Option<String> {
        let c = self.listed(name)?.clone();
        if self.delivered.contains(&c.name) {
            return None;
        }
        self.delivered.push(c.name.clone());
        self.deliveries.push(json!({
            "ts": now_ms.to_string(),
            "details": [{"type": "delivery", "insId": c.inst_id, "px": format_decimal(price.0)}],
        }));
        let h = self.held.get_mut(&c.name).filter(|h| h.qty != 0)?;
        h.qty = 0;
        h.value = 0;
        let h = h.clone();
        Some(self.balance_and_position(&c, &h, price, now_ms, "delivered"))
    }

    /// A `balance_and_position` push of `event` (OKX's `eventType`) on contract `c`'s
    /// position `h` (as the positions endpoint lists it, marked at `mark`).
    fn balance_and_position(
        &self,
        c: &Listed,
        h: &Held,
        mark: Price,
        now_ms: u64,
        event: &str,
    ) -> String {
        json!({
            "arg": {"channel": "balance_and_position", "uid": "1"},
            "data": [{
                "pTime": now_ms.to_string(),
                "eventType": event,
                "balData": [{"ccy": c.settle, "cashBal": "", "uTime": now_ms.to_string()}],
                "posData": [self.position_json(c, h, Some(mark), now_ms)],
                "trades": [],
            }],
        })
        .to_string()
    }

    /// `GET /api/v5/public/delivery-exercise-history` of a family (`BTC-USD`): its
    /// contracts' deliveries, newest first.
    pub fn delivery_history(&self, family: &str) -> Vec<Value> {
        let prefix = format!("{family}-");
        self.deliveries
            .iter()
            .rev()
            .filter(|row| {
                row["details"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["insId"].as_str().is_some_and(|i| i.starts_with(&prefix)))
            })
            .cloned()
            .collect()
    }

    /// The net position of a contract (0 for an unknown one).
    pub fn position(&self, name: &str) -> i64 {
        self.held.get(name).map_or(0, |h| h.qty)
    }

    /// The margin mode an order of `name` was placed in (the position's from then on).
    pub fn order_mode(&mut self, name: &str, isolated: bool) {
        if self.listed(name).is_some() {
            self.held.entry(name.to_owned()).or_default().isolated = isolated;
        }
    }

    /// Whether `name`'s orders are in isolated margin (its last order's mode).
    pub fn isolated(&self, name: &str) -> bool {
        self.held.get(name).is_some_and(|h| h.isolated)
    }

    /// A fill of `qty` (10^-8 contracts) at `price` on `name`.
    pub fn on_fill(&mut self, name: &str, side: Side, price: Price, qty: i64) {
        let Some(terms) = self.listed(name).map(|c| c.terms) else {
            return;
        };
        let h = self.held.entry(name.to_owned()).or_default();
        let signed = if side == Side::Buy { qty } else { -qty };
        let unit = i128::from(terms.value_price(price.0));
        let wide = i128::from(SCALE);
        if h.qty == 0 || (h.qty > 0) == (signed > 0) {
            h.value += unit * i128::from(qty) / wide;
        } else {
            let open = i128::from(h.qty.abs());
            let closed = i128::from(qty).min(open);
            h.value -= h.value * closed / open;
            if i128::from(qty) > open {
                h.value = unit * (i128::from(qty) - open) / wide;
            }
        }
        h.qty = h.qty.saturating_add(signed);
        if h.qty == 0 {
            h.value = 0;
        }
    }

    fn avg_px(&self, terms: ContractValue, h: &Held) -> i64 {
        if h.qty == 0 {
            return 0;
        }
        let per_unit = h.value * i128::from(SCALE) / i128::from(h.qty.abs());
        terms.price_of_value(per_unit).unwrap_or(0)
    }

    /// `POST /api/v5/account/set-leverage`: the answer's `data` entry, or the refusal's code
    /// and message.
    pub fn set_leverage(&mut self, body: &Value) -> Result<Value, (i64, String)> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
        let inst = text("instId");
        let Some(name) = self.by_inst(inst).map(|c| c.name.clone()) else {
            return Err((
                51001,
                format!("Instrument ID {inst:?} does not exist (a swap of this desk)."),
            ));
        };
        let isolated = match text("mgnMode") {
            "cross" => false,
            "isolated" => true,
            other => return Err((51000, format!("Parameter mgnMode error: {other:?}"))),
        };
        let lever = text("lever")
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LEVER).contains(l))
            .ok_or_else(|| (51000, format!("Parameter lever error: {:?}", text("lever"))))?;
        self.lever.insert((name, isolated), lever);
        Ok(
            json!({"instId": inst, "lever": lever.to_string(), "mgnMode": text("mgnMode"), "posSide": ""}),
        )
    }

    fn lever_of(&self, name: &str, isolated: bool) -> u32 {
        self.lever
            .get(&(name.to_owned(), isolated))
            .copied()
            .unwrap_or(DEFAULT_LEVER)
    }

    /// `GET /api/v5/account/config`'s entry.
    pub fn config(&self) -> Value {
        let mode = if self.hedge_mode {
            "long_short_mode"
        } else {
            "net_mode"
        };
        json!({"acctLv": "2", "posMode": mode, "uid": "1"})
    }

    /// One open position as OKX lists it, marked at `mark`.
    fn position_json(&self, c: &Listed, h: &Held, mark: Option<Price>, now_ms: u64) -> Value {
        json!({
            "instType": rt_venues::okx::execution::inst_type(&c.inst_id),
            "instId": c.inst_id,
            "mgnMode": h.mode(),
            "posSide": "net",
            "pos": format_decimal(h.qty),
            "avgPx": format_decimal(self.avg_px(c.terms, h)),
            "markPx": mark.map_or_else(String::new, |m| format_decimal(m.0)),
            "liqPx": "",
            "lever": self.lever_of(&c.name, h.isolated).to_string(),
            "ccy": c.settle,
            "uTime": now_ms.to_string(),
        })
    }

    /// `GET /api/v5/account/positions`: the open positions, each marked by `mark`.
    pub fn positions(&self, mark: &dyn Fn(&str) -> Option<Price>, now_ms: u64) -> Vec<Value> {
        self.contracts
            .iter()
            .filter_map(|c| {
                let h = self.held.get(&c.name).filter(|h| h.qty != 0)?;
                Some(self.position_json(c, h, mark(&c.name), now_ms))
            })
            .collect()
    }

    /// `GET /api/v5/account/bills`: funding bills (`type` 8; no other type is kept), newest
    /// first, from `begin` ms on, at most `limit`.
    pub fn bills(&self, kind: Option<&str>, begin: u64, limit: usize) -> Vec<Value> {
        if kind.is_some_and(|k| k != "8") {
            return Vec::new();
        }
        self.bills
            .iter()
            .rev()
            .filter(|b| {
                b.get("ts")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_some_and(|t| t >= begin)
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// The `funding` fault at `rate` (10^-8; positive: longs pay shorts): every open position
    /// pays or receives its value at the mark x rate. The `balance_and_position` pushes, one a
    /// position.
    pub fn fund(
        &mut self,
        rate: i64,
        mark: &dyn Fn(&str) -> Option<Price>,
        now_ms: u64,
    ) -> Vec<String> {
        let mut pushes = Vec::new();
        for c in self.contracts.clone() {
            let Some(h) = self.held.get(&c.name).filter(|h| h.qty != 0).cloned() else {
                continue;
            };
            let Some(m) = mark(&c.name) else {
                continue;
            };
            let wide = i128::from(SCALE);
            // The position's value in the settlement currency, signed like the position.
            let value = i128::from(c.terms.value_price(m.0)).abs() * i128::from(h.qty) / wide;
            let paid = -(value * i128::from(rate)).div_euclid(wide);
            let Ok(amount) = i64::try_from(paid) else {
                continue;
            };
            let id = self.next_bill;
            self.next_bill += 1;
            self.funding_payments += 1;
            let amount_text = format_decimal(amount);
            self.bills.push(json!({
                "billId": id.to_string(),
                "instType": "SWAP",
                "instId": c.inst_id,
                "ccy": c.settle,
                "type": "8",
                "subType": if amount < 0 { "173" } else { "174" },
                "pnl": amount_text,
                "balChg": amount_text,
                "px": format_decimal(m.0),
                "sz": format_decimal(h.qty.abs()),
                "mgnMode": h.mode(),
                "ts": now_ms.to_string(),
            }));
            // The position paid on, as the positions endpoint lists it.
            pushes.push(self.balance_and_position(&c, &h, m, now_ms, "funding_fee"));
        }
        pushes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const UNI: ContractValue = ContractValue::Inverse {
        multiplier: 10 * SCALE,
    };

    fn account() -> OkxAccount {
        OkxAccount::new(vec![Listed {
            name: "UNIUSDSWAP".into(),
            inst_id: "UNI-USD-SWAP".into(),
            terms: UNI,
            settle: "UNI".into(),
            expiry_ms: None,
        }])
    }

    #[test]
    fn a_future_is_delivered_once_at_its_expiry_and_listed_in_the_history() {
        let mut a = OkxAccount::new(vec![Listed {
            name: "UNIUSD261206".into(),
            inst_id: "UNI-USD-261206".into(),
            terms: UNI,
            settle: "UNI".into(),
            expiry_ms: Some(1_000),
        }]);
        a.on_fill("UNIUSD261206", Side::Sell, Price(5 * SCALE), 2 * SCALE);
        assert!(a.due(999).is_empty() && !a.expired("UNIUSD261206", 999));
        assert_eq!(a.due(1_000), ["UNIUSD261206"]);
        assert!(a.expired("UNIUSD261206", 1_000));
        let push = a.deliver("UNIUSD261206", Price(4 * SCALE), 1_000).unwrap();
        assert!(push.contains("\"eventType\":\"delivered\""), "{push}");
        assert!(push.contains("\"instType\":\"FUTURES\""), "{push}");
        assert!(push.contains("\"pos\":\"0\""), "{push}");
        assert_eq!(a.position("UNIUSD261206"), 0);
        assert!(a.due(2_000).is_empty());
        assert!(a.deliver("UNIUSD261206", Price(3 * SCALE), 2_000).is_none());
        let rows = a.delivery_history("UNI-USD");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0],
            json!({"ts": "1000", "details": [{"type": "delivery", "insId": "UNI-USD-261206", "px": "4"}]})
        );
        assert!(a.delivery_history("BTC-USD").is_empty());
    }

    #[test]
    fn an_inverse_position_averages_harmonically_and_pays_funding_in_coin() {
        let mut a = account();
        // 1 contract at 5, 1 at 10: 20 USD for 2/5 + 1/10 ... harmonic mean 2 / (1/5 + 1/10).
        a.on_fill("UNIUSDSWAP", Side::Buy, Price(5 * SCALE), SCALE);
        a.on_fill("UNIUSDSWAP", Side::Buy, Price(10 * SCALE), SCALE);
        let mark = |_: &str| Some(Price(8 * SCALE));
        let p = a.positions(&mark, 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["pos"], "2");
        assert_eq!(p[0]["avgPx"], "6.66666666");
        assert_eq!(p[0]["markPx"], "8");
        assert_eq!(p[0]["lever"], "3");
        // 0.01%: 2 contracts x 10 USD / 8 = 2.5 UNI, pays 0.00025 UNI.
        let pushes = a.fund(10_000, &mark, 7);
        assert_eq!(pushes.len(), 1);
        assert!(pushes[0].contains("\"eventType\":\"funding_fee\""));
        let bills = a.bills(Some("8"), 0, 100);
        assert_eq!(bills[0]["pnl"], "-0.00025");
        assert_eq!(
            (bills[0]["subType"].as_str(), bills[0]["ccy"].as_str()),
            (Some("173"), Some("UNI"))
        );
        assert!(
            a.bills(Some("8"), 8, 100).is_empty(),
            "begin filters by time"
        );
        assert!(a.bills(Some("2"), 0, 100).is_empty());
        // Closing: reduce, flip.
        a.on_fill("UNIUSDSWAP", Side::Sell, Price(9 * SCALE), 3 * SCALE);
        assert_eq!(a.position("UNIUSDSWAP"), -SCALE);
        assert_eq!(a.positions(&mark, 1)[0]["avgPx"], "9");
        // A short receives at a positive rate.
        a.fund(10_000, &mark, 9);
        assert_eq!(a.bills(Some("8"), 9, 100)[0]["pnl"], "0.000125");
        a.on_fill("UNIUSDSWAP", Side::Buy, Price(9 * SCALE), SCALE);
        assert!(
            a.positions(&mark, 1).is_empty(),
            "a flat position is not listed"
        );
        assert!(a.fund(10_000, &mark, 10).is_empty());
    }

    #[test]
    fn leverage_is_set_per_swap_and_margin_mode_and_checked() {
        let mut a = account();
        let set = |a: &mut OkxAccount, v: Value| a.set_leverage(&v);
        let ok = set(
            &mut a,
            json!({"instId": "UNI-USD-SWAP", "lever": "5", "mgnMode": "isolated"}),
        );
        assert_eq!(ok.unwrap()["lever"], "5");
        assert_eq!(a.lever_of("UNIUSDSWAP", true), 5);
        assert_eq!(a.lever_of("UNIUSDSWAP", false), DEFAULT_LEVER);
        for bad in [
            json!({"instId": "BTC-USDT", "lever": "5", "mgnMode": "cross"}),
            json!({"instId": "UNI-USD-SWAP", "lever": "126", "mgnMode": "cross"}),
            json!({"instId": "UNI-USD-SWAP", "lever": "0", "mgnMode": "cross"}),
            json!({"instId": "UNI-USD-SWAP", "lever": "5", "mgnMode": "cash"}),
        ] {
            assert!(set(&mut a, bad.clone()).is_err(), "{bad}");
        }
        a.order_mode("UNIUSDSWAP", true);
        a.on_fill("UNIUSDSWAP", Side::Sell, Price(5 * SCALE), SCALE);
        let p = a.positions(&|_| None, 1);
        assert_eq!(
            (p[0]["mgnMode"].as_str(), p[0]["lever"].as_str()),
            (Some("isolated"), Some("5"))
        );
        assert_eq!(p[0]["pos"], "-1");
    }
}
