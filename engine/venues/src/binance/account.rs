//! Binance Spot's account and instrument metadata, without I/O: `GET /api/v3/account` (the
//! account's balances) and `GET /api/v3/exchangeInfo` (each symbol's filters), written as the
//! venue answers them (the sim venue) and read back (the engine's start-up and periodic checks).
//!
//! Formats as Binance documents them (binance-spot-api-docs, rest-api.md): `account` answers
//! `{"makerCommission":..,"canTrade":..,"updateTime":..,"accountType":"SPOT","balances":
//! [{"asset":"BTC","free":"..","locked":".."}],"permissions":["SPOT"],..}`; `exchangeInfo`
//! answers `{"timezone":"UTC","serverTime":..,"rateLimits":[..],"exchangeFilters":[],
//! "symbols":[{"symbol":..,"status":"TRADING","baseAsset":..,"quoteAsset":..,"filters":[
//! {"filterType":"PRICE_FILTER","tickSize":..},{"filterType":"LOT_SIZE","stepSize":..},
//! {"filterType":"NOTIONAL","minNotional":..}]}]}` (older symbols carry `MIN_NOTIONAL`
//! instead of `NOTIONAL`: either is read).

use std::fmt::Write as _;

use serde_json::Value;

use super::wire::{format_units, parse_decimal};

/// `GET /api/v3/account` (signed, weight 20).
pub const ACCOUNT_PATH: &str = "/api/v3/account";
/// `GET /api/v3/exchangeInfo` (public, weight 20).
pub const EXCHANGE_INFO_PATH: &str = "/api/v3/exchangeInfo";

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("{0} is missing or not of its type")]
    Field(String),
    #[error("{name}: {value:?} is not a decimal")]
    Decimal { name: String, value: String },
}

pub use crate::execution::{Balance, FilterMismatch, SymbolFilters};

/// The answer to `GET /api/v3/account`, as Binance writes it.
pub fn format_account(balances: &[Balance], update_time_ms: u64) -> String {
    let mut out = String::with_capacity(512 + 80 * balances.len());
    let _ = write!(
        out,
        "{{\"makerCommission\":10,\"takerCommission\":10,\"buyerCommission\":0,\
         \"sellerCommission\":0,\"commissionRates\":{{\"maker\":\"0.00100000\",\
         \"taker\":\"0.00100000\",\"buyer\":\"0.00000000\",\"seller\":\"0.00000000\"}},\
         \"canTrade\":true,\"canWithdraw\":true,\"canDeposit\":true,\"brokered\":false,\
         \"requireSelfTradePrevention\":false,\"preventSor\":false,\"updateTime\":{update_time_ms},\
         \"accountType\":\"SPOT\",\"balances\":["
    );
    for (k, b) in balances.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"asset\":{},\"free\":\"{}\",\"locked\":\"{}\"}}",
            Value::String(b.asset.clone()),
            format_units(b.free),
            format_units(b.locked)
        );
    }
    out.push_str("],\"permissions\":[\"SPOT\"],\"uid\":1}");
    out
}

fn json(body: &str) -> Result<Value, AccountError> {
    serde_json::from_str(body).map_err(|e| AccountError::Json(e.to_string()))
}

fn text<'a>(v: &'a Value, name: &str) -> Result<&'a str, AccountError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| AccountError::Field(name.to_owned()))
}

fn units(v: &Value, name: &str, context: &str) -> Result<i64, AccountError> {
    let t = text(v, name)?;
    parse_decimal(t, "decimal").map_err(|_| AccountError::Decimal {
        name: format!("{context}.{name}"),
        value: t.to_owned(),
    })
}

/// Reads the balances of a `GET /api/v3/account` answer.
pub fn parse_account(body: &str) -> Result<Vec<Balance>, AccountError> {
    let v = json(body)?;
    let list = v
        .get("balances")
        .and_then(Value::as_array)
        .ok_or_else(|| AccountError::Field("balances".to_owned()))?;
    list.iter()
        .map(|b| {
            let asset = text(b, "asset")?.to_owned();
            Ok(Balance {
                free: units(b, "free", &asset)?,
                locked: units(b, "locked", &asset)?,
                asset,
            })
        })
        .collect()
}

/// The answer to `GET /api/v3/exchangeInfo` for these symbols, as Binance writes it.
pub fn format_exchange_info(symbols: &[SymbolFilters], server_time_ms: u64) -> String {
    let mut out = String::with_capacity(1024 + 1024 * symbols.len());
    let _ = write!(
        out,
        "{{\"timezone\":\"UTC\",\"serverTime\":{server_time_ms},\"rateLimits\":[\
         {{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,\"limit\":6000}},\
         {{\"rateLimitType\":\"ORDERS\",\"interval\":\"SECOND\",\"intervalNum\":10,\"limit\":100}},\
         {{\"rateLimitType\":\"ORDERS\",\"interval\":\"DAY\",\"intervalNum\":1,\"limit\":200000}},\
         {{\"rateLimitType\":\"RAW_REQUESTS\",\"interval\":\"MINUTE\",\"intervalNum\":5,\"limit\":61000}}],\
         \"exchangeFilters\":[],\"symbols\":["
    );
    for (k, s) in symbols.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"symbol\":{},\"status\":\"TRADING\",\"baseAsset\":{},\"baseAssetPrecision\":8,\
             \"quoteAsset\":{},\"quotePrecision\":8,\"quoteAssetPrecision\":8,\
             \"baseCommissionPrecision\":8,\"quoteCommissionPrecision\":8,\
             \"orderTypes\":[\"LIMIT\",\"LIMIT_MAKER\",\"MARKET\",\"STOP_LOSS_LIMIT\",\"TAKE_PROFIT_LIMIT\"],\
             \"icebergAllowed\":true,\"ocoAllowed\":true,\"otoAllowed\":true,\
             \"quoteOrderQtyMarketAllowed\":true,\"allowTrailingStop\":true,\"cancelReplaceAllowed\":true,\
             \"isSpotTradingAllowed\":true,\"isMarginTradingAllowed\":false,\
             \"filters\":[\
             {{\"filterType\":\"PRICE_FILTER\",\"minPrice\":\"{tick}\",\"maxPrice\":\"1000000.00000000\",\"tickSize\":\"{tick}\"}},\
             {{\"filterType\":\"LOT_SIZE\",\"minQty\":\"{step}\",\"maxQty\":\"9000.00000000\",\"stepSize\":\"{step}\"}},\
             {{\"filterType\":\"NOTIONAL\",\"minNotional\":\"{min}\",\"applyMinToMarket\":true,\
             \"maxNotional\":\"9000000.00000000\",\"applyMaxToMarket\":false,\"avgPriceMins\":5}}],\
             \"permissions\":[],\"permissionSets\":[[\"SPOT\"]],\
             \"defaultSelfTradePreventionMode\":\"EXPIRE_MAKER\",\
             \"allowedSelfTradePreventionModes\":[\"EXPIRE_TAKER\",\"EXPIRE_MAKER\",\"EXPIRE_BOTH\"]}}",
            Value::String(s.symbol.clone()),
            Value::String(s.base_asset.clone()),
            Value::String(s.quote_asset.clone()),
            tick = format_units(s.tick_size),
            step = format_units(s.step_size),
            min = format_units(s.min_notional),
        );
    }
    out.push_str("]}");
    out
}

/// Reads the filters of every symbol of a `GET /api/v3/exchangeInfo` answer.
pub fn parse_exchange_info(body: &str) -> Result<Vec<SymbolFilters>, AccountError> {
    let v = json(body)?;
    let list = v
        .get("symbols")
        .and_then(Value::as_array)
        .ok_or_else(|| AccountError::Field("symbols".to_owned()))?;
    list.iter()
        .map(|s| {
            let symbol = text(s, "symbol")?.to_owned();
            let filters = s
                .get("filters")
                .and_then(Value::as_array)
                .ok_or_else(|| AccountError::Field(format!("{symbol}.filters")))?;
            let find = |types: &[&str]| {
                filters.iter().find(|f| {
                    f.get("filterType")
                        .and_then(Value::as_str)
                        .is_some_and(|t| types.contains(&t))
                })
            };
            let missing = |name: &str| AccountError::Field(format!("{symbol}.filters.{name}"));
            let price = find(&["PRICE_FILTER"]).ok_or_else(|| missing("PRICE_FILTER"))?;
            let lot = find(&["LOT_SIZE"]).ok_or_else(|| missing("LOT_SIZE"))?;
            let notional =
                find(&["NOTIONAL", "MIN_NOTIONAL"]).ok_or_else(|| missing("NOTIONAL"))?;
            Ok(SymbolFilters {
                base_asset: text(s, "baseAsset")?.to_owned(),
                quote_asset: text(s, "quoteAsset")?.to_owned(),
                tick_size: units(price, "tickSize", &symbol)?,
                step_size: units(lot, "stepSize", &symbol)?,
                min_notional: units(notional, "minNotional", &symbol)?,
                symbol,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const UNIT: i64 = 100_000_000;

    #[test]
    fn account_round_trips_and_reads_binances_own_example() {
        let balances = vec![
            Balance {
                asset: "BTC".into(),
                free: UNIT,
                locked: 5_000,
            },
            Balance {
                asset: "USDT".into(),
                free: 100_000 * UNIT,
                locked: 0,
            },
        ];
        let text = format_account(&balances, 123);
        assert_eq!(parse_account(&text).unwrap(), balances);
        assert_eq!(balances[0].total(), i128::from(UNIT + 5_000));
        // The documented example's shape (rest-api.md, "Account information").
        let doc = r#"{"makerCommission":15,"takerCommission":15,"buyerCommission":0,
            "sellerCommission":0,"commissionRates":{"maker":"0.00150000","taker":"0.00150000",
            "buyer":"0.00000000","seller":"0.00000000"},"canTrade":true,"canWithdraw":true,
            "canDeposit":true,"brokered":false,"requireSelfTradePrevention":false,
            "preventSor":false,"updateTime":123456789,"accountType":"SPOT","balances":[
            {"asset":"BTC","free":"4723846.89208129","locked":"0.00000000"},
            {"asset":"LTC","free":"4763368.68006011","locked":"0.00000000"}],
            "permissions":["SPOT"],"uid":354937868}"#;
        let got = parse_account(doc).unwrap();
        assert_eq!(got[0].asset, "BTC");
        assert_eq!(got[0].free, 472_384_689_208_129);
        assert_eq!(got[1].locked, 0);
        assert!(matches!(
            parse_account(r#"{"balances":[{"asset":"BTC","free":"x","locked":"0"}]}"#),
            Err(AccountError::Decimal { .. })
        ));
        assert!(parse_account("{}").is_err());
    }

    #[test]
    fn exchange_info_round_trips_and_names_each_differing_filter() {
        let btc = SymbolFilters {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: UNIT / 100,
            step_size: 1_000,
            min_notional: 5 * UNIT,
        };
        let text = format_exchange_info(std::slice::from_ref(&btc), 1);
        let got = parse_exchange_info(&text).unwrap();
        assert_eq!(got, vec![btc.clone()]);
        assert!(btc.mismatches(&got[0]).is_empty());
        let venue = SymbolFilters {
            tick_size: UNIT / 10,
            min_notional: 10 * UNIT,
            ..btc.clone()
        };
        let m = btc.mismatches(&venue);
        assert_eq!(
            m,
            vec![
                FilterMismatch {
                    filter: "PRICE_FILTER.tickSize",
                    configured: UNIT / 100,
                    venue: UNIT / 10
                },
                FilterMismatch {
                    filter: "NOTIONAL.minNotional",
                    configured: 5 * UNIT,
                    venue: 10 * UNIT
                },
            ]
        );
        // An older symbol's MIN_NOTIONAL filter is read too.
        let old = text.replace("\"NOTIONAL\"", "\"MIN_NOTIONAL\"");
        assert_eq!(parse_exchange_info(&old).unwrap(), vec![btc]);
        let no_lot = text.replace("LOT_SIZE", "ICEBERG_PARTS");
        assert_eq!(
            parse_exchange_info(&no_lot),
            Err(AccountError::Field("BTCUSDT.filters.LOT_SIZE".into()))
        );
    }
}
