//! Futures delivery at expiry. When a futures contract expires, the venue closes every open
//! position at its delivery price, without a fill of ours (OKX: "delivery", published by the
//! public `GET /api/v5/public/delivery-exercise-history`, `rt_venues::okx::account`). Before
//! then the risk engine lets only reducing orders through, and none from the expiry on
//! (`rt_core::RiskEngine::reduce_only_at`); what is still open at expiry is booked here:
//!
//! - from the expiry on, the gateway asks the venue's delivery history for the contract until
//!   it lists the delivery ([`watch`]), then journals it (`Record::Delivery`, with the venue's
//!   price and time) and hands it to the strategy thread, which closes the position at that
//!   price by the contract's terms (`rt_core::Trader::book_delivery`);
//! - at restart the journal's deliveries are booked after its fills ([`restore`]), and a
//!   contract the journal holds a delivery of is never asked about again
//!   ([`Future::delivered`]): a delivery is booked once across restarts, and one made while
//!   the engine was down is booked at its next start.

use std::time::Duration;

use rt_core::{InstrumentId, Price, Trader};
use rt_manifest::model::{Exchange, InstrumentType};
use rt_manifest::Manifest;

use crate::gateway::VenueConfig;
use crate::http::{Base, Client};
use crate::journal::RecoveredDelivery;

/// A futures contract of an exchange, its expiry, and whether the journal holds its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Future {
    /// The config name of the contract.
    pub symbol: String,
    /// ms since the epoch (`listing.expiry_ms`).
    pub expiry_ms: u64,
    /// The journal holds its delivery: booked at start ([`restore`]), never asked again.
    pub delivered: bool,
}

/// The futures contracts of a manifest exchange (those whose listing has an expiry).
pub fn futures_of(exchange: &Exchange) -> Vec<Future> {
    exchange
        .instruments
        .iter()
        .filter_map(|(symbol, i)| {
            let listing = i.listing.as_ref()?;
            (listing.kind == InstrumentType::Futures).then_some(())?;
            Some(Future {
                symbol: symbol.clone(),
                expiry_ms: listing.expiry_ms?,
                delivered: false,
            })
        })
        .collect()
}

/// The manifest's futures (exchange, config name) whose expiry `now_ms` has reached: the venue
/// delivered them (or is delivering them), so their positions there are flat and the venue
/// may no longer list them.
pub fn expired(manifest: &Manifest, now_ms: u64) -> Vec<(String, String)> {
    manifest
        .exchanges
        .iter()
        .flat_map(|(name, ex)| {
            futures_of(ex)
                .into_iter()
                .filter(move |f| f.expiry_ms <= now_ms)
                .map(move |f| (name.clone(), f.symbol))
        })
        .collect()
}

/// Whether `symbol` is a future of `venue` whose expiry `now_ms` has reached: the venue closes
/// its position at delivery, which the engine books once the venue publishes the price
/// ([`watch`]); until then the two differ by design, so the position watch leaves it out.
pub fn expired_on(venue: &VenueConfig, symbol: &str, now_ms: u64) -> bool {
    venue
        .futures
        .iter()
        .any(|f| f.symbol == symbol && f.expiry_ms <= now_ms)
}

/// Books the journal's deliveries into `bt` (after its fills: nothing is traded on a contract
/// after its delivery) and marks them delivered on their venue, so the gateway does not ask
/// for them again. Returns how many.
pub fn restore(
    bt: &mut Trader,
    venues: &mut [VenueConfig],
    deliveries: &[RecoveredDelivery],
) -> anyhow::Result<usize> {
    for d in deliveries {
        let Some(id) = bt.instrument_id(&d.exchange, &d.symbol) else {
            anyhow::bail!(
                "journal: a delivery of {}/{} which this manifest does not trade; move the \
                 journal aside to start flat",
                d.exchange,
                d.symbol
            );
        };
        let price = rt_core::parse_units(d.price.as_bytes())
            .map_err(|e| anyhow::anyhow!("journal: a delivery's price {:?}: {e}", d.price))?;
        bt.book_delivery(id, Price(price))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let future = venues
            .iter_mut()
            .filter(|v| v.name == d.exchange)
            .flat_map(|v| v.futures.iter_mut())
            .find(|f| f.symbol == d.symbol);
        if let Some(f) = future {
            f.delivered = true;
        }
    }
    Ok(deliveries.len())
}

/// A delivery the venue published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub instrument: InstrumentId,
    pub price: Price,
    pub time_ms: u64,
}

/// How often the delivery history is asked from the expiry on: the venue publishes the price
/// once the delivery is done, which may take a while.
const FIRST_ASKS: u32 = 30;
const ASK_EVERY: Duration = Duration::from_secs(1);
const ASK_LATER_EVERY: Duration = Duration::from_secs(30);

/// Waits for `future`'s expiry (the local clock, ms since the epoch), then asks the venue's
/// delivery history until it lists the contract's delivery, and hands it to `book` (once).
/// Runs until then: a venue that never publishes it leaves the position unbooked, which
/// the position watch reports.
pub async fn watch(
    venue: VenueConfig,
    future: Future,
    instrument: InstrumentId,
    book: impl Fn(Delivered),
    log: impl Fn(String),
) {
    let Some(account) = venue.client.derivatives() else {
        return;
    };
    let Some(request) = account.delivery_history(&future.symbol, 0) else {
        log(format!(
            "{}: {} is a futures contract but the venue publishes no delivery history: its \
             delivery is not booked",
            venue.name, future.symbol
        ));
        return;
    };
    let now = crate::gateway::now_ms();
    if future.expiry_ms > now {
        tokio::time::sleep(Duration::from_millis(future.expiry_ms - now)).await;
    }
    let Ok(base) = Base::parse(&venue.rest) else {
        return;
    };
    let mut client = Client::with_limits(base, venue.limits.clone());
    for attempt in 0u32.. {
        if attempt > 0 {
            let every = if attempt < FIRST_ASKS {
                ASK_EVERY
            } else {
                ASK_LATER_EVERY
            };
            tokio::time::sleep(every).await;
        }
        let answer = match crate::gateway::send_request(&mut client, &request).await {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                log(format!(
                    "{}: delivery history of {}: HTTP {}",
                    venue.name, future.symbol, r.status
                ));
                continue;
            }
            Err(e) => {
                log(format!(
                    "{}: delivery history of {}: {e}",
                    venue.name, future.symbol
                ));
                continue;
            }
        };
        match account.delivery(&future.symbol, &String::from_utf8_lossy(&answer.body)) {
            Ok(Some(d)) => {
                book(Delivered {
                    instrument,
                    price: d.price,
                    time_ms: d.time_ms,
                });
                return;
            }
            Ok(None) if attempt == FIRST_ASKS => log(format!(
                "{}: {} expired at {} (ms) and the venue lists no delivery yet; still asking",
                venue.name, future.symbol, future.expiry_ms
            )),
            Ok(None) => {}
            Err(e) => log(format!(
                "{}: delivery history of {}: {e}",
                venue.name, future.symbol
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_futures_with_an_expiry_are_watched_and_expire() {
        let mut manifest: Manifest = serde_json::from_str(include_str!(
            "../../../tests/contract/example.manifest.json"
        ))
        .expect("the example manifest");
        let (name, ex) = manifest.exchanges.iter_mut().next().expect("an exchange");
        let name = name.clone();
        assert!(futures_of(ex).is_empty());
        let (symbol, inst) = ex.instruments.iter_mut().next().expect("an instrument");
        let symbol = symbol.clone();
        inst.listing = Some(rt_manifest::model::Listing {
            symbol: "BTC-USD-250328".into(),
            kind: InstrumentType::Futures,
            min_size: rt_manifest::Fixed::parse("1").expect("1"),
            contract: None,
            expiry_ms: Some(1_743_148_800_000),
        });
        assert_eq!(
            futures_of(ex),
            [Future {
                symbol: symbol.clone(),
                expiry_ms: 1_743_148_800_000,
                delivered: false
            }]
        );
        assert!(expired(&manifest, 1_743_148_799_999).is_empty());
        assert_eq!(
            expired(&manifest, 1_743_148_800_000),
            [(name.clone(), symbol.clone())]
        );
        // The position watch leaves a future out from its expiry on (its delivery's to book).
        let ex = &manifest.exchanges[&name];
        let venue = VenueConfig {
            exchange: 0,
            name: name.clone(),
            rest: ex.endpoints.rest.clone(),
            ws: ex.endpoints.ws.clone(),
            ws_api: None,
            client: rt_venues::order_entry::for_exchange(ex, None).expect("a client"),
            symbols: vec![symbol.clone()],
            traded: vec![symbol.clone()],
            marks: std::sync::Arc::new(crate::fees::FeeMarks::default()),
            limits: std::sync::Arc::new(crate::ratelimit::VenueLimits::from_manifest(
                &ex.rate_limits,
                ex.venue,
            )),
            settlements: Vec::new(),
            futures: futures_of(ex),
        };
        assert!(!expired_on(&venue, &symbol, 1_743_148_799_999));
        assert!(expired_on(&venue, &symbol, 1_743_148_800_000));
        assert!(!expired_on(&venue, "OTHER", 1_743_148_800_000));
    }
}
