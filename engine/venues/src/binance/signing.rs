//! Request signing: `signature` is the hex HMAC-SHA256 of the request's *total params* (the query
//! string concatenated with the body), keyed by the API secret; the API key travels in the
//! [`API_KEY_HEADER`] header. [`sign`] and [`signed_query`] (client side), [`SignedParams::split`]
//! and [`verify`] (server side, constant time).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::errors::OrderError;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";

type HmacSha256 = Hmac<Sha256>;

/// Hex HMAC-SHA256 of `payload` keyed by `secret`.
pub fn sign(secret: &[u8], payload: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// `query&signature=<hex>`: a query string signed as the only part of the total params.
pub fn signed_query(query: &str, secret: &[u8]) -> String {
    let signature = sign(secret, query.as_bytes());
    if query.is_empty() {
        format!("signature={signature}")
    } else {
        format!("{query}&signature={signature}")
    }
}

/// Checks a hex signature of `payload` in constant time.
pub fn verify(secret: &[u8], payload: &[u8], signature_hex: &str) -> Result<(), OrderError> {
    let Ok(signature) = hex::decode(signature_hex) else {
        return Err(OrderError::BadSignature);
    };
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(payload);
    mac.verify_slice(&signature)
        .map_err(|_| OrderError::BadSignature)
}

/// A request's parameters split from its signature (server side).
///
/// Binance signs the *total params*: the query string concatenated with the request body, the
/// `signature` parameter left out. `signature` may be in either part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedParams {
    /// The bytes the signature covers.
    pub payload: String,
    /// The parameters of both parts, `&`-joined, without `signature`: what the request
    /// parsers take.
    pub params: String,
    /// The hex signature, when the request had one.
    pub signature: Option<String>,
}

impl SignedParams {
    pub fn split(query: &str, body: &str) -> Result<SignedParams, OrderError> {
        let mut signature = None;
        let mut strip = |part: &str| -> Result<String, OrderError> {
            let mut kept: Vec<&str> = Vec::new();
            for pair in part.split('&') {
                if let Some(value) = pair.strip_prefix("signature=") {
                    if signature.is_some() {
                        return Err(OrderError::Duplicate("signature".into()));
                    }
                    signature = Some(value.to_owned());
                } else if !pair.is_empty() {
                    kept.push(pair);
                }
            }
            Ok(kept.join("&"))
        };
        let query = strip(query)?;
        let body = strip(body)?;
        let payload = format!("{query}{body}");
        let params = match (query.is_empty(), body.is_empty()) {
            (_, true) => query,
            (true, false) => body,
            (false, false) => format!("{query}&{body}"),
        };
        Ok(SignedParams {
            payload,
            params,
            signature,
        })
    }

    /// Verifies the signature with `secret` (an absent one is an error).
    pub fn verify(&self, secret: &[u8]) -> Result<(), OrderError> {
        match &self.signature {
            Some(signature) => verify(secret, self.payload.as_bytes(), signature),
            None => Err(OrderError::MissingSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::binance::requests::NewOrder;
    use crate::binance::test_support::{
        doc_order, DOC_API_KEY, DOC_QUERY, DOC_SECRET, DOC_SIGNATURE,
    };

    #[test]
    fn signs_binances_documented_example() {
        assert_eq!(DOC_API_KEY.len(), 64);
        assert_eq!(
            sign(DOC_SECRET.as_bytes(), DOC_QUERY.as_bytes()),
            DOC_SIGNATURE
        );
        // The builder writes the documented query byte for byte.
        assert_eq!(doc_order().to_query(), DOC_QUERY);
        assert_eq!(
            signed_query(DOC_QUERY, DOC_SECRET.as_bytes()),
            format!("{DOC_QUERY}&signature={DOC_SIGNATURE}")
        );
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), DOC_QUERY.as_bytes(), DOC_SIGNATURE),
            Ok(())
        );
    }

    #[test]
    fn verifies_query_body_and_mixed_forms() {
        let secret = DOC_SECRET.as_bytes();
        let signed = signed_query(DOC_QUERY, secret);
        // All in the query string.
        let split = SignedParams::split(&signed, "").unwrap();
        assert_eq!(split.payload, DOC_QUERY);
        assert_eq!(split.params, DOC_QUERY);
        assert_eq!(split.verify(secret), Ok(()));
        // All in the body.
        let split = SignedParams::split("", &signed).unwrap();
        assert_eq!(split.verify(secret), Ok(()));
        // Mixed (Binance's example 3): the signature covers query + body, no separator.
        let (query, body) = DOC_QUERY.split_at(DOC_QUERY.find("&quantity").unwrap());
        let body = &body[1..];
        let signature = sign(secret, format!("{query}{body}").as_bytes());
        let split = SignedParams::split(query, &format!("{body}&signature={signature}")).unwrap();
        assert_eq!(split.verify(secret), Ok(()));
        assert_eq!(split.params, DOC_QUERY);
        assert_eq!(NewOrder::parse(&split.params), Ok(doc_order()));
        // Tampered, wrong key, garbage, absent.
        let tampered = signed.replace("quantity=1", "quantity=2");
        let split = SignedParams::split(&tampered, "").unwrap();
        assert_eq!(split.verify(secret), Err(OrderError::BadSignature));
        let split = SignedParams::split(&signed, "").unwrap();
        assert_eq!(split.verify(b"other"), Err(OrderError::BadSignature));
        let split = SignedParams::split(&format!("{DOC_QUERY}&signature=zz"), "").unwrap();
        assert_eq!(split.verify(secret), Err(OrderError::BadSignature));
        let split = SignedParams::split(DOC_QUERY, "").unwrap();
        assert_eq!(split.verify(secret), Err(OrderError::MissingSignature));
        assert_eq!(OrderError::BadSignature.code(), -1022);
        assert_eq!(
            SignedParams::split(&format!("{signed}&signature=00"), ""),
            Err(OrderError::Duplicate("signature".into()))
        );
    }
}
