//! The manifest rules of the venues beside Binance (OKX, Kraken): what an exchange on such a
//! venue must state (its metadata file and hash, each instrument's `listing`, OKX's
//! passphrase), what Binance and the sim must not, and what this version of the engine cannot
//! do with them yet, refused with a rule id rather than left to fail at run time. An engine may
//! read their market data (the feed subscribes to OKX `books`/`trades` and Kraken
//! `book`/`trade` through `rt_venues::market`, books verified by the venues' checksums), for
//! signals and recording; what it may not do:
//!
//! - no account is read on either (balances reconciled): `exchange.market_data_only` for a
//!   `reconcile` section, and for Kraken credentials;
//! - Kraken is market data only: `strategy.kraken_market_data_only`;
//! - a market maker quoting against the real-time top of book (`touch: bbo`) on OKX,
//!   whose feed has none: `strategy.bbo`;
//! - a market maker amending its quotes (`requote: amend`) anywhere but OKX, the one venue
//!   whose orders the engine amends (Binance Spot cannot change an order's price in place):
//!   `strategy.amend`;
//! - a linear contract whose value at a price (tick x contract value x multiplier) needs more
//!   than 8 decimals cannot be kept exactly by positions and P&L: `strategy.instrument_type`
//!   (contracts are valued by `rt_core::ContractValue`: linear and inverse swaps and futures
//!   are traded, sized in contracts; a future's expiry, `instrument.expiry`, stops its orders
//!   before it and its delivery is booked, `rt_core::Trader::book_delivery`);
//! - an inverse contract in an asset's limit (`risk.assets`): `risk.asset_instrument`.
//!
//! Comparing the instruments with the venue's metadata file itself reads that file: the
//! compiler does it (appliance/config/venues.py), and `files.rs` checks its hash.

use crate::model::{
    ContractType, Exchange, InstrumentType, Listing, Manifest, Requote, Strategy, StrategyParams,
    Touch, Venue,
};
use crate::Fixed;

use super::Checker;

/// The config name of a venue symbol: the symbol without its `-` and `/` separators.
fn config_name(venue_symbol: &str) -> String {
    venue_symbol
        .chars()
        .filter(|c| !matches!(c, '-' | '/'))
        .collect()
}

impl Checker {
    /// The venue-specific rules of exchange `name`.
    pub(super) fn venue_exchange(&mut self, name: &str, exchange: &Exchange) {
        let venue = exchange.venue;
        let base = format!("exchanges.{name}");
        if let Some(passphrase) = exchange
            .credentials
            .as_ref()
            .and_then(|c| c.passphrase.as_deref())
        {
            if venue != Venue::Okx {
                self.fail(
                    "exchange.credential_passphrase",
                    format_args!("{base}.credentials.passphrase"),
                    format_args!(
                        "set but venue {} takes no passphrase (OKX only)",
                        venue.as_str()
                    ),
                );
            } else {
                self.credential_reference(name, "passphrase", passphrase);
            }
        }
        let key_type = exchange.credentials.as_ref().and_then(|c| c.key_type);
        let ed25519 = key_type == Some(crate::model::KeyType::Ed25519);
        if ed25519 && matches!(venue, Venue::Okx | Venue::Kraken) {
            self.fail(
                "exchange.credential_key_type",
                format_args!("{base}.credentials.key_type"),
                format_args!(
                    "ed25519 but venue {} signs with HMAC keys only (Ed25519 keys: Binance and \
                     the sim)",
                    venue.as_str()
                ),
            );
        }
        if exchange.book_checksum_every == 0 {
            self.fail(
                "exchange.book_checksum_every",
                format_args!("{base}.book_checksum_every"),
                "0 is not a positive interval (1: every book message verified)",
            );
        }
        if !venue.has_metadata() {
            if exchange.book_checksum_every != 1 {
                self.fail(
                    "exchange.book_checksum_every",
                    format_args!("{base}.book_checksum_every"),
                    format_args!(
                        "{} but venue {} sends no book checksum (OKX and Kraken only; leave 1)",
                        exchange.book_checksum_every,
                        venue.as_str()
                    ),
                );
            }
            for (key, set) in [
                ("metadata", exchange.metadata.is_some()),
                ("metadata_sha256", exchange.metadata_sha256.is_some()),
            ] {
                if set {
                    self.fail(
                        "exchange.venue_metadata",
                        format_args!("{base}.{key}"),
                        format_args!(
                            "set but venue {} has no metadata file in this version (OKX and \
                             Kraken only)",
                            venue.as_str()
                        ),
                    );
                }
            }
            for (symbol, instrument) in &exchange.instruments {
                if instrument.listing.is_some() {
                    self.fail(
                        "instrument.listing",
                        format_args!("{base}.instruments.{symbol}.listing"),
                        format_args!(
                            "set but venue {} instruments carry no listing in this version \
                             (OKX and Kraken only)",
                            venue.as_str()
                        ),
                    );
                }
            }
            return;
        }
        if exchange.reconcile.is_some() {
            self.fail(
                "exchange.market_data_only",
                format_args!("{base}.reconcile"),
                format_args!(
                    "set but the engine reads only {}'s market data in this version (no \
                     account, no balances to reconcile)",
                    venue.as_str()
                ),
            );
        }
        if !exchange
            .metadata
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty())
        {
            self.fail(
                "exchange.venue_metadata",
                format_args!("{base}.metadata"),
                format_args!(
                    "missing: an exchange on {} names the venue's metadata file its instruments \
                     were checked against",
                    venue.as_str()
                ),
            );
        }
        match exchange.metadata_sha256.as_deref() {
            Some(sha) if super::is_sha256(sha) => {}
            Some(sha) => self.fail(
                "exchange.venue_metadata",
                format_args!("{base}.metadata_sha256"),
                format_args!("{sha:?} is not a lowercase hex SHA-256"),
            ),
            None => self.fail(
                "exchange.venue_metadata",
                format_args!("{base}.metadata_sha256"),
                "missing: the compiler writes the metadata file's SHA-256",
            ),
        }
        if venue == Venue::Okx {
            if let Some(credentials) = &exchange.credentials {
                if credentials.passphrase.is_none() {
                    self.fail(
                        "exchange.credential_passphrase",
                        format_args!("{base}.credentials.passphrase"),
                        "missing: OKX signs with an API key, a secret and a passphrase",
                    );
                }
            }
        }
        if venue == Venue::Kraken && exchange.credentials.is_some() {
            self.fail(
                "exchange.market_data_only",
                format_args!("{base}.credentials"),
                "set but Kraken is market data only in this version (no orders, no account)",
            );
        }
        for (symbol, instrument) in &exchange.instruments {
            let at = format!("{base}.instruments.{symbol}.listing");
            match &instrument.listing {
                None => self.fail(
                    "instrument.listing",
                    &at,
                    format_args!(
                        "missing: an instrument on {} states the venue's symbol, type and \
                         minimum size",
                        venue.as_str()
                    ),
                ),
                Some(listing) => self.listing(venue, symbol, &at, listing),
            }
        }
    }

    fn listing(&mut self, venue: Venue, symbol: &str, at: &str, listing: &Listing) {
        let expected = config_name(&listing.symbol);
        if listing.symbol.is_empty() || expected != symbol {
            self.fail(
                "instrument.venue_symbol",
                format_args!("{at}.symbol"),
                format_args!(
                    "{:?} does not map to {symbol} (the config name is the venue's symbol \
                     without its - and / separators: {expected:?})",
                    listing.symbol
                ),
            );
        }
        self.positive(
            "instrument.positive",
            format_args!("{at}.min_size"),
            listing.min_size,
        );
        if venue == Venue::Kraken && listing.kind != InstrumentType::Spot {
            self.fail(
                "instrument.contract",
                format_args!("{at}.type"),
                format_args!("{} but Kraken's pairs are spot", listing.kind.as_str()),
            );
        }
        match (&listing.contract, listing.kind) {
            (None, InstrumentType::Swap | InstrumentType::Futures) => self.fail(
                "instrument.contract",
                format_args!("{at}.contract"),
                format_args!(
                    "null but the instrument is a {} (a contract states its value, multiplier, \
                     linear or inverse, and settle currency)",
                    listing.kind.as_str()
                ),
            ),
            (Some(_), InstrumentType::Spot) => self.fail(
                "instrument.contract",
                format_args!("{at}.contract"),
                "set but the instrument is spot (contract terms are for swaps and futures)",
            ),
            (Some(contract), _) => {
                self.positive(
                    "instrument.contract",
                    format_args!("{at}.contract.value"),
                    contract.value,
                );
                self.positive(
                    "instrument.contract",
                    format_args!("{at}.contract.multiplier"),
                    contract.multiplier,
                );
                for (key, value) in [
                    ("value_currency", &contract.value_currency),
                    ("settle_currency", &contract.settle_currency),
                ] {
                    if value.is_empty() {
                        self.fail(
                            "instrument.contract",
                            format_args!("{at}.contract.{key}"),
                            "empty (a currency such as USD or BTC)",
                        );
                    }
                }
            }
            (None, InstrumentType::Spot) => {}
        }
        match (listing.kind, listing.expiry_ms) {
            (InstrumentType::Futures, None) => self.fail(
                "instrument.expiry",
                format_args!("{at}.expiry_ms"),
                "absent but the instrument is a futures contract (its expiry, OKX expTime in ms \
                 since the epoch: the engine stops trading it before then and books its delivery)",
            ),
            (InstrumentType::Spot | InstrumentType::Swap, Some(ms)) => self.fail(
                "instrument.expiry",
                format_args!("{at}.expiry_ms"),
                format_args!(
                    "{ms} but the instrument is {} (only a futures contract expires)",
                    listing.kind.as_str()
                ),
            ),
            (InstrumentType::Futures, Some(0)) => self.fail(
                "instrument.expiry",
                format_args!("{at}.expiry_ms"),
                "0 (ms since the epoch, positive)",
            ),
            _ => {}
        }
    }

    /// What this version cannot do with a strategy on an OKX or Kraken exchange, and the
    /// contracts whose value the engine cannot keep exactly.
    pub(super) fn venue_strategy(&mut self, name: &str, strategy: &Strategy, exchange: &Exchange) {
        match exchange.venue {
            Venue::Kraken => self.fail(
                "strategy.kraken_market_data_only",
                format_args!("strategies.{name}.exchange"),
                format_args!(
                    "{}: Kraken is market data only in this version (signals, recording, \
                     backtests of captures); no strategy may send orders on it",
                    strategy.exchange
                ),
            ),
            Venue::Okx | Venue::BinanceSpot | Venue::BinanceUsdm | Venue::Sim => {}
        }
        // The real-time top of book comes from Binance's `bookTicker` (and the sim's replay
        // of it); OKX's feed has none.
        if let StrategyParams::MarketMaker(p) = &strategy.params {
            if p.touch == Some(Touch::Bbo) && exchange.venue == Venue::Okx {
                self.fail(
                    "strategy.bbo",
                    format_args!("strategies.{name}.params.touch"),
                    format_args!(
                        "bbo on {} (OKX): the engine reads no real-time top of book \
                         from OKX (its books channel only); use book",
                        strategy.exchange
                    ),
                );
            }
            if p.requote == Some(Requote::Amend) && exchange.venue != Venue::Okx {
                self.fail(
                    "strategy.amend",
                    format_args!("strategies.{name}.params.requote"),
                    format_args!(
                        "amend on {} ({}): the engine amends orders on OKX only (OKX \
                         amend-order); use replace",
                        strategy.exchange,
                        exchange.venue.as_str()
                    ),
                );
            }
        }
        for (i, symbol) in strategy.instruments.iter().enumerate() {
            let Some(inst) = exchange.instruments.get(symbol) else {
                continue;
            };
            let Some(contract) = inst.listing.as_ref().and_then(|l| l.contract.as_ref()) else {
                continue;
            };
            // A linear contract's value price (price x value x multiplier) is kept in 10^-8
            // of the quote: exact only when the tick's and the contract's decimals fit.
            let unit = i128::from(contract.value.raw()) * i128::from(contract.multiplier.raw());
            let scale = i128::from(Fixed::SCALE);
            let decimals = |raw: i128| {
                let mut d = 8;
                let mut r = raw;
                while d > 0 && r % 10 == 0 {
                    r /= 10;
                    d -= 1;
                }
                d
            };
            let inexact = unit % scale != 0
                || decimals(unit / scale) + decimals(i128::from(inst.tick_size.raw())) > 8;
            if contract.kind == ContractType::Linear && inexact {
                self.fail(
                    "strategy.instrument_type",
                    format_args!("strategies.{name}.instruments[{i}]"),
                    format_args!(
                        "{symbol} is a linear contract of {} x {} {} at tick {}: a contract's \
                         value at a price (tick x {} x {}) needs more than 8 decimals, which \
                         positions and P&L keep",
                        contract.value,
                        contract.multiplier,
                        contract.value_currency,
                        inst.tick_size,
                        contract.value,
                        contract.multiplier
                    ),
                );
            }
        }
    }

    /// `risk.assets`: an inverse contract has no fixed quantity of its base asset (its
    /// contracts are worth a fixed amount of the quote), so an asset's limit cannot count it.
    pub(super) fn inverse_in_asset(&mut self, asset: &str, i: usize, symbol: &str, m: &Manifest) {
        let inverse = m.exchanges.values().any(|ex| {
            ex.instruments
                .get(symbol)
                .and_then(|inst| inst.listing.as_ref())
                .and_then(|l| l.contract.as_ref())
                .is_some_and(|c| c.kind == ContractType::Inverse)
        });
        if inverse {
            self.fail(
                "risk.asset_instrument",
                format_args!("risk.assets.{asset}.instruments[{i}]"),
                format_args!(
                    "{symbol} is an inverse contract: its contracts are worth a fixed amount \
                     of the quote, not of {asset}, so a limit on {asset} cannot count them \
                     (limit it with risk.instruments.{symbol})"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{json, Value};

    use crate::model::Manifest;
    use crate::validate::validate;

    const EXAMPLE: &str = include_str!("../../../../tests/contract/example.manifest.json");

    /// The example with a second exchange `okx` (OKX, BTC-USDT spot and the UNI-USD-SWAP
    /// inverse swap, as OKX's instruments.json lists them), its feed on core 5.
    fn with_okx() -> Value {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        let mut okx = v["exchanges"]["binance_spot"].clone();
        okx["venue"] = json!("okx");
        okx["endpoints"] = json!({"ws": "wss://ws.okx.com:8443/ws/v5/public",
                                  "rest": "https://www.okx.com"});
        okx["credentials"] = json!({"api_key": "env:OKX_API_KEY",
                                    "api_secret": "env:OKX_API_SECRET",
                                    "passphrase": "env:OKX_API_PASSPHRASE"});
        okx["metadata"] = json!("data/okx/instruments.json");
        okx["metadata_sha256"] = json!("0".repeat(64));
        okx["instruments"] = json!({
            "BTCUSDT": {"tick_size": "0.1", "lot_size": "0.00000001", "min_notional": "1",
                        "maker_fee_bps": "8", "taker_fee_bps": "10",
                        "listing": {"symbol": "BTC-USDT", "type": "spot", "min_size": "0.00001",
                                    "contract": null}},
            "UNIUSDSWAP": {"tick_size": "0.001", "lot_size": "1", "min_notional": "1",
                           "maker_fee_bps": "2", "taker_fee_bps": "5",
                           "listing": {"symbol": "UNI-USD-SWAP", "type": "swap", "min_size": "1",
                                       "contract": {"value": "10", "multiplier": "1",
                                                    "value_currency": "USD", "type": "inverse",
                                                    "settle_currency": "UNI"}}}
        });
        v["exchanges"]["okx"] = okx;
        v["host"]["threads"]["feeds"]["okx"] = json!(5);
        v
    }

    fn found(v: Value) -> Vec<(String, &'static str)> {
        let manifest: Manifest = serde_json::from_value(v).unwrap();
        validate(&manifest)
            .into_iter()
            .map(|x| (x.path, x.rule))
            .collect()
    }

    fn pair(path: &str, rule: &'static str) -> (String, &'static str) {
        (path.to_owned(), rule)
    }

    /// Asserts that each (path, rule) of `wants` is among the violations of `v`.
    #[track_caller]
    fn reports(v: Value, wants: &[(&str, &'static str)]) {
        let got = found(v);
        for &(path, rule) in wants {
            assert!(
                got.contains(&pair(path, rule)),
                "{path} {rule} not in {got:#?}"
            );
        }
    }

    #[test]
    fn an_engine_may_read_an_okx_exchange() {
        assert_eq!(found(with_okx()), []);
    }

    #[test]
    fn a_live_engine_reads_kraken_without_credentials() {
        // The example is live: every venue with an account needs credentials, Kraken has none.
        let mut v = with_okx();
        assert_eq!(v["deployment"]["mode"], json!("live"));
        v["exchanges"]["okx"]["credentials"] = Value::Null;
        assert!(found(v.clone()).contains(&pair("exchanges.okx.credentials", "live.credentials")));
        v["exchanges"]["okx"]["venue"] = json!("kraken");
        assert!(found(v).iter().all(|(_, rule)| *rule != "live.credentials"));
    }

    #[test]
    fn the_book_checksum_interval_is_positive_and_for_checksummed_venues_only() {
        let mut v = with_okx();
        v["exchanges"]["okx"]["book_checksum_every"] = json!(10);
        assert_eq!(found(v.clone()), []);
        v["exchanges"]["okx"]["book_checksum_every"] = json!(0);
        v["exchanges"]["binance_spot"]["book_checksum_every"] = json!(10);
        assert_eq!(
            found(v),
            [
                pair(
                    "exchanges.binance_spot.book_checksum_every",
                    "exchange.book_checksum_every"
                ),
                pair(
                    "exchanges.okx.book_checksum_every",
                    "exchange.book_checksum_every"
                ),
            ]
        );
    }

    #[test]
    fn no_account_is_reconciled_on_okx() {
        let mut v = with_okx();
        v["exchanges"]["okx"]["reconcile"] = v["exchanges"]["binance_spot"]["reconcile"].clone();
        if v["exchanges"]["okx"]["reconcile"].is_null() {
            v["exchanges"]["okx"]["reconcile"] = json!({
                "starting_balances": {"BTC": "1"}, "tolerance": {"BTC": "0.1"},
                "interval_ms": 5000});
        }
        assert_eq!(
            found(v),
            [pair("exchanges.okx.reconcile", "exchange.market_data_only")]
        );
    }

    #[test]
    fn okx_states_its_metadata_listing_and_passphrase() {
        let mut v = with_okx();
        let okx = &mut v["exchanges"]["okx"];
        okx.as_object_mut().unwrap().remove("metadata");
        okx["metadata_sha256"] = json!("ABC");
        okx["credentials"]["passphrase"] = json!("hunter2-literal");
        okx["instruments"]["BTCUSDT"]["listing"]["symbol"] = json!("ETH-USDT");
        okx["instruments"]["UNIUSDSWAP"]["listing"]["contract"] = Value::Null;
        okx["instruments"]["UNIUSDSWAP"]["listing"]["min_size"] = json!("0");
        reports(
            v,
            &[
                (
                    "exchanges.okx.credentials.passphrase",
                    "exchange.credential_reference",
                ),
                ("exchanges.okx.metadata", "exchange.venue_metadata"),
                ("exchanges.okx.metadata_sha256", "exchange.venue_metadata"),
                (
                    "exchanges.okx.instruments.BTCUSDT.listing.symbol",
                    "instrument.venue_symbol",
                ),
                (
                    "exchanges.okx.instruments.UNIUSDSWAP.listing.contract",
                    "instrument.contract",
                ),
                (
                    "exchanges.okx.instruments.UNIUSDSWAP.listing.min_size",
                    "instrument.positive",
                ),
            ],
        );
        let mut v = with_okx();
        v["exchanges"]["okx"]["credentials"]
            .as_object_mut()
            .unwrap()
            .remove("passphrase");
        v["exchanges"]["okx"]["instruments"]["BTCUSDT"]
            .as_object_mut()
            .unwrap()
            .remove("listing");
        reports(
            v,
            &[
                (
                    "exchanges.okx.credentials.passphrase",
                    "exchange.credential_passphrase",
                ),
                (
                    "exchanges.okx.instruments.BTCUSDT.listing",
                    "instrument.listing",
                ),
            ],
        );
    }

    #[test]
    fn binance_takes_no_listing_metadata_or_passphrase() {
        let mut v = with_okx();
        let listing = v["exchanges"]["okx"]["instruments"]["BTCUSDT"]["listing"].clone();
        let spot = &mut v["exchanges"]["binance_spot"];
        spot["instruments"]["BTCUSDT"]["listing"] = listing;
        spot["metadata"] = json!("data/okx/instruments.json");
        spot["credentials"]["passphrase"] = json!("env:X");
        reports(
            v,
            &[
                (
                    "exchanges.binance_spot.credentials.passphrase",
                    "exchange.credential_passphrase",
                ),
                ("exchanges.binance_spot.metadata", "exchange.venue_metadata"),
                (
                    "exchanges.binance_spot.instruments.BTCUSDT.listing",
                    "instrument.listing",
                ),
            ],
        );
    }

    #[test]
    fn ed25519_keys_on_binance_and_the_sim_only() {
        let mut v = with_okx();
        v["exchanges"]["binance_spot"]["credentials"]["key_type"] = json!("ed25519");
        v["exchanges"]["okx"]["credentials"]["key_type"] = json!("hmac");
        assert_eq!(found(v.clone()), []);
        v["exchanges"]["okx"]["credentials"]["key_type"] = json!("ed25519");
        assert_eq!(
            found(v),
            [pair(
                "exchanges.okx.credentials.key_type",
                "exchange.credential_key_type"
            )]
        );
    }

    #[test]
    fn strategies_on_okx_swaps_are_traded_and_on_kraken_refused_saying_why() {
        // OKX spot and OKX's inverse swap: order entry is there for both.
        let mut v = with_okx();
        v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("okx");
        for instruments in [json!(["BTCUSDT"]), json!(["UNIUSDSWAP"])] {
            v["strategies"]["mm_btcusdt_spot"]["instruments"] = instruments;
            let manifest: Manifest = serde_json::from_value(v.clone()).expect("a manifest");
            let found = validate(&manifest);
            // (Its other rules, the lot and the risk limits, hold as for any instrument.)
            assert!(
                found.iter().all(|d| !matches!(
                    d.rule,
                    "strategy.okx_order_entry" | "strategy.instrument_type"
                )),
                "{found:?}"
            );
        }
        let mut v = with_okx();
        v["exchanges"]["okx"]["venue"] = json!("kraken");
        v["exchanges"]["okx"]["credentials"] = Value::Null;
        v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("okx");
        let manifest: Manifest = serde_json::from_value(v).unwrap();
        let kraken: Vec<_> = validate(&manifest)
            .into_iter()
            .filter(|x| x.rule == "strategy.kraken_market_data_only")
            .collect();
        assert_eq!(kraken.len(), 1);
        assert!(kraken[0]
            .message
            .contains("Kraken is market data only in this version"));
    }

    #[test]
    fn an_okx_swap_takes_leverage_and_a_margin_mode() {
        let mut v = with_okx();
        let swap = &mut v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"];
        swap["leverage"] = json!(5);
        swap["margin_type"] = json!("isolated");
        assert_eq!(found(v.clone()), []);
        // OKX spot has neither.
        let mut spot = v.clone();
        spot["exchanges"]["okx"]["instruments"]["BTCUSDT"]["leverage"] = json!(2);
        reports(
            spot,
            &[(
                "exchanges.okx.instruments.BTCUSDT.leverage",
                "instrument.derivative_setting",
            )],
        );
        // A futures contract (delivery, not traded here) takes none either.
        let mut futures = v.clone();
        futures["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["type"] =
            json!("futures");
        futures["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["expiry_ms"] =
            json!(1_743_148_800_000_u64);
        reports(
            futures,
            &[(
                "exchanges.okx.instruments.UNIUSDSWAP.leverage",
                "instrument.derivative_setting",
            )],
        );
        v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["leverage"] = json!(126);
        reports(
            v.clone(),
            &[(
                "exchanges.okx.instruments.UNIUSDSWAP.leverage",
                "instrument.leverage",
            )],
        );
    }

    #[test]
    fn a_market_maker_quotes_against_bbo_only_where_the_feed_has_one() {
        let mut v = with_okx();
        v["strategies"]["mm_btcusdt_spot"]["params"]["touch"] = json!("bbo");
        // Binance: its bookTicker.
        assert_eq!(found(v.clone()), []);
        v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("okx");
        reports(
            v,
            &[("strategies.mm_btcusdt_spot.params.touch", "strategy.bbo")],
        );
    }

    #[test]
    fn a_market_maker_amends_its_quotes_only_on_okx() {
        let mut v = with_okx();
        v["strategies"]["mm_btcusdt_spot"]["params"]["requote"] = json!("amend");
        reports(
            v.clone(),
            &[(
                "strategies.mm_btcusdt_spot.params.requote",
                "strategy.amend",
            )],
        );
        v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("okx");
        assert_eq!(found(v.clone()), []);
        v["strategies"]["mm_btcusdt_spot"]["params"]["requote"] = json!("replace");
        assert_eq!(found(v), []);
    }

    #[test]
    fn a_linear_contract_must_be_valued_in_8_decimals() {
        // OKX BTC-USDT-SWAP: 0.01 BTC a contract, tick 0.1: 0.001 USDT a tick, exact.
        let linear = |tick: &str, value: &str| {
            let mut v = with_okx();
            v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["tick_size"] = json!(tick);
            v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["contract"] = json!({
                "value": value, "multiplier": "1", "value_currency": "BTC", "type": "linear",
                "settle_currency": "USDT"});
            v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("okx");
            v["strategies"]["mm_btcusdt_spot"]["instruments"] = json!(["UNIUSDSWAP"]);
            v
        };
        let manifest: Manifest = serde_json::from_value(linear("0.1", "0.01")).unwrap();
        assert!(validate(&manifest)
            .iter()
            .all(|d| d.rule != "strategy.instrument_type"));
        // 0.00001 BTC a contract at tick 0.0001: 10^-9 USDT a tick.
        reports(
            linear("0.0001", "0.00001"),
            &[(
                "strategies.mm_btcusdt_spot.instruments[0]",
                "strategy.instrument_type",
            )],
        );
    }

    #[test]
    fn a_futures_contract_states_its_expiry_and_nothing_else_does() {
        let mut v = with_okx();
        let listing = &mut v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"];
        listing["type"] = json!("futures");
        reports(
            v.clone(),
            &[(
                "exchanges.okx.instruments.UNIUSDSWAP.listing.expiry_ms",
                "instrument.expiry",
            )],
        );
        v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["expiry_ms"] =
            json!(1_743_148_800_000_u64);
        assert_eq!(found(v.clone()), []);
        v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["expiry_ms"] = json!(0);
        reports(
            v.clone(),
            &[(
                "exchanges.okx.instruments.UNIUSDSWAP.listing.expiry_ms",
                "instrument.expiry",
            )],
        );
        // A swap (perpetual) has none.
        v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["type"] = json!("swap");
        v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]["expiry_ms"] =
            json!(1_743_148_800_000_u64);
        reports(
            v,
            &[(
                "exchanges.okx.instruments.UNIUSDSWAP.listing.expiry_ms",
                "instrument.expiry",
            )],
        );
    }

    #[test]
    fn a_futures_contract_is_traded_like_a_swap() {
        let mut v = with_okx();
        let inst = &mut v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"];
        inst["listing"]["symbol"] = json!("UNI-USD-250328");
        inst["listing"]["type"] = json!("futures");
        inst["listing"]["expiry_ms"] = json!(1_743_148_800_000_u64);
        v["exchanges"]["okx"]["instruments"]["UNIUSD250328"] =
            v["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"].take();
        v["exchanges"]["okx"]["instruments"]
            .as_object_mut()
            .unwrap()
            .remove("UNIUSDSWAP");
        v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("okx");
        v["strategies"]["mm_btcusdt_spot"]["instruments"] = json!(["UNIUSD250328"]);
        // Its expiry stops its orders and its delivery is booked: no refusal.
        let rules: Vec<_> = found(v.clone()).into_iter().map(|(_, r)| r).collect();
        assert!(
            !rules.contains(&"strategy.instrument_type") && !rules.contains(&"instrument.expiry"),
            "{rules:?}"
        );
        // Without the expiry it is refused.
        v["exchanges"]["okx"]["instruments"]["UNIUSD250328"]["listing"]
            .as_object_mut()
            .unwrap()
            .remove("expiry_ms");
        reports(
            v,
            &[(
                "exchanges.okx.instruments.UNIUSD250328.listing.expiry_ms",
                "instrument.expiry",
            )],
        );
    }

    #[test]
    fn an_inverse_contract_is_kept_out_of_an_asset_limit() {
        let mut v = with_okx();
        v["risk"]["instruments"]["UNIUSDSWAP"] = v["risk"]["instruments"]["BTCUSDT"].clone();
        v["risk"]["assets"] = json!({"UNI": {"max_position": "10", "instruments": ["UNIUSDSWAP"]}});
        reports(
            v,
            &[("risk.assets.UNI.instruments[0]", "risk.asset_instrument")],
        );
    }

    #[test]
    fn config_names_drop_the_separators() {
        assert_eq!(super::config_name("BTC-USDT"), "BTCUSDT");
        assert_eq!(super::config_name("UNI-USD-SWAP"), "UNIUSDSWAP");
        assert_eq!(super::config_name("XBT/CHF"), "XBTCHF");
    }
}
