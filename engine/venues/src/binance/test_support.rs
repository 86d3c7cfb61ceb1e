//! Fixtures shared by the order-entry tests: Binance's documented example of a SIGNED request.

use rt_core::{Price, Qty, Side};

use super::query::Timing;
use super::requests::NewOrder;
use super::signing::{KeyType, Signer};
use super::vocab::{OrderType, TimeInForce};
use crate::execution::Credentials;

// Binance's documented example of a SIGNED endpoint (public test data, not a real key).
pub(crate) const DOC_API_KEY: &str =
    "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
pub(crate) const DOC_SECRET: &str =
    "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
pub(crate) const DOC_QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
pub(crate) const DOC_SIGNATURE: &str =
    "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

pub(crate) fn doc_order() -> NewOrder {
    NewOrder {
        symbol: "LTCBTC".into(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        time_in_force: Some(TimeInForce::Gtc),
        quantity: Qty::from_int(1),
        price: Some(Price(10_000_000)),
        new_client_order_id: None,
        new_order_resp_type: None,
        self_trade_prevention_mode: None,
        timing: Timing {
            timestamp_ms: 1_499_827_319_559,
            recv_window_ms: Some(5000),
        },
    }
}

/// The documented example's key and secret (HMAC).
pub(crate) fn doc_credentials() -> Credentials {
    Credentials {
        key: DOC_API_KEY.into(),
        secret: DOC_SECRET.into(),
        passphrase: None,
        key_type: KeyType::Hmac,
    }
}

/// [`doc_credentials`], keyed.
pub(crate) fn doc_signer() -> Signer {
    match Signer::new(&doc_credentials()) {
        Ok(s) => s,
        Err(e) => unreachable!("an HMAC key always keys: {e}"),
    }
}
