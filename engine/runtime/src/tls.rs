//! TLS for real venues' `https://` (REST, `http.rs`) and `wss://` (market data, `feed.rs`; the
//! user data stream, `gateway.rs`) endpoints: rustls with the `ring` provider, TLS 1.2 and 1.3,
//! trusting Mozilla's root certificates compiled in (`webpki-roots`; no OS store is read).
//!
//! One `ClientConfig` is built once per process and shared by every connection. It also trusts
//! the CA certificates of the PEM file named by `RT_ENGINE_EXTRA_CA` when that is set (a venue
//! behind a private CA, or a test venue); `rt-engine run` builds it at start, so a missing or
//! unreadable file stops the engine before anything connects.
//!
//! Plain `http://` and `ws://` do not go through TLS (the sim venue on loopback).

use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The environment variable naming a PEM file of extra CA certificates to trust.
pub const EXTRA_CA_ENV: &str = "RT_ENGINE_EXTRA_CA";

/// A WebSocket connection as `connect_ws` opens it (plain for `ws://`, TLS for `wss://`).
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Installs rustls's `ring` provider as the process default. Call once at start; a provider
/// already installed is left as it is (the configs built here name `ring` explicitly anyway).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads the CA certificates of a PEM file (one or more `CERTIFICATE` blocks).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in it", path.display()));
    }
    Ok(certs)
}

/// A client config trusting Mozilla's roots plus `extra` (DER CA certificates), or, with
/// `webpki_roots` false, `extra` alone (tests: a certificate the test CA did not sign must fail).
pub fn client_config(
    extra: &[CertificateDer<'static>],
    webpki_roots: bool,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for (k, cert) in extra.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("extra CA certificate #{}: {e}", k + 1))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The config for a value of `RT_ENGINE_EXTRA_CA`: Mozilla's roots, plus the file's
/// certificates (unset or empty: none).
fn from_extra_ca(value: Option<OsString>) -> Result<Arc<ClientConfig>, String> {
    let extra = match value {
        Some(path) if !path.is_empty() => load_ca_file(Path::new(&path))
            .map_err(|e| format!("{EXTRA_CA_ENV}={}: {e}", Path::new(&path).display()))?,
        _ => Vec::new(),
    };
    client_config(&extra, true)
}

/// The process's shared config, built on first use (`rt-engine run` does it at start).
pub fn shared() -> Result<Arc<ClientConfig>, String> {
    static SHARED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| from_extra_ca(std::env::var_os(EXTRA_CA_ENV)))
        .clone()
}

/// Opens a WebSocket to `url` (`ws://` plain, `wss://` with the shared TLS config), as
/// `tokio_tungstenite::connect_async` does.
pub async fn connect_ws(
    url: &str,
) -> Result<(WsStream, tungstenite::handshake::client::Response), tungstenite::Error> {
    let config = shared().map_err(|e| tungstenite::Error::Io(std::io::Error::other(e)))?;
    connect_ws_with(url, config).await
}

/// `connect_ws` with a given TLS config.
pub async fn connect_ws_with(
    url: &str,
    config: Arc<ClientConfig>,
) -> Result<(WsStream, tungstenite::handshake::client::Response), tungstenite::Error> {
    // disable_nagle: small frames (cancels, pings) must not wait for an ACK.
    tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        true,
        Some(Connector::Rustls(config)),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Loopback only: a throw-away CA and a server certificate for `localhost`, made per test
    //! run with rcgen; servers on 127.0.0.1.

    use super::*;
    use crate::http::{Base, Client, HttpError};
    use futures_util::{SinkExt, StreamExt};
    use hyper::Method;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::ServerConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tokio_tungstenite::tungstenite::Message;

    struct Pki {
        ca_der: CertificateDer<'static>,
        ca_pem: String,
        server: Arc<ServerConfig>,
    }

    /// A CA, and a server certificate it signed for `localhost` (not for 127.0.0.1).
    fn pki() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rt-engine test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf.der().clone()],
                    PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
                )
                .unwrap();
        Pki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    fn trusting(pki: &Pki) -> Arc<ClientConfig> {
        client_config(std::slice::from_ref(&pki.ca_der), false).unwrap()
    }

    /// Mozilla's roots only: the test CA is unknown.
    fn not_trusting() -> Arc<ClientConfig> {
        client_config(&[], true).unwrap()
    }

    fn local<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    /// An HTTPS server answering every request on a connection with its path; counts the TLS
    /// sessions it accepted.
    async fn https_server(config: Arc<ServerConfig>) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions = Arc::new(AtomicUsize::new(0));
        let counted = sessions.clone();
        let acceptor = TlsAcceptor::from(config);
        tokio::task::spawn_local(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue; // the client refused our certificate
                };
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::task::spawn_local(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                                path.len()
                            );
                            if tls.write_all(response.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (port, sessions)
    }

    /// A WebSocket server (TLS with `config`, else plain) sending "hello" to each client.
    async fn ws_server(config: Option<Arc<ServerConfig>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::task::spawn_local(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let config = config.clone();
                tokio::task::spawn_local(async move {
                    let hello = Message::text("hello");
                    match config {
                        Some(c) => {
                            let Ok(tls) = TlsAcceptor::from(c).accept(tcp).await else {
                                return;
                            };
                            if let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await {
                                let _ = ws.send(hello).await;
                                let _ = ws.close(None).await;
                            }
                        }
                        None => {
                            if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                                let _ = ws.send(hello).await;
                                let _ = ws.close(None).await;
                            }
                        }
                    }
                });
            }
        });
        port
    }

    #[test]
    fn https_client_trusts_the_extra_ca_and_keeps_the_connection() {
        let pki = pki();
        local(async {
            let (port, sessions) = https_server(pki.server.clone()).await;
            let base = Base::parse(&format!("https://localhost:{port}/api/")).unwrap();
            let mut client = Client::with_tls_config(base, trusting(&pki));
            for k in 0..3 {
                let r = client
                    .request(Method::GET, &format!("/v3/depth?n={k}"), &[])
                    .await
                    .unwrap();
                assert_eq!(r.status, 200);
                assert_eq!(&r.body[..], format!("/api/v3/depth?n={k}").as_bytes());
            }
            assert_eq!(
                sessions.load(Ordering::SeqCst),
                1,
                "one keep-alive TLS session"
            );
        });
    }

    #[test]
    fn https_client_refuses_an_unknown_ca_naming_the_url() {
        let pki = pki();
        local(async {
            let (port, sessions) = https_server(pki.server.clone()).await;
            let url = format!("https://localhost:{port}");
            let mut client = Client::with_tls_config(Base::parse(&url).unwrap(), not_trusting());
            let err = client.request(Method::GET, "/", &[]).await.unwrap_err();
            assert!(matches!(err, HttpError::Tls { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{url}: TLS handshake failed")),
                "{msg}"
            );
            assert!(
                msg.contains("certificate") && msg.contains("UnknownIssuer"),
                "{msg}"
            );
            assert_eq!(sessions.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn https_client_refuses_a_certificate_for_another_name() {
        let pki = pki();
        local(async {
            let (port, _) = https_server(pki.server.clone()).await;
            // The certificate names localhost, not 127.0.0.1.
            let url = format!("https://127.0.0.1:{port}");
            let mut client = Client::with_tls_config(Base::parse(&url).unwrap(), trusting(&pki));
            let msg = client
                .request(Method::GET, "/", &[])
                .await
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(&url), "{msg}");
            assert!(msg.contains("certificate not valid for name"), "{msg}");
        });
    }

    #[test]
    fn wss_connects_with_the_extra_ca_and_refuses_an_unknown_one() {
        let pki = pki();
        local(async {
            let port = ws_server(Some(pki.server.clone())).await;
            let url = format!("wss://localhost:{port}/ws/key");
            let (mut ws, _) = connect_ws_with(&url, trusting(&pki)).await.unwrap();
            assert!(matches!(ws.get_ref(), MaybeTlsStream::Rustls(_)));
            let msg = ws.next().await.unwrap().unwrap();
            assert_eq!(msg.into_text().unwrap().as_str(), "hello");

            let err = connect_ws_with(&url, not_trusting()).await.unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("certificate") && msg.contains("UnknownIssuer"),
                "{msg}"
            );
        });
    }

    #[test]
    fn plain_ws_stays_plain() {
        local(async {
            let port = ws_server(None).await;
            let (mut ws, _) = connect_ws(&format!("ws://127.0.0.1:{port}/stream"))
                .await
                .unwrap();
            assert!(matches!(ws.get_ref(), MaybeTlsStream::Plain(_)));
            let msg = ws.next().await.unwrap().unwrap();
            assert_eq!(msg.into_text().unwrap().as_str(), "hello");
        });
    }

    #[test]
    fn extra_ca_file_is_trusted_on_top_of_the_mozilla_roots() {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        // Another certificate first: every CERTIFICATE block of the file counts.
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        std::fs::write(&path, format!("{}{}", other.cert.pem(), pki.ca_pem)).unwrap();
        assert_eq!(load_ca_file(&path).unwrap().len(), 2);
        let config = from_extra_ca(Some(path.clone().into_os_string())).unwrap();
        local(async {
            let (port, _) = https_server(pki.server.clone()).await;
            let base = Base::parse(&format!("https://localhost:{port}")).unwrap();
            let mut client = Client::with_tls_config(base, config);
            let r = client.request(Method::GET, "/ok", &[]).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"/ok"[..]));
        });

        // Unset or empty: Mozilla's roots only.
        assert!(from_extra_ca(None).is_ok());
        assert!(from_extra_ca(Some(OsString::new())).is_ok());
        let missing = dir.path().join("missing.pem");
        let err = from_extra_ca(Some(missing.clone().into_os_string())).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "RT_ENGINE_EXTRA_CA={}: cannot read",
                missing.display()
            )),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = load_ca_file(&empty).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
