//! Query strings: building them (values percent-encoded, parameters in Binance's documented
//! order), parsing them back ([`Params`]: every parameter must be read, a duplicate is an error),
//! the symbol and client-id rules, and [`Timing`] (`timestamp` and `recvWindow`, with Binance's
//! acceptance rule).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::errors::OrderError;

/// `recvWindow` when a request sends none.
pub const DEFAULT_RECV_WINDOW_MS: u64 = 5_000;
/// Largest `recvWindow` Binance accepts.
pub const MAX_RECV_WINDOW_MS: u64 = 60_000;
/// A request whose `timestamp` is this far ahead of the server clock is refused.
pub const MAX_CLOCK_AHEAD_MS: u64 = 1_000;
/// Longest client order id.
pub const MAX_CLIENT_ORDER_ID: usize = 36;

/// Percent-encodes a value: everything but RFC 3986 unreserved characters.
pub(super) fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Builds `k1=v1&k2=v2` in insertion order, encoding the values.
#[derive(Debug, Default)]
pub(super) struct QueryBuilder(pub(super) String);

impl QueryBuilder {
    pub(super) fn put(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        encode_into(&mut self.0, value);
        self
    }

    pub(super) fn put_opt(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.put(key, value);
        }
        self
    }
}

pub(super) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one component (`+` is a space, as in forms). `base` is its offset, for
/// errors.
pub(super) fn decode_component(text: &str, base: usize) -> Result<Cow<'_, str>, OrderError> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => {
                        return Err(OrderError::Malformed {
                            at: base + i,
                            reason: "bad percent escape",
                        })
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| OrderError::Malformed {
            at: base,
            reason: "not UTF-8 after percent decoding",
        })
}

/// The parameters of a request, decoded, with the keys a parser has used tracked so that a
/// parameter nobody reads is an error (Binance: "Not all sent parameters were read").
#[derive(Debug)]
pub struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>, bool)>,
}

impl<'a> Params<'a> {
    /// Parses `k=v&k=v` (empty input gives no parameters). A key given twice is an error.
    pub fn parse(query: &'a str) -> Result<Params<'a>, OrderError> {
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>, bool)> = Vec::new();
        let mut offset = 0;
        for part in query.split('&') {
            let start = offset;
            offset += part.len() + 1;
            if part.is_empty() {
                continue;
            }
            let (key, value) = match part.find('=') {
                Some(eq) => (&part[..eq], &part[eq + 1..]),
                None => (part, ""),
            };
            if key.is_empty() {
                return Err(OrderError::Malformed {
                    at: start,
                    reason: "a parameter without a name",
                });
            }
            let key = decode_component(key, start)?;
            let value = decode_component(value, start + key.len() + 1)?;
            if pairs.iter().any(|(k, _, _)| *k == key) {
                return Err(OrderError::Duplicate(key.into_owned()));
            }
            pairs.push((key, value, false));
        }
        Ok(Params { pairs })
    }

    /// The value of `name` (marked read); an empty value counts as absent.
    pub fn take(&mut self, name: &str) -> Option<Cow<'a, str>> {
        let pair = self.pairs.iter_mut().find(|(k, _, _)| k == name)?;
        pair.2 = true;
        if pair.1.is_empty() {
            None
        } else {
            Some(pair.1.clone())
        }
    }

    pub(super) fn required(&mut self, name: &'static str) -> Result<Cow<'a, str>, OrderError> {
        self.take(name).ok_or(OrderError::Missing(name))
    }

    pub(super) fn u64_opt(&mut self, name: &'static str) -> Result<Option<u64>, OrderError> {
        self.take(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| OrderError::Invalid {
                    name,
                    value: v.into_owned(),
                    reason: "not an unsigned integer",
                })
            })
            .transpose()
    }

    /// Every parameter was read.
    pub fn finish(self) -> Result<(), OrderError> {
        match self.pairs.into_iter().find(|(_, _, read)| !read) {
            Some((key, _, _)) => Err(OrderError::Unknown(key.into_owned())),
            None => Ok(()),
        }
    }

    pub(super) fn symbol(&mut self) -> Result<String, OrderError> {
        let symbol = self.required("symbol")?;
        check_symbol(&symbol)?;
        Ok(symbol.into_owned())
    }

    pub(super) fn symbol_opt(&mut self) -> Result<Option<String>, OrderError> {
        self.take("symbol")
            .map(|s| check_symbol(&s).map(|()| s.into_owned()))
            .transpose()
    }

    pub(super) fn client_id(&mut self, name: &'static str) -> Result<Option<String>, OrderError> {
        self.take(name)
            .map(|id| check_client_id(&id, name).map(|()| id.into_owned()))
            .transpose()
    }

    pub(super) fn timing(&mut self) -> Result<Timing, OrderError> {
        let timestamp_ms = self
            .u64_opt("timestamp")?
            .ok_or(OrderError::Missing("timestamp"))?;
        let recv_window_ms = self.u64_opt("recvWindow")?;
        if let Some(window) = recv_window_ms {
            if window > MAX_RECV_WINDOW_MS {
                return Err(OrderError::Invalid {
                    name: "recvWindow",
                    value: window.to_string(),
                    reason: "must be less than or equal to 60000",
                });
            }
        }
        Ok(Timing {
            timestamp_ms,
            recv_window_ms,
        })
    }
}

pub(super) fn check_symbol(symbol: &str) -> Result<(), OrderError> {
    if symbol.len() <= 20
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(OrderError::Invalid {
            name: "symbol",
            value: symbol.to_owned(),
            reason: "expected 1-20 upper-case letters and digits",
        })
    }
}

/// Binance's client order id rule: `^[.A-Z:/a-z0-9_-]{1,36}$`.
pub fn check_client_id(id: &str, name: &'static str) -> Result<(), OrderError> {
    if !id.is_empty()
        && id.len() <= MAX_CLIENT_ORDER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(OrderError::Invalid {
            name,
            value: id.to_owned(),
            reason: "expected 1-36 characters of [.A-Z:/a-z0-9_-]",
        })
    }
}

/// `timestamp` and `recvWindow`, common to every signed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Milliseconds since the Unix epoch when the client made the request.
    pub timestamp_ms: u64,
    /// `None`: the default, [`DEFAULT_RECV_WINDOW_MS`].
    pub recv_window_ms: Option<u64>,
}

impl Timing {
    pub const fn new(timestamp_ms: u64) -> Timing {
        Timing {
            timestamp_ms,
            recv_window_ms: None,
        }
    }

    pub(super) fn put(&self, q: &mut QueryBuilder) {
        if let Some(window) = self.recv_window_ms {
            q.put("recvWindow", &window.to_string());
        }
        q.put("timestamp", &self.timestamp_ms.to_string());
    }

    /// Binance's rule: refused when `timestamp >= server + 1000` or
    /// `server - timestamp > recvWindow`.
    pub fn check(&self, server_ms: u64) -> Result<(), OrderError> {
        let window = self.recv_window_ms.unwrap_or(DEFAULT_RECV_WINDOW_MS);
        let ahead = self.timestamp_ms >= server_ms.saturating_add(MAX_CLOCK_AHEAD_MS);
        let late = server_ms.saturating_sub(self.timestamp_ms) > window;
        if ahead || late {
            Err(OrderError::Timestamp {
                timestamp: self.timestamp_ms,
                server: server_ms,
                recv_window: window,
            })
        } else {
            Ok(())
        }
    }
}
