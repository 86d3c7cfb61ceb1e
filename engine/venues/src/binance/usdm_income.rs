//! USD-M income history (`GET /fapi/v1/income`, USER_DATA, weight 30), as Binance documents
//! it: records of `symbol` ("" when none), `incomeType` (`FUNDING_FEE`, `COMMISSION`,
//! `REALIZED_PNL`, `TRANSFER`, ...), `income` (signed decimal string), `asset`, `info`, `time`
//! (ms), `tranId` (a number, unique within its income type for the account) and `tradeId`
//! (a string, "" when none). Parameters `symbol`, `incomeType`, `startTime`, `endTime`
//! (inclusive, ms), `page`, `limit` (default 100, at most 1000), `recvWindow`, `timestamp`.
//!
//! The engine asks for `FUNDING_FEE` records to attribute a cross-margin funding payment to
//! its symbols (the `ACCOUNT_UPDATE` that announces it names none); the sim writes them.

use std::borrow::Cow;

use serde::Deserialize;

use super::errors::OrderError;
use super::wire::{close_object, dec_field, json, put_dec, put_num, put_str};

pub const INCOME_PATH: &str = "/fapi/v1/income";
/// `incomeType` of a funding payment.
pub const FUNDING_FEE: &str = "FUNDING_FEE";
/// The most records one request returns.
pub const MAX_INCOME_LIMIT: u32 = 1000;

/// One income record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomeRecord {
    pub symbol: String,
    pub income_type: String,
    /// Signed, 10^-8 of `asset`: positive received.
    pub income: i64,
    pub asset: String,
    pub info: String,
    pub time_ms: u64,
    pub tran_id: u64,
    pub trade_id: String,
}

/// The query (before `timestamp` and the signature) for the funding payments from
/// `start_ms` on, the most a request returns.
pub fn funding_query(start_ms: u64) -> String {
    format!("incomeType={FUNDING_FEE}&startTime={start_ms}&limit={MAX_INCOME_LIMIT}")
}

/// The answer, as Binance writes it.
pub fn format_income(records: &[IncomeRecord]) -> String {
    let mut out = String::with_capacity(2 + 200 * records.len());
    out.push('[');
    for (k, r) in records.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push('{');
        put_str(&mut out, "symbol", &r.symbol);
        put_str(&mut out, "incomeType", &r.income_type);
        put_dec(&mut out, "income", r.income);
        put_str(&mut out, "asset", &r.asset);
        put_str(&mut out, "info", &r.info);
        put_num(&mut out, "time", r.time_ms);
        put_num(&mut out, "tranId", r.tran_id);
        put_str(&mut out, "tradeId", &r.trade_id);
        close_object(&mut out);
    }
    out.push(']');
    out
}

pub fn parse_income(body: &str) -> Result<Vec<IncomeRecord>, OrderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw<'a> {
        #[serde(borrow)]
        symbol: Cow<'a, str>,
        #[serde(borrow)]
        income_type: Cow<'a, str>,
        #[serde(borrow)]
        income: Cow<'a, str>,
        #[serde(borrow)]
        asset: Cow<'a, str>,
        #[serde(borrow, default)]
        info: Option<Cow<'a, str>>,
        time: u64,
        tran_id: u64,
        #[serde(borrow, default)]
        trade_id: Option<Cow<'a, str>>,
    }
    let raw: Vec<Raw<'_>> = json(body, "income")?;
    raw.into_iter()
        .map(|r| {
            Ok(IncomeRecord {
                income: dec_field(&r.income, "income")?,
                symbol: r.symbol.into_owned(),
                income_type: r.income_type.into_owned(),
                asset: r.asset.into_owned(),
                info: r.info.map(Cow::into_owned).unwrap_or_default(),
                time_ms: r.time,
                tran_id: r.tran_id,
                trade_id: r.trade_id.map(Cow::into_owned).unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binance's documented example answer reads as written.
    #[test]
    fn the_documented_example_reads() {
        let body = r#"[{"symbol":"","incomeType":"TRANSFER","income":"-0.37500000","asset":"USDT","info":"TRANSFER","time":1570608000000,"tranId":9689322392,"tradeId":""},{"symbol":"BTCUSDT","incomeType":"COMMISSION","income":"-0.01000000","asset":"USDT","info":"COMMISSION","time":1570636800000,"tranId":9689322392,"tradeId":"2059192"}]"#;
        let r = parse_income(body).expect("reads");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].symbol, "");
        assert_eq!(r[0].income, -37_500_000);
        assert_eq!(r[1].symbol, "BTCUSDT");
        assert_eq!(
            (r[1].tran_id, r[1].time_ms),
            (9_689_322_392, 1_570_636_800_000)
        );
        assert_eq!(r[1].trade_id, "2059192");
    }

    #[test]
    fn formatted_records_read_back() {
        let records = vec![
            IncomeRecord {
                symbol: "BTCUSDT".into(),
                income_type: FUNDING_FEE.into(),
                income: -123_456,
                asset: "USDT".into(),
                info: FUNDING_FEE.into(),
                time_ms: 1_700_000_000_000,
                tran_id: 7,
                trade_id: String::new(),
            },
            IncomeRecord {
                symbol: "ETHUSDT".into(),
                income_type: FUNDING_FEE.into(),
                income: 99,
                asset: "USDT".into(),
                info: FUNDING_FEE.into(),
                time_ms: 1_700_000_000_000,
                tran_id: 8,
                trade_id: String::new(),
            },
        ];
        assert_eq!(
            parse_income(&format_income(&records)).expect("reads"),
            records
        );
        assert_eq!(parse_income("[]").expect("empty"), vec![]);
        assert!(parse_income(r#"[{"symbol":"X"}]"#).is_err());
        assert_eq!(
            funding_query(5),
            "incomeType=FUNDING_FEE&startTime=5&limit=1000"
        );
    }
}
