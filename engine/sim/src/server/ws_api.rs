//! Binance Spot's WebSocket API (`/ws-api/v3`) on the sim's WebSocket listener: `order.place`,
//! `order.cancel` and `order.status`, each weighed by the REST rate limits as the REST request
//! it stands for, its key and signature verified as the REST handlers verify them, and served by
//! the same order logic (`Cmd::Order`, `Cmd::Cancel` through the matcher, with the latency and
//! the injected faults it applies; `Venue::query_order`). A `drop` fault drops these
//! connections too, without a close frame; a `drop_ws_api` fault drops only these, and refuses
//! new ones until `clear`.
//!
//! Session authentication (web-socket-api.md, "Session Authentication"): with an Ed25519 key,
//! `session.logon` (its `apiKey`, `timestamp` and signature verified by the public key derived
//! from the private key the manifest references) authenticates the connection, after which
//! requests without `apiKey` and `signature` are the account's; `session.status` tells. On a
//! connection not logged on, a request without them is refused as Binance refuses a missing
//! mandatory parameter (`-1102`). An HMAC key cannot log on (Binance takes `session.logon`
//! from Ed25519 keys only). A `reject_logon` fault refuses logons with the code it names. The
//! stats count logons, and signed and unsigned requests.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rt_venues::binance::signing::KeyType;
use rt_venues::binance::ws_api::{
    logon_timing, rate_limits_json, session_json, WsMethod, WsRequest, SESSION_LOGON,
    SESSION_STATUS,
};
use rt_venues::binance_orders::{ApiError, CancelOrder, NewOrder, QueryOrder};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::{bump, check_api_key, stopping, wall_ms, Cmd, Shared};
use crate::limits::Verdict;

/// What a request waits for: the matcher's answer, or one already known.
enum Pending {
    Matcher(oneshot::Receiver<Result<String, ApiError>>),
    Now(Result<String, (u16, ApiError, Option<u64>)>),
}

/// A request taken: what it waits for, and the usage its answer reports (`rateLimits`).
struct Taken {
    pending: Pending,
    rate_limits: Option<String>,
}

/// A connection's authentication (`session.logon`).
struct Session {
    connected_since: u64,
    /// The key it is authenticated with, since when.
    logged_on: Option<(String, u64)>,
}

/// Serves one WebSocket API connection until the client closes it, a `drop` fault, or the
/// sim stops. Requests are read in order and handed to the matcher in that order (an order
/// before its cancel); their answers go out as they come.
pub(super) async fn serve(shared: Arc<Shared>, ws: WebSocketStream<TcpStream>) {
    bump(&shared.counters.ws_connections);
    let mut session = Session {
        connected_since: wall_ms(),
        logged_on: None,
    };
    let mut drops = shared.drop_tx.subscribe();
    let mut ws_api_drops = shared.drop_ws_api_tx.subscribe();
    let mut shutdown = shared.shutdown_tx.subscribe();
    let (mut sink, mut incoming) = ws.split();
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<String>();
    loop {
        let out = tokio::select! {
            answer = answers.recv() => match answer {
                Some(text) => Message::Text(Utf8Bytes::from(text)),
                None => return,
            },
            _ = drops.changed() => {
                bump(&shared.counters.ws_dropped);
                return;
            }
            _ = ws_api_drops.changed() => {
                bump(&shared.counters.ws_dropped);
                return;
            }
            _ = shutdown.changed() => {
                let _ = sink.close().await;
                return;
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    bump(&shared.counters.http_requests);
                    let (request, Taken { pending, rate_limits }) = match WsRequest::parse(&text) {
                        Ok(r) => {
                            let taken = take(&shared, &r, &mut session);
                            (r, taken)
                        }
                        Err(e) => {
                            // Binance answers an unreadable request with a null id.
                            let r = WsRequest {
                                id: serde_json::Value::Null,
                                method: String::new(),
                                params: String::new(),
                                signature: None,
                                api_key: None,
                            };
                            let pending = Pending::Now(Err((400, e.to_api_error(), None)));
                            (r, Taken { pending, rate_limits: None })
                        }
                    };
                    let tx = answers_tx.clone();
                    tokio::spawn(async move {
                        let result = match pending {
                            Pending::Now(r) => r,
                            Pending::Matcher(rx) => match rx.await {
                                Ok(Ok(body)) => Ok(body),
                                Ok(Err(e)) => Err((e.http_status(), e, None)),
                                Err(_) => {
                                    let e = stopping();
                                    Err((e.http_status(), e, None))
                                }
                            },
                        };
                        let limits = rate_limits.as_deref();
                        let text = match &result {
                            Ok(body) => request.answer(Ok(body), None, limits),
                            Err((status, e, retry)) => {
                                request.answer(Err((*status, e)), *retry, limits)
                            }
                        };
                        let _ = tx.send(text);
                    });
                    continue;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => continue,
            },
        };
        if sink.send(out).await.is_err() {
            return;
        }
        bump(&shared.counters.frames_sent);
    }
}

/// Weighs, authorizes and parses a request, and hands it to the matcher (now, in the order
/// the requests came) or answers it; the answer reports the usage after it (`rateLimits`).
fn take(shared: &Shared, request: &WsRequest, session: &mut Session) -> Taken {
    let now_only = |pending| Taken {
        pending,
        rate_limits: None,
    };
    let now = wall_ms();
    let at_once = |answer: Result<String, ApiError>| {
        now_only(Pending::Now(answer.map_err(|e| (e.http_status(), e, None))))
    };
    match request.method.as_str() {
        SESSION_LOGON => return at_once(logon(shared, request, session, now)),
        SESSION_STATUS => {
            let (key, since) = session
                .logged_on
                .as_ref()
                .map_or((None, None), |(k, t)| (Some(k.as_str()), Some(*t)));
            return at_once(Ok(session_json(key, since, session.connected_since, now)));
        }
        _ => {}
    }
    let Some(method) = WsMethod::parse(&request.method) else {
        let e = ApiError::new(
            -1100,
            format!(
                "unknown method '{}' (the simulator serves order.place, order.cancel, \
                 order.status, session.logon and session.status)",
                request.method
            ),
        );
        return now_only(Pending::Now(Err((400, e, None))));
    };
    let (http_method, path) = method.rest_equivalent();
    let params = request.params_without_key();
    let mut meter = shared.meter();
    let limits = meter.limits();
    let (usage, order) = match meter.admit(now, http_method, path, &params) {
        Verdict::Refuse {
            status,
            error,
            retry_after_s,
            usage,
        } => {
            drop(meter);
            let until = now + retry_after_s.saturating_mul(1000);
            return Taken {
                pending: Pending::Now(Err((status, error, Some(until)))),
                rate_limits: Some(rate_limits_json(&usage, &limits, false)),
            };
        }
        Verdict::Pass { usage, order } => (usage, order),
    };
    drop(meter);
    let rate_limits = Some(rate_limits_json(&usage, &limits, order));
    let pending = match authorize(shared, request, session) {
        Err(e) => Pending::Now(Err((e.http_status(), e, None))),
        Ok(()) => match dispatch(shared, method, &params, now) {
            Ok(pending) => pending,
            Err(e) => Pending::Now(Err((e.http_status(), e, None))),
        },
    };
    Taken {
        pending,
        rate_limits,
    }
}

/// Parses the params of `method` and sends the command to the matcher (a query is answered
/// from the venue's state at once).
fn dispatch(
    shared: &Shared,
    method: WsMethod,
    params: &str,
    now: u64,
) -> Result<Pending, ApiError> {
    let (tx, rx) = oneshot::channel();
    let cmd = match method {
        WsMethod::Place => {
            let order = NewOrder::parse(params).map_err(|e| e.to_api_error())?;
            order.timing.check(now).map_err(|e| e.to_api_error())?;
            Cmd::Order(order, tx)
        }
        WsMethod::Cancel => {
            let cancel = CancelOrder::parse(params).map_err(|e| e.to_api_error())?;
            cancel.timing.check(now).map_err(|e| e.to_api_error())?;
            Cmd::Cancel(cancel, tx)
        }
        WsMethod::Status => {
            let q = QueryOrder::parse(params).map_err(|e| e.to_api_error())?;
            q.timing.check(now).map_err(|e| e.to_api_error())?;
            return shared
                .venue()
                .query_order(&q)
                .map(|body| Pending::Now(Ok(body)));
        }
    };
    shared.cmd_tx.send(cmd).map_err(|_| stopping())?;
    Ok(Pending::Matcher(rx))
}

/// Checks the key and the signature when the sim has credentials, as the REST handlers do; a
/// request with neither is the account's on a logged-on connection.
fn authorize(shared: &Shared, request: &WsRequest, session: &Session) -> Result<(), ApiError> {
    let Some(creds) = &shared.credentials else {
        return Ok(());
    };
    if request.api_key.is_none() && request.signature.is_none() {
        if session.logged_on.is_some() {
            bump(&shared.counters.ws_api_unsigned);
            return Ok(());
        }
        return Err(missing("apiKey"));
    }
    check_api_key(shared, request.api_key.as_deref())?;
    let Some(signature) = request.signature.as_deref() else {
        return Err(missing("signature"));
    };
    verify(creds, &request.params, signature)?;
    bump(&shared.counters.ws_api_signed);
    Ok(())
}

/// Binance's answer to a mandatory parameter not sent (errors.md, `-1102`).
fn missing(name: &str) -> ApiError {
    ApiError::new(
        -1102,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

fn verify(creds: &crate::Credentials, params: &str, signature: &str) -> Result<(), ApiError> {
    creds
        .key
        .verify(params.as_bytes(), signature)
        .map_err(|_| ApiError::new(-1022, "Signature for this request is not valid."))
}

/// `session.logon`: the key, the timing and the Ed25519 signature of `apiKey` and
/// `timestamp` verified; the connection is the account's from now on. Without credentials
/// (paper), any key logs on.
fn logon(
    shared: &Shared,
    request: &WsRequest,
    session: &mut Session,
    now: u64,
) -> Result<String, ApiError> {
    let Some(key) = request.api_key.as_deref() else {
        return Err(missing("apiKey"));
    };
    if let Some(code) = shared.logon_rejection() {
        let msg = match code {
            -2015 => "Invalid API-key, IP, or permissions for action.",
            _ => "The simulator refuses this logon (fault reject_logon).",
        };
        return Err(ApiError::new(code, msg));
    }
    let timing = logon_timing(&request.params_without_key()).map_err(|e| e.to_api_error())?;
    if let Some(creds) = &shared.credentials {
        check_api_key(shared, Some(key))?;
        if creds.key.key_type() != KeyType::Ed25519 {
            // Binance takes session.logon from Ed25519 keys only (its code for another key
            // type is not documented; the sim says the request is not authorized).
            return Err(ApiError::new(
                -1002,
                "You are not authorized to execute this request.",
            ));
        }
        let Some(signature) = request.signature.as_deref() else {
            return Err(missing("signature"));
        };
        verify(creds, &request.params, signature)?;
    }
    timing.check(now).map_err(|e| e.to_api_error())?;
    bump(&shared.counters.ws_api_logons);
    session.logged_on = Some((key.to_owned(), now));
    Ok(session_json(
        Some(key),
        Some(now),
        session.connected_since,
        now,
    ))
}
