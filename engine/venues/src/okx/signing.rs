//! OKX v5 request signing, as OKX documents it (docs-v5, "REST Authentication" and
//! "WebSocket Login"; the same rule is restated by every client that implements it, e.g.
//! the rust-okx crate's `signing.rs` and docs.rs `ccxt-exchanges::okx::auth`):
//!
//! - REST: `OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath +
//!   body))`, where `requestPath` includes the query string of a `GET` and `body` is the JSON
//!   body of a `POST` (empty for a `GET`); `OK-ACCESS-TIMESTAMP` is the same timestamp, ISO
//!   8601 UTC with milliseconds (`2020-12-08T09:08:57.715Z`); `OK-ACCESS-KEY` and
//!   `OK-ACCESS-PASSPHRASE` carry the key and the passphrase as given.
//! - WebSocket login (`/ws/v5/private`): `{"op":"login","args":[{"apiKey","passphrase",
//!   "timestamp","sign"}]}` where `timestamp` is Unix time in *seconds* and `sign` is
//!   `base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify"))` (OKX's login page;
//!   answered `{"event":"login","code":"0",..}`, or `{"event":"error","code":"60009",..}`).
//!
//! No base64 crate is needed for one direction of standard base64 (RFC 4648, with padding).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The REST headers.
pub const KEY_HEADER: &str = "OK-ACCESS-KEY";
pub const SIGN_HEADER: &str = "OK-ACCESS-SIGN";
pub const TIMESTAMP_HEADER: &str = "OK-ACCESS-TIMESTAMP";
pub const PASSPHRASE_HEADER: &str = "OK-ACCESS-PASSPHRASE";

/// What a WebSocket login signs after its timestamp.
pub const LOGIN_PATH: &str = "/users/self/verify";

type HmacSha256 = Hmac<Sha256>;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64(HMAC-SHA256(secret, prehash))`.
pub fn sign(secret: &[u8], prehash: &str) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(prehash.as_bytes());
    base64(&mac.finalize().into_bytes())
}

/// A REST request's signature: `timestamp + method + request_path + body`.
pub fn sign_request(
    secret: &[u8],
    timestamp: &str,
    method: &str,
    request_path: &str,
    body: &str,
) -> String {
    let mut prehash =
        String::with_capacity(timestamp.len() + method.len() + request_path.len() + body.len());
    prehash.push_str(timestamp);
    prehash.push_str(method);
    prehash.push_str(request_path);
    prehash.push_str(body);
    sign(secret, &prehash)
}

/// A WebSocket login's signature: `timestamp + "GET" + "/users/self/verify"`.
pub fn sign_login(secret: &[u8], timestamp_s: &str) -> String {
    sign_request(secret, timestamp_s, "GET", LOGIN_PATH, "")
}

/// Checks a signature in constant time (the sim's side).
pub fn verify(secret: &[u8], prehash: &str, signature: &str) -> bool {
    let want = sign(secret, prehash);
    want.len() == signature.len()
        && want
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `ms` since the Unix epoch as OKX's REST timestamp: ISO 8601 UTC with milliseconds.
pub fn iso_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// The ms since the Unix epoch of an ISO timestamp as [`iso_timestamp`] writes it (the sim
/// checks a request's age by it).
pub fn parse_iso_timestamp(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let days = days_from_civil(i64::try_from(y).ok()?, mo, d);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    Some(secs * 1000 + ms)
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Its inverse, `days_from_civil`.
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400) as u64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        // RFC 4648 section 10's test vectors.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn timestamps_are_iso_8601_with_milliseconds() {
        // OKX's documented example timestamp, 2020-12-08T09:08:57.715Z.
        let ms = 1_607_418_537_715;
        assert_eq!(iso_timestamp(ms), "2020-12-08T09:08:57.715Z");
        assert_eq!(parse_iso_timestamp("2020-12-08T09:08:57.715Z"), Some(ms));
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_iso_timestamp("2020-12-08 09:08:57"), None);
    }

    #[test]
    fn signatures_are_base64_hmac_sha256_of_the_prehash() {
        // RFC 4231 test case 2 ("Jefe"), its HMAC-SHA256 in hex
        // 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843, in base64:
        assert_eq!(
            sign(b"Jefe", "what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
        let s = sign_request(b"k", "2020-12-08T09:08:57.715Z", "GET", "/api/v5/x?a=1", "");
        assert_eq!(s, sign(b"k", "2020-12-08T09:08:57.715ZGET/api/v5/x?a=1"));
        assert!(verify(b"k", "2020-12-08T09:08:57.715ZGET/api/v5/x?a=1", &s));
        assert!(!verify(
            b"other",
            "2020-12-08T09:08:57.715ZGET/api/v5/x?a=1",
            &s
        ));
        assert_eq!(
            sign_login(b"k", "1538054050"),
            sign(b"k", "1538054050GET/users/self/verify")
        );
        // Independent vectors, computed with Python's `hmac`/`base64` modules over OKX's
        // documented example secret key and a place-order body (OKX's own login example does
        // not state the secret its signature was made with).
        let secret = b"22582BD0CFF14C41EDBF1AB98506286D";
        assert_eq!(
            sign_login(secret, "1538054050"),
            "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M="
        );
        let body = r#"{"instId":"BTC-USDT","ordType":"limit","px":"2.15","side":"buy","sz":"2","tdMode":"cash"}"#;
        assert_eq!(
            sign_request(
                secret,
                "2020-12-08T09:08:57.715Z",
                "POST",
                "/api/v5/trade/order",
                body
            ),
            "xxNFTi+30w6srmWHNqGP0aqc0QsyOfmTMAYw6jf0fv8="
        );
    }
}
