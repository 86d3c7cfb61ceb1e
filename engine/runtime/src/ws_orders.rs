//! Order entry over the venue's WebSocket API (manifest `exchanges.<name>.order_entry:
//! websocket`, `endpoints.ws_api`): one persistent connection per venue, owned by the gateway's
//! runtime, carrying its new orders and cancels (Binance Spot: `order.place`, `order.cancel`,
//! written by `rt_venues::execution::FrameOrderEntry`).
//!
//! With a key that can authenticate the connection (Binance: an Ed25519 key, `session.logon`),
//! the logon is the first request on every connection, and the connection is up (orders go
//! over it) only once the venue has accepted it; the orders then carry no signature. A logon
//! refused for the key (bad key, signature or permission) stops the engine, as a REST request
//! refused for its credentials does: every logon would be refused alike. Any other refusal, or
//! no answer, is a failed connection: made again with backoff, REST meanwhile. With an HMAC key
//! there is no logon and every request is signed on its own.
//!
//! The venue's client writes each request into one reused buffer with the next id; the answer
//! carrying that id is handed back to the request's task as the REST answer would be (status,
//! body, usage), so the gateway classifies it, journals it, counts it against the rate limits
//! and settles it exactly as a REST answer. A request without an answer (the connection lost
//! after it was written, or no answer within the request timeout) has an unknown outcome: the
//! gateway settles it as it settles a REST request's (the private stream, or the order's
//! status asked over REST). While the connection is down, new orders and cancels go over REST
//! (the fallback), and the connection is made again with capped exponential backoff. Queries,
//! cancel-alls, catch-ups and the private stream's key stay on REST.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper::body::Bytes;
use rt_venues::execution::{ExecError, FrameAnswer, FrameOrderEntry, LogonRefusal, NewOrderSpec};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::http::{HttpError, Response};
use crate::ratelimit::{wall_ms, Answer, VenueLimits};
use crate::shared::{Flags, Hk, HkSender};

/// The first wait before a reconnect; doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection attempt without a handshake by then failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A logon without an answer by then failed.
const LOGON_TIMEOUT: Duration = Duration::from_secs(5);

struct Inner {
    entry: Box<dyn FrameOrderEntry>,
    /// The frame being written (reused), and the id of the request it holds.
    frame: String,
    framed: u64,
    next_id: u64,
    /// The connection is open: requests go over it.
    up: bool,
    /// Requests written and not answered, by id.
    waiting: HashMap<u64, oneshot::Sender<FrameAnswer>>,
    /// Frames to write, to the connection's task.
    out: Option<mpsc::UnboundedSender<Message>>,
}

/// One venue's WebSocket API order entry (cheap to clone: one connection, shared by the
/// gateway's tasks of this venue).
#[derive(Clone)]
pub(crate) struct WsOrders {
    inner: Rc<RefCell<Inner>>,
    limits: Arc<VenueLimits>,
    authority: String,
}

/// A request written into the buffer, not sent yet ([`WsOrders::transmit`] sends it).
pub(crate) struct Prepared {
    id: u64,
    cancel: bool,
}

impl WsOrders {
    /// Starts the connection to `url` (a task of the gateway's local set) for `entry`.
    pub(crate) fn start(
        venue: &str,
        url: &str,
        entry: Box<dyn FrameOrderEntry>,
        limits: Arc<VenueLimits>,
        flags: Arc<Flags>,
        hk: HkSender,
    ) -> WsOrders {
        let orders = WsOrders {
            inner: Rc::new(RefCell::new(Inner {
                entry,
                frame: String::with_capacity(512),
                framed: 0,
                next_id: 1,
                up: false,
                waiting: HashMap::new(),
                out: None,
            })),
            limits,
            authority: url.to_owned(),
        };
        tokio::task::spawn_local(connection(
            orders.inner.clone(),
            venue.to_owned(),
            url.to_owned(),
            flags,
            hk,
        ));
        orders
    }

    /// The connection is open (requests go over it; else over REST).
    pub(crate) fn is_up(&self) -> bool {
        self.inner.borrow().up
    }

    /// Waits until the connection is open, at most `limit`; whether it is.
    pub(crate) async fn wait_up(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while !self.is_up() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.is_up()
    }

    /// Writes a new order into the buffer.
    pub(crate) fn prepare_order(
        &self,
        order: &NewOrderSpec<'_>,
        now_ms: u64,
    ) -> Result<Prepared, ExecError> {
        let mut inner = self.inner.borrow_mut();
        let id = inner.take_id();
        let Inner { entry, frame, .. } = &mut *inner;
        entry.place(frame, id, order, now_ms)?;
        inner.framed = id;
        Ok(Prepared { id, cancel: false })
    }

    /// Writes a cancel of our order `client_id` on `symbol` into the buffer.
    pub(crate) fn prepare_cancel(&self, symbol: &str, client_id: &str, now_ms: u64) -> Prepared {
        let mut inner = self.inner.borrow_mut();
        let id = inner.take_id();
        let Inner { entry, frame, .. } = &mut *inner;
        entry.cancel(frame, id, symbol, client_id, now_ms);
        inner.framed = id;
        Prepared { id, cancel: true }
    }

    /// Sends the request last prepared (nothing may be prepared in between: the caller does
    /// not await between the two) and waits for its answer, at most `timeout`. `None`: no
    /// answer (the connection was lost, or the time is up): the outcome is unknown. Also what
    /// the answer did to the venue's rate limits.
    pub(crate) async fn transmit(
        &self,
        prepared: Prepared,
        timeout: Duration,
    ) -> (Option<Result<Response, HttpError>>, Answer) {
        let (method, path) = self.inner.borrow().entry.weighed_as(prepared.cancel);
        let rules = self.limits.rules();
        let weight = rules.weight(method, path, "");
        if let Err(refusal) =
            self.limits
                .acquire(wall_ms(), weight, rules.is_new_order(method, path))
        {
            let refused = HttpError::RateLimited {
                authority: self.authority.clone(),
                refusal,
            };
            return (Some(Err(refused)), Answer::Fine);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.borrow_mut();
            let out = inner.out.clone().filter(|_| inner.framed == prepared.id);
            let Some(out) = out else {
                // Not sent (the connection lost since it was prepared, or its frame written
                // over): refused as a request that could not connect is.
                let reason = if inner.out.is_none() {
                    "the WebSocket API connection is down"
                } else {
                    "the request's frame was written over before it was sent"
                };
                let e = HttpError::Connect {
                    authority: self.authority.clone(),
                    source: std::io::Error::other(reason),
                };
                return (Some(Err(e)), Answer::Fine);
            };
            // The one copy: tungstenite takes an owned message.
            let message = Message::Text(inner.frame.as_str().into());
            inner.waiting.insert(prepared.id, tx);
            if out.send(message).is_err() {
                inner.waiting.remove(&prepared.id);
                return (None, Answer::Fine);
            }
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return (None, Answer::Fine),
            Err(_) => {
                // A connection that leaves a request unanswered this long is not trusted with
                // the next ones (half-open, or the venue stuck): replaced, REST meanwhile.
                let mut inner = self.inner.borrow_mut();
                inner.waiting.remove(&prepared.id);
                inner.up = false;
                inner.out = None;
                return (None, Answer::Fine);
            }
        };
        let seen = answer.seen;
        let limits = self.limits.observe(
            wall_ms(),
            (method, path),
            answer.status,
            &seen,
            answer.body.as_bytes(),
        );
        let response = Response {
            status: answer.status,
            body: Bytes::from(answer.body),
            limits: seen,
        };
        (Some(Ok(response)), limits)
    }
}

impl Inner {
    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

fn log(hk: &HkSender, line: String) {
    let _ = hk.send(Hk::Log(format!("gateway: {line}")));
}

/// Keeps the connection open until the engine stops: connects (capped exponential backoff
/// between attempts), writes what the requests hand it, hands each answer to its request, and
/// on a loss marks the connection down (orders go over REST) and fails every request waiting
/// (their outcome is unknown).
async fn connection(
    inner: Rc<RefCell<Inner>>,
    venue: String,
    url: String,
    flags: Arc<Flags>,
    hk: HkSender,
) {
    let mut backoff = BACKOFF_MIN;
    let mut connected_before = false;
    while !flags.stopping() {
        let ws = match tokio::time::timeout(CONNECT_TIMEOUT, crate::tls::connect_ws(&url)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                log(&hk, format!("{venue}: WebSocket API {url}: {e}; retrying"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err(_) => {
                log(
                    &hk,
                    format!("{venue}: WebSocket API {url}: no handshake; retrying"),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let mut ws = ws;
        match logon(&inner, &mut ws).await {
            Ok(false) => {}
            Ok(true) => log(
                &hk,
                format!("{venue}: WebSocket API session logged on (orders unsigned)"),
            ),
            Err(LogonRefusal::Credentials(r)) => {
                log(
                    &hk,
                    format!(
                        "{venue}: the venue refused our credentials at session.logon ({} {}): \
                         check exchanges.{venue}.credentials; stopping",
                        r.code.map_or_else(String::new, |c| c.to_string()),
                        r.message
                    ),
                );
                flags.fail();
                return;
            }
            Err(LogonRefusal::Transient(why)) => {
                log(
                    &hk,
                    format!("{venue}: WebSocket API session.logon failed ({why}); retrying"),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        backoff = BACKOFF_MIN;
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        {
            let mut i = inner.borrow_mut();
            i.out = Some(tx);
            i.up = true;
        }
        log(
            &hk,
            format!(
                "{venue}: order entry over the WebSocket API {}",
                if connected_before {
                    "back"
                } else {
                    "connected"
                }
            ),
        );
        connected_before = true;
        // Open until lost: the engine's last cancels may go over it while it stops (the
        // connection ends with the gateway's runtime).
        let (mut sink, mut stream) = ws.split();
        let why = loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(frame) => {
                        if let Err(e) = sink.send(frame).await {
                            break e.to_string();
                        }
                    }
                    // Its sender dropped by a request that went unanswered.
                    None => break "a request went unanswered: replaced".to_owned(),
                },
                read = stream.next() => match read {
                    Some(Ok(Message::Text(text))) => deliver(&inner, &venue, &hk, &text),
                    Some(Ok(Message::Close(_))) | None => break "closed by the venue".to_owned(),
                    Some(Err(e)) => break e.to_string(),
                    // Pings are answered by tungstenite.
                    Some(Ok(_)) => {}
                },
            }
        };
        let lost = {
            let mut i = inner.borrow_mut();
            i.up = false;
            i.out = None;
            // Their senders dropped: each request's outcome is unknown, settled by the gateway.
            let n = i.waiting.len();
            i.waiting.clear();
            n
        };
        if flags.stopping() {
            return;
        }
        log(
            &hk,
            format!(
                "{venue}: WebSocket API connection lost ({why}); {lost} request(s) of unknown \
                 outcome; orders over REST until it is back"
            ),
        );
    }
}

/// Authenticates a new connection when the venue's client logs on (`true`), before any order
/// goes over it; `false`: no logon, requests signed one by one. A connection lost or silent
/// during the logon is a transient failure.
async fn logon<W>(inner: &Rc<RefCell<Inner>>, ws: &mut W) -> Result<bool, LogonRefusal>
where
    W: Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    let (id, frame) = {
        let mut i = inner.borrow_mut();
        let id = i.take_id();
        let Inner { entry, frame, .. } = &mut *i;
        if !entry.logon(frame, id, wall_ms()) {
            return Ok(false);
        }
        // The buffer now holds the logon: no order prepared before may be sent from it.
        i.framed = id;
        (id, Message::Text(i.frame.as_str().into()))
    };
    let transient = |why: String| LogonRefusal::Transient(why);
    ws.send(frame).await.map_err(|e| transient(e.to_string()))?;
    let answer = tokio::time::timeout(LOGON_TIMEOUT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let answer = inner.borrow().entry.answer(&text, wall_ms());
                    match answer {
                        Ok(a) if a.id == Some(id) => return Ok(a),
                        // Not the logon's (nothing else is in flight): read on.
                        Ok(_) => {}
                        Err(e) => return Err(transient(e.to_string())),
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err(transient("closed by the venue".to_owned()))
                }
                Some(Err(e)) => return Err(transient(e.to_string())),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .map_err(|_| transient("no answer".to_owned()))??;
    inner.borrow_mut().entry.logged_on(&answer)?;
    Ok(true)
}

/// Hands an answer to the request waiting for it.
fn deliver(inner: &Rc<RefCell<Inner>>, venue: &str, hk: &HkSender, text: &str) {
    let mut i = inner.borrow_mut();
    match i.entry.answer(text, wall_ms()) {
        Ok(answer) => match answer.id.and_then(|id| i.waiting.remove(&id)) {
            Some(waiting) => {
                let _ = waiting.send(answer);
            }
            None => log(
                hk,
                format!("{venue}: a WebSocket API answer to no request of ours: {text}"),
            ),
        },
        Err(e) => log(hk, format!("{venue}: WebSocket API: {e}: {text}")),
    }
}
