//! Binance symbols' assets: the base and quote asset of a symbol (`BTCUSDT` -> `BTC`, `USDT`)
//! and what a commission asset (`N` of an `executionReport`, `commissionAsset` of a trade) is
//! to the instrument it was paid on. The gateway books a commission by it and the sim venue
//! charges by it; this is the one place that splits a symbol.
//!
//! Binance does not separate the two assets in a symbol's name; its `exchangeInfo` does. The
//! quote assets Binance lists today are recognised at the end of the name, longest first, so
//! `BTCFDUSD` is `BTC` + `FDUSD` (not `BTCFD` + `USD`).

/// Quote assets recognised at the end of a symbol, longest first.
const QUOTES: [&str; 12] = [
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY",
];

/// `(base, quote)` of a symbol; `None` when no known quote asset ends it.
pub fn split_symbol(symbol: &str) -> Option<(&str, &str)> {
    QUOTES
        .iter()
        .find(|q| symbol.len() > q.len() && symbol.ends_with(*q))
        .map(|q| (&symbol[..symbol.len() - q.len()], *q))
}

/// The quote asset of a symbol (`USDT` when none is recognised).
pub fn quote_asset(symbol: &str) -> &str {
    split_symbol(symbol).map_or("USDT", |(_, q)| q)
}

/// What a commission asset is to the instrument it was charged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommissionAsset<'a> {
    /// The symbol's quote asset: cash, a fee as it stands.
    Quote,
    /// The symbol's base asset: it leaves the position.
    Base,
    /// Any other asset (BNB): worth its price in the quote asset.
    Other(&'a str),
}

impl<'a> CommissionAsset<'a> {
    /// Classifies `asset` for `symbol`. A symbol whose assets are not recognised treats every
    /// asset but its own name's tail as other.
    pub fn of(symbol: &str, asset: &'a str) -> CommissionAsset<'a> {
        match split_symbol(symbol) {
            Some((_, quote)) if quote == asset => CommissionAsset::Quote,
            Some((base, _)) if base == asset => CommissionAsset::Base,
            _ => CommissionAsset::Other(asset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_symbols_longest_quote_first() {
        assert_eq!(split_symbol("BTCUSDT"), Some(("BTC", "USDT")));
        assert_eq!(split_symbol("ETHBTC"), Some(("ETH", "BTC")));
        assert_eq!(split_symbol("BTCFDUSD"), Some(("BTC", "FDUSD")));
        assert_eq!(split_symbol("BNBUSDT"), Some(("BNB", "USDT")));
        assert_eq!(split_symbol("USDT"), None);
        assert_eq!(split_symbol("XYZ"), None);
        assert_eq!(quote_asset("XYZ"), "USDT");
        assert_eq!(quote_asset("ETHBTC"), "BTC");
    }

    #[test]
    fn classifies_commission_assets() {
        assert_eq!(
            CommissionAsset::of("BTCUSDT", "USDT"),
            CommissionAsset::Quote
        );
        assert_eq!(CommissionAsset::of("BTCUSDT", "BTC"), CommissionAsset::Base);
        assert_eq!(
            CommissionAsset::of("BTCUSDT", "BNB"),
            CommissionAsset::Other("BNB")
        );
        assert_eq!(CommissionAsset::of("ETHBTC", "BTC"), CommissionAsset::Quote);
        assert_eq!(CommissionAsset::of("ETHBTC", "ETH"), CommissionAsset::Base);
    }
}
