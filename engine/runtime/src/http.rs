//! A small HTTP/1.1 client over hyper for the venues' REST endpoints (depth snapshots, order
//! entry): one keep-alive connection per client, reconnected when it breaks.
//!
//! Plain `http://` only: the sim venue on loopback. Real venues' `https://` endpoints are
//! refused with a clear error (TLS for REST and WebSocket is not built into this engine yet).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// `http://host:port` with an optional path prefix.
#[derive(Debug, Clone)]
pub struct Base {
    pub authority: String,
    pub prefix: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, HttpError> {
        if url.starts_with("https://") {
            return Err(HttpError::Url {
                url: url.to_owned(),
                reason: "https endpoints need TLS, which this engine build does not include",
            });
        }
        let rest = url.strip_prefix("http://").ok_or_else(|| HttpError::Url {
            url: url.to_owned(),
            reason: "not an http:// URL",
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(k) => (&rest[..k], rest[k..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(HttpError::Url {
                url: url.to_owned(),
                reason: "no host",
            });
        }
        Ok(Base {
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// One keep-alive connection to a REST endpoint.
#[derive(Debug)]
pub struct Client {
    base: Base,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(base: Base) -> Client {
        Client { base, sender: None }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, HttpError> {
        let ready = match self.sender.as_mut() {
            Some(s) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            let stream = TcpStream::connect(&self.base.authority)
                .await
                .map_err(|source| HttpError::Connect {
                    authority: self.base.authority.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|source| HttpError::Protocol {
                    authority: self.base.authority.clone(),
                    source,
                })?;
            tokio::task::spawn_local(async move {
                // Ends when the peer closes or the sender is dropped.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        match self.sender.as_mut() {
            Some(s) => Ok(s),
            None => unreachable!("set above"),
        }
    }

    /// Sends one request and reads the whole response. `path_and_query` starts with `/`.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let uri = format!("{}{}", self.base.prefix, path_and_query);
        let authority = self.base.authority.clone();
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, authority.as_str());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
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
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| HttpError::Protocol {
                authority: authority.clone(),
                source,
            })?
            .to_bytes();
        Ok(Response { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bases_and_refuses_tls_and_junk() {
        let b = Base::parse("http://127.0.0.1:18080").expect("base");
        assert_eq!(b.authority, "127.0.0.1:18080");
        assert_eq!(b.prefix, "");
        let b = Base::parse("http://h:1/api/").expect("base");
        assert_eq!(b.prefix, "/api");
        assert!(Base::parse("https://api.binance.com")
            .expect_err("tls")
            .to_string()
            .contains("TLS"));
        assert!(Base::parse("ftp://x").is_err());
        assert!(Base::parse("http:///x").is_err());
    }
}
