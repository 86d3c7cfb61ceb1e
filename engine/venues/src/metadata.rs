//! A venue's own instrument metadata, asked of the venue at start and compared with the
//! manifest: the one interface through which the engine reads what a venue lists, so that the
//! runtime checks every exchange (traded or read for its market data) without naming one.
//!
//! - **Requests** ([`VenueMetadata::requests`]): Binance Spot (and the sim) `GET
//!   /api/v3/exchangeInfo`, USD-M `GET /fapi/v1/exchangeInfo`; OKX `GET
//!   /api/v5/public/instruments?instType=T`, once per type of the exchange's instruments; Kraken
//!   `GET /0/public/AssetPairs`. All public: no key is needed.
//! - **Reading** ([`VenueMetadata::parse`]) each answer into [`Listed`] instruments: the venue's
//!   symbol, whether it trades, and its [`Term`]s, each named by the venue's own field:
//!   Binance `PRICE_FILTER.tickSize`, `LOT_SIZE.stepSize`, `NOTIONAL.minNotional`; OKX
//!   `tickSz`, `lotSz`, `minSz`, `instType`, and on a swap or futures `ctVal`, `ctMult`,
//!   `ctValCcy`, `ctType`, `settleCcy`; Kraken `pair_decimals` (or `tick_size` where the venue
//!   sends it), `lot_decimals` (10^-n) and `ordermin`.
//! - **Comparing** ([`check`]) the configured instruments with them: every term that differs,
//!   an instrument the venue does not list or lists as not trading, is a [`Mismatch`] naming
//!   the exchange, the instrument, the venue's field and both values. These are the rules the
//!   compiler applies to the metadata file (`appliance/config/venues.py`), applied here to what
//!   the venue says now. OKX and Kraken publish no minimum notional: not compared.
//!
//! [`for_exchange`] picks the implementation by the manifest's `venue` and `market`.

use std::fmt;

use rt_core::Qty;
use rt_manifest::model::{ContractType, Exchange, Instrument, Market, Venue};
use serde_json::Value;

use crate::execution::{Method, VenueRequest};

/// Binance Spot's (and the sim's) metadata endpoint.
pub const BINANCE_SPOT_PATH: &str = crate::binance::account::EXCHANGE_INFO_PATH;
/// Binance USD-M's.
pub const BINANCE_USDM_PATH: &str = crate::binance::usdm::EXCHANGE_INFO_PATH;
/// OKX's, with `?instType=SPOT|SWAP|FUTURES`.
pub const OKX_PATH: &str = crate::okx::execution::INSTRUMENTS_PATH;
/// Kraken's.
pub const KRAKEN_PATH: &str = "/0/public/AssetPairs";

/// What one term of a listing is, on the configuration's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    TickSize,
    LotSize,
    MinNotional,
    /// `listing.min_size`.
    MinSize,
    /// `listing.type`.
    Type,
    /// `listing.contract.value`, `multiplier`, `value_currency`, `type`, `settle_currency`.
    ContractValue,
    ContractMultiplier,
    ValueCurrency,
    ContractType,
    SettleCurrency,
    /// `listing.expiry_ms` (a futures contract's; none elsewhere).
    Expiry,
}

/// A term's value: a decimal in 10^-8 units, or text (a type, a currency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TermValue {
    Units(i64),
    Text(String),
}

impl fmt::Display for TermValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TermValue::Units(u) => write!(f, "{}", Qty(*u)),
            TermValue::Text(t) if t.is_empty() => f.write_str("(none)"),
            TermValue::Text(t) => f.write_str(t),
        }
    }
}

/// One term of a listing, named by the venue's field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub field: &'static str,
    pub what: What,
    pub venue: TermValue,
}

/// One instrument as the venue lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The venue's symbol (Binance's `symbol`, OKX's `instId`, Kraken's `wsname`).
    pub symbol: String,
    /// The venue's state of an instrument that does not trade (`None`: it trades, or the
    /// venue does not say).
    pub halted: Option<String>,
    pub terms: Vec<Term>,
}

/// A metadata answer that is not in the venue's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{endpoint}: {reason}")]
pub struct MetadataError {
    pub endpoint: &'static str,
    pub reason: String,
}

/// A venue's instrument metadata: the requests that list it and their reading.
pub trait VenueMetadata: fmt::Debug + Send + Sync {
    /// The endpoint's name, for messages (`exchangeInfo`, `instruments`, `AssetPairs`).
    fn endpoint(&self) -> &'static str;
    /// Every request that lists the exchange's instruments.
    fn requests(&self) -> Vec<VenueRequest>;
    /// The instruments of one accepted answer (HTTP 200).
    fn parse(&self, body: &str) -> Result<Vec<Listed>, MetadataError>;
}

/// The metadata of a manifest exchange's venue.
pub fn for_exchange(exchange: &Exchange) -> Box<dyn VenueMetadata> {
    match (exchange.venue, exchange.market) {
        (Venue::BinanceUsdm, _) | (Venue::BinanceSpot | Venue::Sim, Market::Usdm) => {
            Box::new(Binance {
                path: BINANCE_USDM_PATH,
            })
        }
        (Venue::BinanceSpot | Venue::Sim, Market::Spot) => Box::new(Binance {
            path: BINANCE_SPOT_PATH,
        }),
        (Venue::Okx, _) => Box::new(Okx {
            types: okx_types(exchange),
        }),
        (Venue::Kraken, _) => Box::new(Kraken),
    }
}

fn get(path: String) -> VenueRequest {
    VenueRequest {
        method: Method::Get,
        path,
        headers: Vec::new(),
        body: String::new(),
    }
}

fn json(body: &str, endpoint: &'static str) -> Result<Value, MetadataError> {
    serde_json::from_str(body).map_err(|e| MetadataError {
        endpoint,
        reason: format!("not JSON: {e}"),
    })
}

/// A decimal string (or integer) in 10^-8 units.
fn units(v: &Value, key: &str, endpoint: &'static str, symbol: &str) -> Result<i64, MetadataError> {
    let text = match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    rt_core::parse_signed_units(text.as_bytes()).map_err(|_| MetadataError {
        endpoint,
        reason: format!("{symbol}: `{key}` {text:?} is not a decimal of at most 8 places"),
    })
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// Binance Spot and USD-M (and the sim, which serves Spot's from the manifest).
#[derive(Debug)]
struct Binance {
    path: &'static str,
}

impl VenueMetadata for Binance {
    fn endpoint(&self) -> &'static str {
        "exchangeInfo"
    }

    fn requests(&self) -> Vec<VenueRequest> {
        vec![get(self.path.to_owned())]
    }

    fn parse(&self, body: &str) -> Result<Vec<Listed>, MetadataError> {
        let fail = |reason: String| MetadataError {
            endpoint: "exchangeInfo",
            reason,
        };
        let listed = if self.path == BINANCE_USDM_PATH {
            crate::binance::usdm::parse_exchange_info(body).map_err(|e| fail(e.to_string()))?
        } else {
            crate::binance::account::parse_exchange_info(body).map_err(|e| fail(e.to_string()))?
        };
        Ok(listed
            .into_iter()
            .map(|s| Listed {
                terms: vec![
                    Term {
                        field: "PRICE_FILTER.tickSize",
                        what: What::TickSize,
                        venue: TermValue::Units(s.tick_size),
                    },
                    Term {
                        field: "LOT_SIZE.stepSize",
                        what: What::LotSize,
                        venue: TermValue::Units(s.step_size),
                    },
                    Term {
                        field: "NOTIONAL.minNotional",
                        what: What::MinNotional,
                        venue: TermValue::Units(s.min_notional),
                    },
                ],
                symbol: s.symbol,
                halted: None,
            })
            .collect())
    }
}

/// OKX v5: one list per `instType`.
#[derive(Debug)]
struct Okx {
    types: Vec<&'static str>,
}

/// The OKX `instType`s of an exchange's instruments (by the listing's type, else the
/// instrument id's form), sorted, each once.
fn okx_types(exchange: &Exchange) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = exchange
        .instruments
        .iter()
        .map(|(name, i)| match i.listing.as_ref().map(|l| l.kind) {
            Some(rt_manifest::model::InstrumentType::Spot) => "SPOT",
            Some(rt_manifest::model::InstrumentType::Swap) => "SWAP",
            Some(rt_manifest::model::InstrumentType::Futures) => "FUTURES",
            None => crate::okx::execution::inst_type(name),
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl VenueMetadata for Okx {
    fn endpoint(&self) -> &'static str {
        "instruments"
    }

    fn requests(&self) -> Vec<VenueRequest> {
        self.types
            .iter()
            .map(|t| get(format!("{OKX_PATH}?instType={t}")))
            .collect()
    }

    fn parse(&self, body: &str) -> Result<Vec<Listed>, MetadataError> {
        const E: &str = "instruments";
        let v = json(body, E)?;
        if let Some(code) = v.get("code").and_then(Value::as_str) {
            if code != "0" {
                return Err(MetadataError {
                    endpoint: E,
                    reason: format!("error {code} {}", text(&v, "msg")),
                });
            }
        }
        let rows = v
            .get("data")
            .unwrap_or(&v)
            .as_array()
            .ok_or(MetadataError {
                endpoint: E,
                reason: "no `data` list".into(),
            })?;
        let mut out = Vec::new();
        for row in rows {
            let symbol = text(row, "instId");
            let kind = match text(row, "instType").as_str() {
                "SPOT" => "spot",
                "SWAP" => "swap",
                "FUTURES" => "futures",
                // Options and margin listings are no instruments of ours.
                _ => continue,
            };
            let u = |key| units(row, key, E, &symbol).map(TermValue::Units);
            let mut terms = vec![
                Term {
                    field: "tickSz",
                    what: What::TickSize,
                    venue: u("tickSz")?,
                },
                Term {
                    field: "lotSz",
                    what: What::LotSize,
                    venue: u("lotSz")?,
                },
                Term {
                    field: "minSz",
                    what: What::MinSize,
                    venue: u("minSz")?,
                },
                Term {
                    field: "instType",
                    what: What::Type,
                    venue: TermValue::Text(kind.into()),
                },
                // ms since the epoch as OKX writes it; empty but on futures.
                Term {
                    field: "expTime",
                    what: What::Expiry,
                    venue: TermValue::Text(text(row, "expTime")),
                },
            ];
            if kind != "spot" {
                let ct_type = match text(row, "ctType").as_str() {
                    "" => "linear".to_owned(),
                    t => t.to_owned(),
                };
                terms.extend([
                    Term {
                        field: "ctVal",
                        what: What::ContractValue,
                        venue: u("ctVal")?,
                    },
                    Term {
                        field: "ctMult",
                        what: What::ContractMultiplier,
                        venue: u("ctMult")?,
                    },
                    Term {
                        field: "ctValCcy",
                        what: What::ValueCurrency,
                        venue: TermValue::Text(text(row, "ctValCcy")),
                    },
                    Term {
                        field: "ctType",
                        what: What::ContractType,
                        venue: TermValue::Text(ct_type),
                    },
                    Term {
                        field: "settleCcy",
                        what: What::SettleCurrency,
                        venue: TermValue::Text(text(row, "settleCcy")),
                    },
                ]);
            }
            let state = text(row, "state");
            out.push(Listed {
                symbol,
                halted: (!state.is_empty() && state != "live").then_some(state),
                terms,
            });
        }
        Ok(out)
    }
}

/// Kraken: `GET /0/public/AssetPairs`, pairs named by their `wsname`.
#[derive(Debug)]
struct Kraken;

/// 10^-n in 10^-8 units (`None` below 10^-8: not a figure the engine can hold).
fn pow10_units(n: u64) -> Option<i64> {
    (n <= 8).then(|| 10_i64.pow(8 - u32::try_from(n).unwrap_or(8)))
}

impl VenueMetadata for Kraken {
    fn endpoint(&self) -> &'static str {
        "AssetPairs"
    }

    fn requests(&self) -> Vec<VenueRequest> {
        vec![get(KRAKEN_PATH.to_owned())]
    }

    fn parse(&self, body: &str) -> Result<Vec<Listed>, MetadataError> {
        const E: &str = "AssetPairs";
        let v = json(body, E)?;
        if let Some(errors) = v.get("error").and_then(Value::as_array) {
            if !errors.is_empty() {
                return Err(MetadataError {
                    endpoint: E,
                    reason: format!("error {}", Value::Array(errors.clone())),
                });
            }
        }
        let pairs = v
            .get("result")
            .unwrap_or(&v)
            .as_object()
            .ok_or(MetadataError {
                endpoint: E,
                reason: "no `result` object of pairs".into(),
            })?;
        let mut out = Vec::new();
        for (key, pair) in pairs {
            let Some(symbol) = pair.get("wsname").and_then(Value::as_str) else {
                // A pair without a WebSocket name is not one the engine can read.
                continue;
            };
            let decimals = |field: &'static str| {
                let n = pair
                    .get(field)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| MetadataError {
                        endpoint: E,
                        reason: format!("pair {key}: `{field}` is missing or not an integer"),
                    })?;
                Ok::<_, MetadataError>(
                    pow10_units(n)
                        .map_or_else(|| TermValue::Text(format!("1e-{n}")), TermValue::Units),
                )
            };
            let tick = match pair.get("tick_size") {
                Some(_) => Term {
                    field: "tick_size",
                    what: What::TickSize,
                    venue: TermValue::Units(units(pair, "tick_size", E, symbol)?),
                },
                None => Term {
                    field: "pair_decimals",
                    what: What::TickSize,
                    venue: decimals("pair_decimals")?,
                },
            };
            let status = text(pair, "status");
            out.push(Listed {
                symbol: symbol.to_owned(),
                halted: (!status.is_empty() && status != "online").then_some(status),
                terms: vec![
                    tick,
                    Term {
                        field: "lot_decimals",
                        what: What::LotSize,
                        venue: decimals("lot_decimals")?,
                    },
                    Term {
                        field: "ordermin",
                        what: What::MinSize,
                        venue: TermValue::Units(units(pair, "ordermin", E, symbol)?),
                    },
                ],
            });
        }
        Ok(out)
    }
}

/// What is wrong with one configured instrument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The venue does not list it.
    NotListed,
    /// The venue lists it as not trading (its state).
    Halted(String),
    /// A term differs: the venue's field, the configured value and the venue's.
    Differs {
        field: &'static str,
        configured: TermValue,
        venue: TermValue,
    },
}

/// A configured instrument that differs from what the venue lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub exchange: String,
    /// The config name.
    pub instrument: String,
    /// The venue's metadata endpoint (`exchangeInfo`, `instruments`, `AssetPairs`).
    pub endpoint: &'static str,
    pub problem: Problem,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: ", self.exchange, self.instrument)?;
        match &self.problem {
            Problem::NotListed => write!(
                f,
                "the venue does not list this instrument ({})",
                self.endpoint
            ),
            Problem::Halted(state) => write!(
                f,
                "the venue lists this instrument as {state:?}, not trading ({})",
                self.endpoint
            ),
            Problem::Differs {
                field,
                configured,
                venue,
            } => write!(
                f,
                "{field} configured {configured} but the venue says {venue}"
            ),
        }
    }
}

/// The configured side of a term (`None`: the configuration states nothing to compare).
fn configured(instrument: &Instrument, what: What) -> Option<TermValue> {
    let units = |f: rt_manifest::Fixed| Some(TermValue::Units(f.raw()));
    let listing = instrument.listing.as_ref();
    let contract = listing.and_then(|l| l.contract.as_ref());
    let text = |s: &str| Some(TermValue::Text(s.to_owned()));
    match what {
        What::TickSize => units(instrument.tick_size),
        What::LotSize => units(instrument.lot_size),
        What::MinNotional => units(instrument.min_notional),
        What::MinSize => listing.and_then(|l| units(l.min_size)),
        What::Type => listing.and_then(|l| text(l.kind.as_str())),
        // A contract the configuration does not state: compared as none.
        What::ContractValue => Some(contract.map_or(TermValue::Text(String::new()), |c| {
            TermValue::Units(c.value.raw())
        })),
        What::ContractMultiplier => Some(contract.map_or(TermValue::Text(String::new()), |c| {
            TermValue::Units(c.multiplier.raw())
        })),
        What::ValueCurrency => Some(TermValue::Text(
            contract.map_or(String::new(), |c| c.value_currency.clone()),
        )),
        What::ContractType => Some(TermValue::Text(contract.map_or(
            String::new(),
            |c| match c.kind {
                ContractType::Linear => "linear".into(),
                ContractType::Inverse => "inverse".into(),
            },
        ))),
        What::SettleCurrency => Some(TermValue::Text(
            contract.map_or(String::new(), |c| c.settle_currency.clone()),
        )),
        What::Expiry => Some(TermValue::Text(
            listing
                .and_then(|l| l.expiry_ms)
                .map_or(String::new(), |ms| ms.to_string()),
        )),
    }
}

/// Every configured instrument of `exchange` (named `name`) against the venue's `listed`
/// ones (found by venue symbol: [`crate::market::venue_symbol`]).
pub fn check(
    name: &str,
    exchange: &Exchange,
    endpoint: &'static str,
    listed: &[Listed],
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (config_name, instrument) in &exchange.instruments {
        let symbol = crate::market::venue_symbol(
            config_name,
            instrument.listing.as_ref().map(|l| l.symbol.as_str()),
        );
        let mismatch = |problem| Mismatch {
            exchange: name.to_owned(),
            instrument: config_name.clone(),
            endpoint,
            problem,
        };
        let Some(venue) = listed.iter().find(|l| l.symbol == symbol) else {
            out.push(mismatch(Problem::NotListed));
            continue;
        };
        if let Some(state) = &venue.halted {
            out.push(mismatch(Problem::Halted(state.clone())));
        }
        for term in &venue.terms {
            let Some(configured) = configured(instrument, term.what) else {
                continue;
            };
            // A negative figure: the venue publishes none.
            if configured != term.venue && term.venue != TermValue::Units(-1) {
                out.push(mismatch(Problem::Differs {
                    field: term.field,
                    configured,
                    venue: term.venue.clone(),
                }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn manifest_exchange(json: &str) -> Exchange {
        serde_json::from_str(json).expect("exchange")
    }

    fn okx() -> Exchange {
        manifest_exchange(
            r#"{"venue":"okx","market":"spot","endpoints":{"ws":"wss://x","rest":"https://x"},
            "credentials":null,"rate_limits":{"orders_per_10s":1,"orders_per_day":1,
            "request_weight_per_minute":1},"on_gap":"resync","sim":null,"reconcile":null,
            "metadata":"data/okx/instruments.json","metadata_sha256":"0",
            "instruments":{
              "BTCUSDT":{"tick_size":"0.1","lot_size":"0.00000001","min_notional":"1",
                "maker_fee_bps":"8","taker_fee_bps":"10","listing":{"symbol":"BTC-USDT",
                "type":"spot","min_size":"0.00001","contract":null}},
              "UNIUSDSWAP":{"tick_size":"0.001","lot_size":"1","min_notional":"10",
                "maker_fee_bps":"2","taker_fee_bps":"5","listing":{"symbol":"UNI-USD-SWAP",
                "type":"swap","min_size":"1","contract":{"value":"10","multiplier":"1",
                "value_currency":"USD","type":"inverse","settle_currency":"UNI"}}}}}"#,
        )
    }

    fn bundled(path: &str) -> String {
        std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR")))
            .expect("bundled metadata")
    }

    #[test]
    fn okx_asks_once_per_instrument_type_and_agrees_with_its_bundled_metadata() {
        let ex = okx();
        let md = for_exchange(&ex);
        let paths: Vec<String> = md.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            [
                "/api/v5/public/instruments?instType=SPOT",
                "/api/v5/public/instruments?instType=SWAP"
            ]
        );
        let listed = md.parse(&bundled("data/okx/instruments.json")).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(check("okx", &ex, md.endpoint(), &listed), vec![]);
    }

    #[test]
    fn a_futures_expiry_is_compared_with_the_venues_exptime() {
        let mut ex = okx();
        let mut future = ex.instruments["UNIUSDSWAP"].clone();
        let listing = future.listing.as_mut().expect("a listing");
        listing.symbol = "UNI-USD-261231".into();
        listing.kind = rt_manifest::model::InstrumentType::Futures;
        listing.expiry_ms = Some(1_798_704_000_000);
        ex.instruments = [("UNIUSD261231".to_owned(), future)].into_iter().collect();
        let md = for_exchange(&ex);
        let row = |exp: &str| {
            bundled("data/okx/instruments.json")
                .replace("UNI-USD-SWAP", "UNI-USD-261231")
                .replace("\"instType\": \"SWAP\"", "\"instType\": \"FUTURES\"")
                .replace(
                    "\"expTime\": \"\",\n  \"instId\": \"UNI-USD-261231\"",
                    &format!("\"expTime\": \"{exp}\",\n  \"instId\": \"UNI-USD-261231\""),
                )
        };
        let listed = md.parse(&row("1798704000000")).unwrap();
        assert_eq!(check("okx", &ex, md.endpoint(), &listed), vec![]);
        let listed = md.parse(&row("1798790400000")).unwrap();
        let found = check("okx", &ex, md.endpoint(), &listed);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "okx/UNIUSD261231: expTime configured 1798704000000 but the venue says 1798790400000"
        );
    }

    #[test]
    fn okx_names_each_differing_term_with_both_values() {
        let ex = okx();
        let md = for_exchange(&ex);
        let text = bundled("data/okx/instruments.json")
            .replace("\"minSz\": \"0.00001\"", "\"minSz\": \"0.001\"")
            .replace("\"ctVal\": \"10\"", "\"ctVal\": \"100\"")
            .replace("\"ctType\": \"inverse\"", "\"ctType\": \"linear\"")
            .replace("\"minSz\":\"0.00001\"", "\"minSz\":\"0.001\"")
            .replace("\"ctVal\":\"10\"", "\"ctVal\":\"100\"")
            .replace("\"ctType\":\"inverse\"", "\"ctType\":\"linear\"");
        let found = check("okx", &ex, md.endpoint(), &md.parse(&text).unwrap());
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "okx/BTCUSDT: minSz configured 0.00001 but the venue says 0.001",
                "okx/UNIUSDSWAP: ctVal configured 10 but the venue says 100",
                "okx/UNIUSDSWAP: ctType configured inverse but the venue says linear",
            ]
        );
        // Not listed, and listed as not trading.
        let suspended = bundled("data/okx/instruments.json")
            .replace("\"state\": \"live\"", "\"state\": \"suspend\"")
            .replace("\"state\":\"live\"", "\"state\":\"suspend\"");
        let found = check("okx", &ex, md.endpoint(), &md.parse(&suspended).unwrap());
        assert_eq!(
            found[0].to_string(),
            "okx/BTCUSDT: the venue lists this instrument as \"suspend\", not trading (instruments)"
        );
        let found = check("okx", &ex, md.endpoint(), &[]);
        assert_eq!(
            found[1].to_string(),
            "okx/UNIUSDSWAP: the venue does not list this instrument (instruments)"
        );
        assert!(md
            .parse("{\"code\":\"51001\",\"msg\":\"no\",\"data\":[]}")
            .is_err());
    }

    #[test]
    fn kraken_reads_asset_pairs_decimals_and_ordermin() {
        let mut ex = okx();
        ex.venue = Venue::Kraken;
        ex.instruments.clear();
        let pair: Instrument = serde_json::from_str(
            r#"{"tick_size":"0.1","lot_size":"0.00000001","min_notional":"5",
            "maker_fee_bps":"16","taker_fee_bps":"26","listing":{"symbol":"XBT/CHF",
            "type":"spot","min_size":"0.0002","contract":null}}"#,
        )
        .unwrap();
        ex.instruments.insert("XBTCHF".into(), pair);
        let md = for_exchange(&ex);
        assert_eq!(md.requests()[0].path, "/0/public/AssetPairs");
        let text = bundled("data/kraken/asset_pairs.json");
        let listed = md.parse(&text).unwrap();
        assert_eq!(listed.len(), 5);
        assert_eq!(check("kraken", &ex, md.endpoint(), &listed), vec![]);
        // pair_decimals 1 -> 2: the tick is 0.01 at the venue; a newer answer's tick_size and
        // status are read too.
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut v = v.get("result").cloned().unwrap_or(v);
        v["XBTCHF"]["pair_decimals"] = Value::from(2);
        v["XBTCHF"]["ordermin"] = Value::from("0.001");
        let found = check(
            "kraken",
            &ex,
            md.endpoint(),
            &md.parse(&v.to_string()).unwrap(),
        );
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "kraken/XBTCHF: pair_decimals configured 0.1 but the venue says 0.01",
                "kraken/XBTCHF: ordermin configured 0.0002 but the venue says 0.001",
            ]
        );
        v["XBTCHF"]["tick_size"] = Value::from("0.1");
        v["XBTCHF"]["ordermin"] = Value::from("0.0002");
        v["XBTCHF"]["status"] = Value::from("cancel_only");
        let found = check(
            "kraken",
            &ex,
            md.endpoint(),
            &md.parse(&v.to_string()).unwrap(),
        );
        assert_eq!(
            found.iter().map(|m| m.problem.clone()).collect::<Vec<_>>(),
            [Problem::Halted("cancel_only".into())]
        );
        let wrapped = r#"{"error":["EGeneral:Temporary lockout"],"result":{}}"#;
        assert!(md.parse(wrapped).is_err());
    }

    #[test]
    fn binance_reads_exchange_info_filters() {
        let mut ex = okx();
        ex.venue = Venue::Sim;
        ex.instruments.retain(|k, _| k == "BTCUSDT");
        if let Some(i) = ex.instruments.get_mut("BTCUSDT") {
            i.listing = None;
        }
        let md = for_exchange(&ex);
        assert_eq!(md.requests()[0].path, "/api/v3/exchangeInfo");
        let served = |tick_size| {
            crate::binance::account::format_exchange_info(
                &[crate::execution::SymbolFilters {
                    symbol: "BTCUSDT".into(),
                    base_asset: "BTC".into(),
                    quote_asset: "USDT".into(),
                    tick_size,
                    step_size: 1,
                    min_notional: 100_000_000,
                }],
                1,
            )
        };
        let agreed = md.parse(&served(10_000_000)).unwrap();
        assert_eq!(check("sim", &ex, md.endpoint(), &agreed), vec![]);
        let found = check(
            "sim",
            &ex,
            md.endpoint(),
            &md.parse(&served(1_000_000)).unwrap(),
        );
        assert_eq!(
            found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["sim/BTCUSDT: PRICE_FILTER.tickSize configured 0.1 but the venue says 0.01"]
        );
    }
}
