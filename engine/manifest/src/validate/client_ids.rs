//! Our client order ids on the wire, checked before an engine sends its first order.
//!
//! The engine names each order `<prefix><n>` ([`client_prefix`] of the engine id, then the
//! order id). OKX takes a `clOrdId` of letters and digits, at most 32
//! (`rt_venues::okx::execution::CLIENT_ID_MAX`), and the engine escapes `z`, `_` and `-` to two
//! characters each (`encode_client_id`): an engine id whose escaped prefix leaves fewer than
//! [`ORDER_ID_DIGITS`] characters for the order id would have its orders refused at run time
//! (rule `engine.okx_client_id`).

use crate::model::Venue;
use crate::Manifest;

use super::Checker;

/// OKX's `clOrdId` length limit.
pub const OKX_CLIENT_ID_MAX: usize = 32;
/// Digits an order id may take (ten billion orders) beside the prefix.
pub const ORDER_ID_DIGITS: usize = 10;

/// The prefix of an engine's client order ids: its id's letters, digits and `_`, at most 12,
/// then `-`.
pub fn client_prefix(engine_id: &str) -> String {
    let safe: String = engine_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(12)
        .collect();
    format!("{safe}-")
}

/// The length of `text` escaped as OKX's `clOrdId` (`z`, `_`, `-`: two characters each).
pub fn okx_escaped_len(text: &str) -> usize {
    text.chars()
        .map(|c| if matches!(c, 'z' | '_' | '-') { 2 } else { 1 })
        .sum()
}

impl Checker {
    /// `engine.okx_client_id`: an engine that trades on OKX has room for its order ids.
    pub(super) fn okx_client_ids(&mut self, manifest: &Manifest) {
        let trades_okx = manifest.strategies.values().any(|st| {
            manifest
                .exchanges
                .get(&st.exchange)
                .is_some_and(|x| x.venue == Venue::Okx)
        });
        if !trades_okx {
            return;
        }
        let id = &manifest.engine.id;
        let prefix = client_prefix(id);
        let escaped = okx_escaped_len(&prefix);
        if escaped + ORDER_ID_DIGITS > OKX_CLIENT_ID_MAX {
            self.fail(
                "engine.okx_client_id",
                "engine.id",
                format_args!(
                    "{id:?}: its client order id prefix {prefix:?} is {escaped} characters as an \
                     OKX clOrdId (z, _ and - escaped to two), leaving {} of OKX's {OKX_CLIENT_ID_MAX} \
                     for the order id, which needs {ORDER_ID_DIGITS}: shorten the engine id or use \
                     fewer z, _ and -",
                    OKX_CLIENT_ID_MAX.saturating_sub(escaped)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn example(engine_id: &str, okx: bool) -> Manifest {
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/contract/example.manifest.json"
        ))
        .unwrap();
        v["engine"]["id"] = engine_id.into();
        let mut m: Manifest = serde_json::from_value(v).unwrap();
        if okx {
            let name = m.strategies.values().next().unwrap().exchange.clone();
            m.exchanges.get_mut(&name).unwrap().venue = Venue::Okx;
        }
        m
    }

    fn check(m: &Manifest) -> Vec<crate::validate::Violation> {
        let mut c = Checker::default();
        c.okx_client_ids(m);
        c.out
    }

    #[test]
    fn an_engine_id_too_long_for_okx_client_ids_is_refused() {
        assert_eq!(client_prefix("paper_1"), "paper_1-");
        assert_eq!(okx_escaped_len("paper_1-"), 10);
        // 12 characters kept, each escaped to two, and the dash: 26 + 10 digits > 32.
        let found = check(&example("zz_zz_zz_zz_zz", true));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].rule, "engine.okx_client_id");
        assert_eq!(found[0].path, "engine.id");
        assert!(
            found[0].message.contains("\"zz_zz_zz_zz_zz\""),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("26 characters"),
            "{}",
            found[0].message
        );
        // Fits: 22 escaped + 10 digits.
        assert!(check(&example("abcdefghijk_", true)).is_empty());
        assert!(check(&example("paper_1", true)).is_empty());
        // Not on OKX: Binance takes 36 characters of more kinds, unescaped.
        assert!(check(&example("zz_zz_zz_zz_zz", false)).is_empty());
    }
}
