//! The order-entry factory: a manifest exchange's execution client, chosen by its venue and
//! market. The one place an execution client is picked, as [`crate::market::for_exchange`] is
//! for market data: the runtime builds every gateway venue through it and names none.

use std::sync::Arc;

use rt_manifest::model::{Exchange, Market, SelfTradePrevention, Venue as VenueKind};

use crate::binance::signing::{KeyError, KeyType, Signer};
use crate::binance::{SpotExecution, USdmExecution};
use crate::binance_orders::StpMode;
use crate::execution::{Credentials, ExecutionClient};
use crate::okx::execution::{OkxCredentials, OkxExecution};

/// Why an exchange has no execution client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderEntryError {
    #[error("{venue}: this venue has no order entry (market data only)")]
    NoOrderEntry { venue: &'static str },
    #[error("credentials.passphrase: OKX signs with a passphrase besides the key and the secret")]
    NoPassphrase,
    /// The key does not parse (never shows it: the reference only).
    #[error("credentials.api_secret ({reference}): {error}")]
    BadKey { reference: String, error: KeyError },
    #[error("credentials.key_type: {venue} signs with HMAC keys only (Ed25519 keys: Binance)")]
    KeyType { venue: &'static str },
}

/// The execution client of `exchange`, signing with `credentials` (`None`: a venue that needs
/// none, such as the sim in paper mode), sending the exchange's self-trade prevention mode with
/// every order.
pub fn for_exchange(
    exchange: &Exchange,
    credentials: Option<Credentials>,
) -> Result<Arc<dyn ExecutionClient>, OrderEntryError> {
    let stp = Some(stp_mode(exchange.self_trade_prevention));
    match exchange.venue {
        VenueKind::BinanceSpot | VenueKind::BinanceUsdm | VenueKind::Sim => {
            // Keyed once here (an Ed25519 key decoded): a key that does not parse is an error
            // at start, naming its reference.
            let signer = match &credentials {
                None => None,
                Some(c) => Some(Signer::new(c).map_err(|error| {
                    OrderEntryError::BadKey {
                        reference: exchange
                            .credentials
                            .as_ref()
                            .map_or_else(String::new, |c| c.api_secret.clone()),
                        error,
                    }
                })?),
            };
            Ok(match exchange.market {
                Market::Spot => Arc::new(SpotExecution::new(signer, stp)),
                // Its mark prices come on the private stream's connection.
                Market::Usdm => Arc::new(
                    USdmExecution::new(signer, stp).with_marks(exchange.instruments.keys()),
                ),
            })
        }
        // The manifest's rules refuse it (`exchange.credential_key_type`); never signed wrong.
        VenueKind::Okx if credentials.as_ref().map(|c| c.key_type) == Some(KeyType::Ed25519) => {
            Err(OrderEntryError::KeyType {
                venue: exchange.venue.as_str(),
            })
        }
        // OKX v5 spot (`okx::execution`).
        VenueKind::Okx => {
            let credentials = match credentials {
                None => None,
                Some(c) => Some(OkxCredentials {
                    passphrase: c.passphrase.ok_or(OrderEntryError::NoPassphrase)?,
                    key: c.key,
                    secret: c.secret,
                }),
            };
            Ok(Arc::new(OkxExecution::for_exchange(exchange, credentials)))
        }
        VenueKind::Kraken => Err(OrderEntryError::NoOrderEntry {
            venue: exchange.venue.as_str(),
        }),
    }
}

/// The venue's word for the configured self-trade prevention mode.
fn stp_mode(mode: SelfTradePrevention) -> StpMode {
    match mode {
        SelfTradePrevention::None => StpMode::None,
        SelfTradePrevention::ExpireTaker => StpMode::ExpireTaker,
        SelfTradePrevention::ExpireMaker => StpMode::ExpireMaker,
        SelfTradePrevention::ExpireBoth => StpMode::ExpireBoth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::{NewOrderSpec, PositionSide};
    use rt_core::{OrderKind, Price, Qty, Side};

    fn exchange() -> Exchange {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("tests/contract/example.manifest.json"))
            .expect("example manifest");
        let m = rt_manifest::load(&text).expect("the example is valid");
        m.exchanges.values().next().expect("an exchange").clone()
    }

    fn order_query(client: &dyn ExecutionClient) -> String {
        let spec = NewOrderSpec {
            symbol: "BTCUSDT",
            client_id: "e-1",
            side: Side::Buy,
            kind: OrderKind::Limit,
            price: Price(6_000_000_000_000),
            qty: Qty(100_000),
            reduce_only: false,
            position_side: PositionSide::Both,
        };
        let r = client.new_order(&spec, 1).expect("sendable");
        // Binance sends everything in the query.
        r.path
    }

    #[test]
    fn binance_and_the_sim_by_market_with_the_configured_stp_mode() {
        let mut ex = exchange();
        ex.self_trade_prevention = SelfTradePrevention::ExpireBoth;
        let spot = for_exchange(&ex, None).expect("spot");
        assert!(spot.derivatives().is_none());
        let q = order_query(spot.as_ref());
        assert!(q.contains("/api/v3/order"), "{q}");
        assert!(q.contains("selfTradePreventionMode=EXPIRE_BOTH"), "{q}");
        ex.market = Market::Usdm;
        let usdm = for_exchange(&ex, None).expect("usdm");
        assert!(usdm.derivatives().is_some());
        let q = order_query(usdm.as_ref());
        assert!(q.contains("/fapi/v1/order"), "{q}");
    }

    #[test]
    fn venues_without_order_entry_are_refused_by_name() {
        let mut ex = exchange();
        ex.venue = VenueKind::Kraken;
        let e = for_exchange(&ex, None).expect_err("no order entry");
        assert_eq!(e, OrderEntryError::NoOrderEntry { venue: "kraken" });
    }

    #[test]
    fn an_ed25519_key_that_does_not_parse_is_refused_naming_its_reference_only() {
        let mut ex = exchange();
        ex.credentials = Some(rt_manifest::model::Credentials {
            api_key: "env:RT_KEY".into(),
            api_secret: "file:/keys/binance.pem".into(),
            passphrase: None,
            key_type: Some(KeyType::Ed25519),
        });
        let c = Credentials {
            key: "k".into(),
            secret: "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j".into(),
            passphrase: None,
            key_type: KeyType::Ed25519,
        };
        let e = for_exchange(&ex, Some(c.clone()))
            .expect_err("not a PEM")
            .to_string();
        assert!(
            e.starts_with("credentials.api_secret (file:/keys/binance.pem): not an Ed25519"),
            "{e}"
        );
        assert!(!e.contains(&c.secret), "{e}");
        // OKX takes no Ed25519 key, whatever the key.
        ex.venue = VenueKind::Okx;
        let e = for_exchange(&ex, Some(c)).expect_err("refused");
        assert_eq!(e, OrderEntryError::KeyType { venue: "okx" });
    }

    #[test]
    fn okx_signs_with_its_passphrase() {
        let mut ex = exchange();
        ex.venue = VenueKind::Okx;
        let okx = for_exchange(&ex, None).expect("okx");
        assert_eq!(okx.venue(), "okx");
        let mut c = Credentials {
            key: "k".into(),
            secret: "s".into(),
            passphrase: None,
            key_type: KeyType::Hmac,
        };
        let e = for_exchange(&ex, Some(c.clone())).expect_err("no passphrase");
        assert_eq!(e, OrderEntryError::NoPassphrase);
        c.passphrase = Some("p".into());
        let okx = for_exchange(&ex, Some(c)).expect("okx");
        let r = okx.balances(1);
        assert!(r
            .headers
            .contains(&(crate::okx::signing::PASSPHRASE_HEADER, "p".to_owned())));
    }
}
