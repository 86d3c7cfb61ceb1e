//! A small HTTP/1.1 client over hyper for the venues' REST endpoints (depth snapshots, order
//! entry): one keep-alive connection per client, reconnected when it breaks.
//!
//! `http://` is plain TCP (the sim venue on loopback; default port 80). `https://` (real venues;
//! default port 443) wraps the TCP stream in rustls (`tls.rs`: the `ring` provider, Mozilla's
//! roots plus `RT_ENGINE_EXTRA_CA`), with the URL's host name as SNI and as the name the
//! certificate must carry, before the HTTP/1.1 handshake. A TLS failure (an untrusted or
//! mismatched certificate, a refused handshake) is an error naming the URL.
//!
//! A client made [`Client::with_limits`] weighs every request against its venue's rate limits
//! first (`ratelimit`: refused locally with [`HttpError::RateLimited`] when it would exceed
//! them, during a 429's back-off or an IP ban) and reads every answer's usage headers into them.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rt_venues::rate_limits::{Seen, UNMODELLED};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::sync::Arc;
use tokio::net::TcpStream;

use crate::ratelimit::{wall_ms, Answer, VenueLimits};
use tokio_rustls::TlsConnector;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("{authority}: cannot connect: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("{authority}: {source}")]
    Protocol {
        authority: String,
        source: hyper::Error,
    },
    #[error("{authority}: bad request: {reason}")]
    Request { authority: String, reason: String },
    #[error("{url}: TLS handshake failed: {source}")]
    Tls { url: String, source: std::io::Error },
    #[error("{url}: TLS: {reason}")]
    TlsSetup { url: String, reason: String },
    /// Not sent: see [`crate::ratelimit`].
    #[error("{authority}: not sent: {refusal}")]
    RateLimited {
        authority: String,
        refusal: crate::ratelimit::Refusal,
    },
}

/// A response: status, body and the rate-limit headers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
    /// `X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-*`, `Retry-After`.
    pub limits: Seen,
}

/// `http://host[:port]` or `https://host[:port]` with an optional path prefix.
#[derive(Debug, Clone)]
pub struct Base {
    /// As the URL writes it (the `Host` header).
    pub authority: String,
    pub prefix: String,
    /// `https://`.
    pub tls: bool,
    /// The host without brackets or port: what to resolve, and the TLS server name.
    pub host: String,
    /// The URL's port, or 443 (https) / 80 (http).
    pub port: u16,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, HttpError> {
        let bad = |reason| HttpError::Url {
            url: url.to_owned(),
            reason,
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("not an http:// or https:// URL"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(k) => (&rest[..k], rest[k..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user info in the URL is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => return Err(bad("junk after ']'")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, p)) => (host, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Base {
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// `http[s]://authority`, for messages.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// One keep-alive connection to a REST endpoint.
#[derive(Debug)]
pub struct Client {
    base: Base,
    /// For `https://`: the TLS config (`None`: the process's shared one, `tls::shared`).
    tls: Option<Arc<ClientConfig>>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The venue's rate limits, shared with its other clients.
    limits: Option<Arc<VenueLimits>>,
    /// What the last answer did to them.
    last: Answer,
}

impl Client {
    pub fn new(base: Base) -> Client {
        Client {
            base,
            tls: None,
            sender: None,
            limits: None,
            last: Answer::Fine,
        }
    }

    /// A client whose requests count against (and are refused by) `limits`.
    pub fn with_limits(base: Base, limits: Arc<VenueLimits>) -> Client {
        Client {
            limits: Some(limits),
            ..Client::new(base)
        }
    }

    /// A client whose `https://` connections use `config` instead of the shared config.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn with_tls_config(base: Base, config: Arc<ClientConfig>) -> Client {
        Client {
            base,
            tls: Some(config),
            sender: None,
            limits: None,
            last: Answer::Fine,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, HttpError> {
        let ready = match self.sender.as_mut() {
            Some(s) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            let stream = TcpStream::connect((self.base.host.as_str(), self.base.port))
                .await
                .map_err(|source| HttpError::Connect {
                    authority: self.base.authority.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let sender = if self.base.tls {
                let stream = self.tls_handshake(stream).await?;
                http1_handshake(&self.base, stream).await?
            } else {
                http1_handshake(&self.base, stream).await?
            };
            self.sender = Some(sender);
        }
        match self.sender.as_mut() {
            Some(s) => Ok(s),
            None => unreachable!("set above"),
        }
    }

    async fn tls_handshake(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HttpError> {
        let setup = |reason: String| HttpError::TlsSetup {
            url: self.base.origin(),
            reason,
        };
        let config = match &self.tls {
            Some(c) => c.clone(),
            None => crate::tls::shared().map_err(setup)?,
        };
        let name = ServerName::try_from(self.base.host.clone()).map_err(|e| {
            setup(format!(
                "{:?} is not a valid server name: {e}",
                self.base.host
            ))
        })?;
        TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|source| HttpError::Tls {
                url: self.base.origin(),
                source,
            })
    }

    /// Sends one request and reads the whole response. `path_and_query` starts with `/`.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        self.request_with_body(method, path_and_query, headers, "")
            .await
    }

    /// [`Client::request`] with a body (OKX's JSON `POST`s); empty for none.
    pub async fn request_with_body(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Response, HttpError> {
        let uri = format!("{}{}", self.base.prefix, path_and_query);
        let authority = self.base.authority.clone();
        self.last = Answer::Fine;
        if let Some(limits) = &self.limits {
            let (path, query) = path_and_query
                .split_once('?')
                .unwrap_or((path_and_query, ""));
            let weight = limits.rules().weight(method.as_str(), path, query);
            let order = limits.rules().is_new_order(method.as_str(), path);
            limits
                .acquire(wall_ms(), weight, order)
                .map_err(|refusal| HttpError::RateLimited {
                    authority: authority.clone(),
                    refusal,
                })?;
        }
        let method_name = method.clone();
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, authority.as_str());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| HttpError::Request {
                authority: authority.clone(),
                reason: e.to_string(),
            })?;
        let sender = self.connect().await?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(source) => {
                self.sender = None;
                return Err(HttpError::Protocol { authority, source });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers();
        // Usage as the venue reports it (a client without limits reads `Retry-After` only).
        let names = match &self.limits {
            Some(l) => l.rules().headers(),
            None => rt_venues::rate_limits::RateRules::headers(&UNMODELLED),
        };
        let limits = Seen::parse(names, |name| {
            headers.get(name).and_then(|v| v.to_str().ok())
        });
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| HttpError::Protocol {
                authority: authority.clone(),
                source,
            })?
            .to_bytes();
        let response = Response {
            status,
            body,
            limits,
        };
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        self.last = self.observe(method_name.as_str(), path, &response);
        Ok(response)
    }

    /// Reads the answer to `method` `path` into the rate limits.
    fn observe(&self, method: &str, path: &str, r: &Response) -> Answer {
        let Some(limits) = &self.limits else {
            return Answer::Fine;
        };
        limits.observe(wall_ms(), (method, path), r.status, &r.limits, &r.body)
    }

    /// What the last answer did to the rate limits (a 429's back-off, a ban).
    pub fn last_answer(&self) -> Answer {
        self.last
    }
}

/// The HTTP/1.1 handshake over a connected stream (plain or TLS); the connection task runs on
/// the local set until the peer closes or the sender is dropped.
async fn http1_handshake<T>(base: &Base, io: T) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|source| HttpError::Protocol {
            authority: base.authority.clone(),
            source,
        })?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bases_and_refuses_junk() {
        let b = Base::parse("http://127.0.0.1:18080").expect("base");
        assert_eq!(b.authority, "127.0.0.1:18080");
        assert_eq!(b.prefix, "");
        assert!(!b.tls);
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 18080));
        let b = Base::parse("http://h:1/api/").expect("base");
        assert_eq!(b.prefix, "/api");
        assert_eq!((b.host.as_str(), b.port), ("h", 1));
        let b = Base::parse("http://h/api").expect("base");
        assert_eq!((b.host.as_str(), b.port, b.tls), ("h", 80, false));

        let b = Base::parse("https://api.binance.com").expect("https");
        assert!(b.tls);
        assert_eq!(b.authority, "api.binance.com");
        assert_eq!((b.host.as_str(), b.port), ("api.binance.com", 443));
        assert_eq!(b.origin(), "https://api.binance.com");
        let b = Base::parse("https://fapi.binance.com:8443/fapi/").expect("https");
        assert_eq!((b.host.as_str(), b.port), ("fapi.binance.com", 8443));
        assert_eq!(b.prefix, "/fapi");
        let b = Base::parse("https://[::1]:9443").expect("v6");
        assert_eq!((b.host.as_str(), b.port), ("::1", 9443));
        assert_eq!(b.authority, "[::1]:9443");
        let b = Base::parse("http://[::1]").expect("v6");
        assert_eq!((b.host.as_str(), b.port), ("::1", 80));

        assert!(Base::parse("ftp://x").is_err());
        assert!(Base::parse("http:///x").is_err());
        assert!(Base::parse("https://:443").is_err());
        assert!(Base::parse("http://h:port").is_err());
        assert!(Base::parse("http://h:70000").is_err());
        assert!(Base::parse("http://[::1").is_err());
        assert!(Base::parse("http://u:p@h").is_err());
        let e = Base::parse("wss://x").expect_err("scheme").to_string();
        assert!(e.contains("wss://x") && e.contains("https://"), "{e}");
    }
}
