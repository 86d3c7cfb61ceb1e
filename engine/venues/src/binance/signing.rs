//! Request signing. Binance takes HMAC-SHA256, RSA and Ed25519 API keys; the engine signs with
//! HMAC or Ed25519 keys (manifest `credentials.key_type`, [`KeyType`]). `signature` signs the
//! request's *total params* (the query string concatenated with the body; on the WebSocket API,
//! the params but `signature` sorted by name, `name=value` joined by `&`):
//! - HMAC: the hex HMAC-SHA256 keyed by the API secret (rest-api.md, "SIGNED Endpoint
//!   security");
//! - Ed25519: the base64 of the Ed25519 signature by the account's private key, read from its
//!   PKCS#8 PEM (rest-api.md, "Ed25519 Keys"), percent-encoded in a query string. Ed25519 is
//!   deterministic: the same key and payload give the same signature.
//!
//! The API key travels in the [`API_KEY_HEADER`] header. [`Signer`] (client side) is keyed once
//! per account: the HMAC key schedule computed, or the private key decoded, never per request.
//! [`Verifier`] and [`SignedParams::split`] are the server side (the sim): HMAC checked in
//! constant time, Ed25519 by the public key derived from the private key the sim is given.

use base64ct::{Base64, Encoding};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::errors::OrderError;
use crate::execution::Credentials;
pub use rt_manifest::model::KeyType;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The length of an Ed25519 signature in base64 (64 bytes, padded).
pub const ED25519_BASE64_LEN: usize = 88;

/// RFC 8032, section 7.1, TEST 1's secret key (9d61b19d...1cae7f60) in PKCS#8 PEM, as
/// `openssl genpkey -algorithm ed25519` writes a key: a published test vector for the tests,
/// benches and the sim's tests, never an account's key.
#[doc(hidden)]
pub const RFC8032_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
    MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
    -----END PRIVATE KEY-----\n";

/// Why an account's key cannot sign. Never shows the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 private key in PKCS#8 PEM ({reason})")]
    Ed25519Pem { reason: String },
}

/// The HMAC keyed by `secret`.
pub(crate) fn keyed_hmac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// Hex HMAC-SHA256 of `payload` keyed by `secret`.
pub fn sign(secret: &[u8], payload: &[u8]) -> String {
    let mut mac = keyed_hmac(secret);
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
    let mut mac = keyed_hmac(secret);
    mac.update(payload);
    mac.verify_slice(&signature)
        .map_err(|_| OrderError::BadSignature)
}

/// Decodes an Ed25519 private key from its PKCS#8 PEM (what `openssl genpkey -algorithm
/// ed25519` writes, and what Binance asks for the public key of).
pub fn ed25519_key(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError::Ed25519Pem {
        reason: e.to_string(),
    })
}

/// How a [`Signer`] signs.
#[derive(Clone)]
pub(crate) enum Keyed {
    /// Keyed by the secret, the key schedule computed once.
    Hmac(HmacSha256),
    Ed25519(Box<SigningKey>),
}

/// An account's key, ready to sign (client side): the API key, and the HMAC keyed once or the
/// Ed25519 private key decoded once. `Debug` shows neither.
#[derive(Clone)]
pub struct Signer {
    api_key: String,
    keyed: Keyed,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, <redacted>)", self.key_type().as_str())
    }
}

impl Signer {
    /// Keys `credentials` by their type (Ed25519: `secret` is the private key's PEM).
    pub fn new(credentials: &Credentials) -> Result<Signer, KeyError> {
        let keyed = match credentials.key_type {
            KeyType::Hmac => Keyed::Hmac(keyed_hmac(credentials.secret.as_bytes())),
            KeyType::Ed25519 => Keyed::Ed25519(Box::new(ed25519_key(&credentials.secret)?)),
        };
        Ok(Signer {
            api_key: credentials.key.clone(),
            keyed,
        })
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn key_type(&self) -> KeyType {
        match self.keyed {
            Keyed::Hmac(_) => KeyType::Hmac,
            Keyed::Ed25519(_) => KeyType::Ed25519,
        }
    }

    pub(crate) fn keyed(&self) -> &Keyed {
        &self.keyed
    }

    /// Appends the signature of `payload` as Binance reads it in a JSON string (the WebSocket
    /// API): hex (HMAC) or base64 (Ed25519). No allocation.
    pub fn push_signature(&self, payload: &[u8], out: &mut String) {
        match &self.keyed {
            Keyed::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(payload);
                push_hex_mac(mac, out);
            }
            Keyed::Ed25519(key) => push_ed25519(key, payload, out, false),
        }
    }

    /// Appends the signature of `payload` as a query string's value: hex (HMAC), or base64
    /// percent-encoded (Ed25519: `+`, `/` and `=` are not a query's literal characters).
    pub fn push_query_signature(&self, payload: &[u8], out: &mut String) {
        match &self.keyed {
            Keyed::Hmac(_) => self.push_signature(payload, out),
            Keyed::Ed25519(key) => push_ed25519(key, payload, out, true),
        }
    }
}

/// Appends the hex of a finished HMAC-SHA256.
pub(crate) fn push_hex_mac(mac: HmacSha256, out: &mut String) {
    let mut hex = [0u8; 64];
    // 32 bytes of MAC into 64 hex digits: the sizes match.
    let _ = hex::encode_to_slice(mac.finalize().into_bytes(), &mut hex);
    out.push_str(std::str::from_utf8(&hex).unwrap_or(""));
}

/// Appends the base64 Ed25519 signature of `payload`, percent-encoded for a query (`query`).
pub(crate) fn push_ed25519(key: &SigningKey, payload: &[u8], out: &mut String, query: bool) {
    let signature = key.sign(payload).to_bytes();
    let mut buf = [0u8; ED25519_BASE64_LEN];
    // 64 bytes always fit 88 base64 characters.
    let text = Base64::encode(&signature, &mut buf).unwrap_or("");
    if !query {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
}

/// An account's key as the venue holds it (server side, the sim): the HMAC secret, or the
/// Ed25519 public key (derived from the private key the sim is given). `Debug` shows neither.
#[derive(Clone)]
pub enum Verifier {
    Hmac(Vec<u8>),
    Ed25519(VerifyingKey),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({}, <redacted>)", self.key_type().as_str())
    }
}

impl Verifier {
    /// The verifier of the key `secret` of type `key_type` (Ed25519: the private key's PEM).
    pub fn new(key_type: KeyType, secret: &str) -> Result<Verifier, KeyError> {
        Ok(match key_type {
            KeyType::Hmac => Verifier::Hmac(secret.as_bytes().to_vec()),
            KeyType::Ed25519 => Verifier::Ed25519(ed25519_key(secret)?.verifying_key()),
        })
    }

    pub fn key_type(&self) -> KeyType {
        match self {
            Verifier::Hmac(_) => KeyType::Hmac,
            Verifier::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// Checks `signature` of `payload`: hex (HMAC, either case); base64, percent-encoded or
    /// not (Ed25519).
    pub fn verify(&self, payload: &[u8], signature: &str) -> Result<(), OrderError> {
        match self {
            Verifier::Hmac(secret) => verify(secret, payload, signature),
            Verifier::Ed25519(public) => {
                let mut text = [0u8; ED25519_BASE64_LEN];
                let text = percent_decoded(signature, &mut text).ok_or(OrderError::BadSignature)?;
                let mut raw = [0u8; 64];
                let raw = Base64::decode(text, &mut raw).map_err(|_| OrderError::BadSignature)?;
                let raw: [u8; 64] = raw.try_into().map_err(|_| OrderError::BadSignature)?;
                public
                    .verify(payload, &Signature::from_bytes(&raw))
                    .map_err(|_| OrderError::BadSignature)
            }
        }
    }
}

/// `text` with its `%XX` escapes decoded into `buf` (`None`: malformed, or longer than `buf`).
fn percent_decoded<'a>(text: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let bytes = text.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        let b = if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            i += 3;
            u8::from_str_radix(hex, 16).ok()?
        } else {
            i += 1;
            bytes[i - 1]
        };
        *buf.get_mut(n)? = b;
        n += 1;
    }
    Some(&buf[..n])
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
    /// The signature as sent (hex, or percent-encoded base64), when the request had one.
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

    /// Verifies the signature with the account's key (an absent one is an error).
    pub fn verify(&self, key: &Verifier) -> Result<(), OrderError> {
        match &self.signature {
            Some(signature) => key.verify(self.payload.as_bytes(), signature),
            None => Err(OrderError::MissingSignature),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
        let key = Verifier::Hmac(secret.to_vec());
        let signed = signed_query(DOC_QUERY, secret);
        // All in the query string.
        let split = SignedParams::split(&signed, "").unwrap();
        assert_eq!(split.payload, DOC_QUERY);
        assert_eq!(split.params, DOC_QUERY);
        assert_eq!(split.verify(&key), Ok(()));
        // All in the body.
        let split = SignedParams::split("", &signed).unwrap();
        assert_eq!(split.verify(&key), Ok(()));
        // Mixed (Binance's example 3): the signature covers query + body, no separator.
        let (query, body) = DOC_QUERY.split_at(DOC_QUERY.find("&quantity").unwrap());
        let body = &body[1..];
        let signature = sign(secret, format!("{query}{body}").as_bytes());
        let split = SignedParams::split(query, &format!("{body}&signature={signature}")).unwrap();
        assert_eq!(split.verify(&key), Ok(()));
        assert_eq!(split.params, DOC_QUERY);
        assert_eq!(NewOrder::parse(&split.params), Ok(doc_order()));
        // Tampered, wrong key, garbage, absent.
        let tampered = signed.replace("quantity=1", "quantity=2");
        let split = SignedParams::split(&tampered, "").unwrap();
        assert_eq!(split.verify(&key), Err(OrderError::BadSignature));
        let split = SignedParams::split(&signed, "").unwrap();
        assert_eq!(
            split.verify(&Verifier::Hmac(b"other".to_vec())),
            Err(OrderError::BadSignature)
        );
        let split = SignedParams::split(&format!("{DOC_QUERY}&signature=zz"), "").unwrap();
        assert_eq!(split.verify(&key), Err(OrderError::BadSignature));
        let split = SignedParams::split(DOC_QUERY, "").unwrap();
        assert_eq!(split.verify(&key), Err(OrderError::MissingSignature));
        assert_eq!(OrderError::BadSignature.code(), -1022);
        assert_eq!(
            SignedParams::split(&format!("{signed}&signature=00"), ""),
            Err(OrderError::Duplicate("signature".into()))
        );
    }

    pub(crate) use super::RFC8032_PEM;

    pub(crate) fn ed25519_credentials() -> Credentials {
        Credentials {
            key: DOC_API_KEY.into(),
            secret: RFC8032_PEM.into(),
            passphrase: None,
            key_type: KeyType::Ed25519,
        }
    }

    #[test]
    fn ed25519_signs_the_rfc_8032_vector_and_binances_payloads() {
        let signer = Signer::new(&ed25519_credentials()).unwrap();
        assert_eq!(signer.key_type(), KeyType::Ed25519);
        // RFC 8032 TEST 1: the public key and the signature of the empty message.
        let Keyed::Ed25519(key) = signer.keyed() else {
            panic!("an Ed25519 signer")
        };
        assert_eq!(
            hex::encode(key.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let mut out = String::new();
        signer.push_signature(b"", &mut out);
        let mut raw = [0u8; 64];
        assert_eq!(
            hex::encode(Base64::decode(&out, &mut raw).unwrap()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac\
             c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        // Binance's documented query, signed by the same key (the answer `openssl pkeyutl
        // -sign -rawin` and Python's `cryptography` give): base64, percent-encoded in a query.
        let want = "3fhuDZ9nYMviDQ5OEtJBJS11jUZDTRzRQ+TQMarm+LErFiJvUiVPQjTzDoWZQe4miPX+yHk1v/Z7\
                    TWLYjIbmCA==";
        out.clear();
        signer.push_signature(DOC_QUERY.as_bytes(), &mut out);
        assert_eq!(out, want);
        out.clear();
        signer.push_query_signature(DOC_QUERY.as_bytes(), &mut out);
        assert_eq!(
            out,
            want.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        // The server side verifies both forms with the public key derived from the PEM.
        let key = Verifier::new(KeyType::Ed25519, RFC8032_PEM).unwrap();
        assert_eq!(key.verify(DOC_QUERY.as_bytes(), want), Ok(()));
        assert_eq!(key.verify(DOC_QUERY.as_bytes(), &out), Ok(()));
        let split = SignedParams::split(&format!("{DOC_QUERY}&signature={out}"), "").unwrap();
        assert_eq!(split.verify(&key), Ok(()));
        // Tampered payload, a truncated or malformed signature, an HMAC one: refused.
        let bad = OrderError::BadSignature;
        assert_eq!(key.verify(b"symbol=LTCBTC", want), Err(bad.clone()));
        assert_eq!(
            key.verify(DOC_QUERY.as_bytes(), &want[..80]),
            Err(bad.clone())
        );
        assert_eq!(key.verify(DOC_QUERY.as_bytes(), "%zz"), Err(bad.clone()));
        assert_eq!(key.verify(DOC_QUERY.as_bytes(), DOC_SIGNATURE), Err(bad));
    }

    #[test]
    fn hmac_signers_sign_as_before_and_keys_that_do_not_parse_are_refused() {
        let mut c = ed25519_credentials();
        c.key_type = KeyType::Hmac;
        c.secret = DOC_SECRET.into();
        let signer = Signer::new(&c).unwrap();
        let mut out = String::new();
        signer.push_query_signature(DOC_QUERY.as_bytes(), &mut out);
        assert_eq!(out, DOC_SIGNATURE);
        // An HMAC secret is no Ed25519 key; the error never shows the key.
        c.key_type = KeyType::Ed25519;
        let e = Signer::new(&c).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("not an Ed25519 private key in PKCS#8 PEM"));
        assert!(!e.to_string().contains(DOC_SECRET), "{e}");
        assert!(Verifier::new(KeyType::Ed25519, "-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err());
        assert!(!format!("{signer:?}").contains(DOC_SECRET));
    }
}
