//! The execution boundary: what the engine's gateway asks of a venue's order entry, without
//! I/O. A venue implements [`ExecutionClient`]; the gateway keeps the threads, the connections,
//! the rings, the journal, the rate-limit accounting and the catch-up orchestration, and calls
//! the client to
//! - build a request, signed, ready for the wire ([`VenueRequest`]): a new order
//!   ([`NewOrderSpec`], venue-neutral, with the derivative fields `reduce_only` and
//!   `position_side` a futures venue sends), a cancel, the cancel of everything open on a
//!   symbol, an order query, a page of an order's trades, the account's balances, and the
//!   private stream's key (open, keep alive) and URL;
//! - classify an answer ([`ExecutionClient::classify`]) into [`Outcome`]: accepted, rejected
//!   (with a venue-neutral [`Refusal`]), rate-limited (back off, or banned), or of unknown
//!   outcome (the venue may have acted: ask it later);
//! - read the answers it needs the content of ([`OrderState`], [`VenueTrade`]) and the events
//!   of the private stream ([`PrivateEvent`]: order updates, fills with the commission asset
//!   the venue charged, the stream's expiry).
//!
//! Prices, quantities and commissions are 10^-8 fixed point ([`Price`], [`Qty`], [`Cash`]).
//! Binance Spot ([`crate::binance::SpotExecution`]) and Binance USD-M futures
//! ([`crate::binance::USdmExecution`]: `/fapi/v1/order` with `reduceOnly` and `positionSide`,
//! `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE` on the futures user stream) implement it: their
//! differences are in the fields they write and read, not in the gateway's flow. A futures
//! venue's account settings (position mode, leverage, margin type) and positions are asked
//! through [`ExecutionClient::derivatives`].

use std::fmt;

use rt_core::{Cash, OrderKind, Price, Qty, Side};

/// An HTTP method of a venue request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A request ready for the wire: signed when the client has credentials, with the headers it
/// needs. The gateway sends it as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueRequest {
    pub method: Method,
    /// Path and query string, from `/` (`/api/v3/order?symbol=..&signature=..`).
    pub path: String,
    /// Headers the venue needs (the API key; OKX: the key, signature, timestamp, passphrase).
    pub headers: Vec<(&'static str, String)>,
    /// The body (OKX: the JSON of a `POST`); empty for none (Binance sends everything in the
    /// query).
    pub body: String,
}

impl VenueRequest {
    /// The headers as the HTTP client takes them.
    pub fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// An account's API credentials, resolved from their secret references. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub key: String,
    /// The HMAC secret, or (`key_type` Ed25519) the private key's PKCS#8 PEM.
    pub secret: String,
    /// OKX's API passphrase (`None` on Binance).
    pub passphrase: Option<String>,
    /// How requests are signed (manifest `credentials.key_type`; Ed25519: Binance only).
    pub key_type: rt_manifest::model::KeyType,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// A derivative position's side in the venue's position mode: `Both` in one-way mode (the
/// only mode a spot venue has), `Long` or `Short` in hedge mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PositionSide {
    #[default]
    Both,
    Long,
    Short,
}

/// A new order as the engine asks for it, venue-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrderSpec<'a> {
    pub symbol: &'a str,
    /// Our client order id (idempotency, and how reports are matched to orders).
    pub client_id: &'a str,
    pub side: Side,
    pub kind: OrderKind,
    /// Ignored for a market order.
    pub price: Price,
    pub qty: Qty,
    /// The order may only reduce a derivative position; a spot venue refuses it.
    pub reduce_only: bool,
    pub position_side: PositionSide,
}

impl NewOrderSpec<'_> {
    /// A spot venue's refusal of the derivative fields (`reduce_only`, a hedge-mode side).
    pub fn spot_only(&self, venue: &'static str) -> Result<(), ExecError> {
        if self.reduce_only {
            return Err(ExecError::Unsupported {
                venue,
                what: "reduce-only orders",
            });
        }
        if self.position_side != PositionSide::Both {
            return Err(ExecError::Unsupported {
                venue,
                what: "hedge-mode position sides",
            });
        }
        Ok(())
    }
}

/// What a request was, for [`ExecutionClient::classify`] (the same answer means different
/// things to different requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    NewOrder {
        kind: OrderKind,
    },
    Cancel,
    /// An amendment of one order ([`ExecutionClient::amend`]).
    Amend,
    CancelAll,
    Query,
    /// Anything else (trades, balances, the stream key).
    Read,
}

/// Why a venue refused a request, venue-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// A post-only order that would have taken liquidity.
    PostOnlyWouldCross,
    /// The order named is not known (a cancel that crossed a fill, a query of an order that
    /// never reached the venue).
    UnknownOrder,
    /// A bad key, signature or permission: every further request is refused alike.
    Credentials,
    /// Anything else (a filter, the balance, a malformed request).
    Other,
}

/// A refusal: its kind and what the venue said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// The venue's error code, when its body had one.
    pub code: Option<i64>,
    pub message: String,
}

/// What an answer means for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done: an order accepted, a cancel made, a query answered.
    Accepted,
    /// Refused: nothing happened at the venue.
    Rejected(Refusal),
    /// Refused by the venue's rate limits: back off (`retry_after_ms`, when the venue said),
    /// or, `banned`, stop sending until the ban is over.
    RateLimited {
        banned: bool,
        retry_after_ms: Option<u64>,
    },
    /// The venue may or may not have acted (a 5xx, an answer saying the outcome is unknown):
    /// its private stream will tell, or the venue when asked.
    Unknown,
}

/// An order's status at the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VenueStatus {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
    Expired,
    /// Expired by self-trade prevention.
    ExpiredBySelfTradePrevention,
    Rejected,
}

impl VenueStatus {
    /// The order can still fill.
    pub const fn is_open(self) -> bool {
        matches!(self, VenueStatus::New | VenueStatus::PartiallyFilled)
    }

    /// A name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            VenueStatus::New => "NEW",
            VenueStatus::PartiallyFilled => "PARTIALLY_FILLED",
            VenueStatus::Filled => "FILLED",
            VenueStatus::Cancelled => "CANCELED",
            VenueStatus::Expired => "EXPIRED",
            VenueStatus::ExpiredBySelfTradePrevention => "EXPIRED_IN_MATCH",
            VenueStatus::Rejected => "REJECTED",
        }
    }
}

/// An order as the venue's query shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderState {
    /// The venue's id of the order (what its trades are asked by).
    pub venue_order_id: u64,
    /// Its limit price (0 for a market order): what an amendment changed it to.
    pub price: Price,
    pub orig_qty: Qty,
    pub executed_qty: Qty,
    pub status: VenueStatus,
}

/// One trade of the account, as the venue's trade history shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueTrade {
    /// The venue's trade id (what a private-stream fill carries too).
    pub id: u64,
    pub venue_order_id: u64,
    pub price: Price,
    pub qty: Qty,
    /// What the venue charged, in `commission_asset`.
    pub commission: Cash,
    pub commission_asset: String,
    pub is_maker: bool,
}

/// One asset of the account, in 10^-8 units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub asset: String,
    pub free: i64,
    pub locked: i64,
}

impl Balance {
    /// What the account holds of the asset: free plus locked in open orders.
    pub fn total(&self) -> i128 {
        i128::from(self.free) + i128::from(self.locked)
    }
}

/// A symbol's trading filters, in 10^-8 units (Binance's names for them; another venue's
/// client fills in its equivalents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolFilters {
    pub symbol: String,
    pub base_asset: String,
    pub quote_asset: String,
    /// `PRICE_FILTER.tickSize`.
    pub tick_size: i64,
    /// `LOT_SIZE.stepSize`.
    pub step_size: i64,
    /// `NOTIONAL.minNotional` (or `MIN_NOTIONAL.minNotional`); negative when the venue
    /// publishes none (OKX), and then not compared.
    pub min_notional: i64,
}

/// One filter that differs between the configuration and the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterMismatch {
    /// `PRICE_FILTER.tickSize`, `LOT_SIZE.stepSize` or `NOTIONAL.minNotional`.
    pub filter: &'static str,
    pub configured: i64,
    pub venue: i64,
}

impl SymbolFilters {
    /// Every filter of `venue` that differs from `self` (the configuration).
    pub fn mismatches(&self, venue: &SymbolFilters) -> Vec<FilterMismatch> {
        [
            ("PRICE_FILTER.tickSize", self.tick_size, venue.tick_size),
            ("LOT_SIZE.stepSize", self.step_size, venue.step_size),
            (
                "NOTIONAL.minNotional",
                self.min_notional,
                venue.min_notional,
            ),
        ]
        .into_iter()
        // A negative venue figure: the venue publishes none (OKX's minimum notional).
        .filter(|(_, c, v)| c != v && *v >= 0)
        .map(|(filter, configured, venue)| FilterMismatch {
            filter,
            configured,
            venue,
        })
        .collect()
    }
}

/// A fill on the private stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueFill {
    pub trade_id: i64,
    pub price: Price,
    pub qty: Qty,
    pub is_maker: bool,
    /// What the venue charged, in `commission_asset` (empty when the venue named none).
    pub commission: Cash,
    pub commission_asset: String,
}

/// What happened to an order, as the private stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateKind {
    Accepted,
    Fill(VenueFill),
    Cancelled,
    Expired,
    /// Expired by self-trade prevention.
    ExpiredBySelfTradePrevention,
    Rejected,
    /// Amended: the order's price and quantity ordered (fills included) now, and the
    /// amendment's request id when the venue echoes it (OKX `reqId`).
    Amended {
        price: Price,
        qty: Qty,
        request: Option<u64>,
    },
    /// An amendment the venue accepted failed after all (OKX `amendResult` `-1`): the order
    /// is as it was.
    AmendRejected {
        request: Option<u64>,
    },
}

/// One order update of the private stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderUpdate {
    pub symbol: String,
    /// The client id of the order it is about (for a cancel, the cancelled order's).
    pub client_id: String,
    pub side: Side,
    pub kind: UpdateKind,
    /// What is left to fill after it.
    pub leaves: Qty,
}

/// Why an account's balances or positions changed (a futures venue says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountReason {
    /// An order's trade (its fill reports it too).
    Order,
    /// A funding payment of a perpetual (positive: received).
    Funding,
    /// Anything else (deposit, withdrawal, margin transfer...), as the venue names it.
    Other(String),
}

/// A position as the venue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenuePosition {
    pub symbol: String,
    /// Signed, 10^-8: positive long, negative short.
    pub qty: i64,
    pub entry_price: Price,
}

/// A change of the account's balances and positions (futures: `ACCOUNT_UPDATE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountChange {
    pub reason: AccountReason,
    /// (asset, the balance's change): for [`AccountReason::Funding`], the payment.
    pub balance_changes: Vec<(String, Cash)>,
    pub positions: Vec<VenuePosition>,
    /// The venue's time of the change, ms since the Unix epoch.
    pub time_ms: u64,
}

/// An event of the private stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivateEvent {
    Order(OrderUpdate),
    /// Several order updates in one frame, in the order they happened (OKX: a fill and the
    /// order's end in one push, or several orders in one push).
    Orders(Vec<OrderUpdate>),
    /// Balances and positions (a futures venue's `ACCOUNT_UPDATE`: funding payments).
    Account(AccountChange),
    /// A derivative's mark price (a futures venue's `markPriceUpdate`, on the same
    /// connection): what its unrealised P&L is valued at.
    Mark {
        symbol: String,
        price: Price,
    },
    /// The venue expired the stream's key: nothing more comes on it.
    StreamExpired,
    /// Anything else (spot balances), not order entry's concern.
    Other,
}

/// What a frame read during the private stream's handshake is
/// ([`ExecutionClient::handshake_reply`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The answer to the frame just sent: send the next one.
    Done,
    /// Not its answer: keep reading.
    Pending,
    /// Refused (a failed login): the reason.
    Refused(String),
}

/// Why the client could not build a request or read an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{venue} does not support {what}")]
    Unsupported {
        venue: &'static str,
        what: &'static str,
    },
    #[error("{what}: {reason}")]
    Unreadable { what: &'static str, reason: String },
}

/// A venue's order entry, without I/O (see the module documentation). `now_ms` is the
/// caller's wall clock in ms since the Unix epoch (request timestamps).
pub trait ExecutionClient: fmt::Debug + Send + Sync {
    /// The venue's name in messages (`binance spot`).
    fn venue(&self) -> &'static str;
    fn new_order(&self, order: &NewOrderSpec<'_>, now_ms: u64) -> Result<VenueRequest, ExecError>;
    /// Cancels one order by our client id.
    fn cancel(&self, symbol: &str, client_id: &str, now_ms: u64) -> VenueRequest;
    /// Amends one order by our client id to `price` and `qty` ordered (fills included), as
    /// amendment `request` (which the venue's answer names, so a late answer to an earlier
    /// amendment is told apart); `None` on a venue whose orders the engine does not amend (it
    /// cancels and places).
    #[allow(clippy::too_many_arguments)]
    fn amend(
        &self,
        _symbol: &str,
        _client_id: &str,
        _price: Price,
        _qty: Qty,
        _request: u64,
        _now_ms: u64,
    ) -> Option<VenueRequest> {
        None
    }
    /// Cancels every open order of the account on `symbol`.
    fn cancel_all(&self, symbol: &str, now_ms: u64) -> VenueRequest;
    /// Asks for one order by our client id.
    fn query_order(&self, symbol: &str, client_id: &str, now_ms: u64) -> VenueRequest;
    /// A page of one order's trades, oldest first, from trade id `from_id`.
    fn order_trades(
        &self,
        symbol: &str,
        venue_order_id: u64,
        from_id: u64,
        now_ms: u64,
    ) -> VenueRequest;
    /// Trades a full page of [`ExecutionClient::order_trades`] holds (ask for the next one).
    fn trades_page(&self) -> usize;
    /// The account's balances.
    fn balances(&self, now_ms: u64) -> VenueRequest;
    /// The venue's symbols and their filters (public).
    fn exchange_info(&self) -> VenueRequest;
    /// Every request [`ExecutionClient::exchange_info`] takes to list the account's
    /// instruments (OKX: one per instrument type); each answer is read by
    /// [`ExecutionClient::symbol_filters`].
    fn exchange_info_requests(&self) -> Vec<VenueRequest> {
        vec![self.exchange_info()]
    }
    /// Opens the private stream: the request for its key; `None` when the stream needs no key
    /// (OKX logs in on the connection instead: [`ExecutionClient::stream_handshake`]).
    fn open_stream(&self) -> Option<VenueRequest>;
    /// Keeps the stream's key alive; `None` when the venue needs nothing.
    fn keep_stream_alive(&self, key: &str) -> Option<VenueRequest>;
    /// How often [`ExecutionClient::keep_stream_alive`] is sent, in ms.
    fn keep_stream_alive_every_ms(&self) -> u64;
    /// How long after it was made a request may still be accepted by the venue, in ms: after
    /// that, an order of unknown outcome the venue does not know never reached it.
    fn request_window_ms(&self) -> u64;
    /// The private stream's key from the answer to [`ExecutionClient::open_stream`].
    fn stream_key(&self, body: &str) -> Result<String, ExecError>;
    /// The private stream's URL on the venue's WebSocket base.
    fn stream_url(&self, ws_base: &str, key: &str) -> String;

    /// What an answer (`status`, `body`; `retry_after_s` from its headers) means for `op`.
    fn classify(
        &self,
        op: Operation,
        status: u16,
        body: &str,
        retry_after_s: Option<u64>,
    ) -> Outcome;
    /// Orders cancelled, from an accepted [`ExecutionClient::cancel_all`].
    fn cancelled_count(&self, body: &str) -> usize;
    /// The order from an accepted [`ExecutionClient::query_order`].
    fn order_state(&self, body: &str) -> Result<OrderState, ExecError>;
    /// The balances from an accepted [`ExecutionClient::balances`].
    fn balance_list(&self, body: &str) -> Result<Vec<Balance>, ExecError>;
    /// The filters from an accepted [`ExecutionClient::exchange_info`].
    fn symbol_filters(&self, body: &str) -> Result<Vec<SymbolFilters>, ExecError>;
    /// The trades from an accepted [`ExecutionClient::order_trades`].
    fn trades(&self, body: &str) -> Result<Vec<VenueTrade>, ExecError>;
    /// One frame of the private stream.
    fn private_event(&self, frame: &str) -> Result<PrivateEvent, ExecError>;
    /// Frames sent on the private stream once connected, in turn, each answered
    /// ([`ExecutionClient::handshake_reply`]) before the next goes (OKX: the login, then the
    /// subscriptions); none for a venue whose stream URL carries its key (Binance).
    fn stream_handshake(&self, _now_ms: u64) -> Vec<String> {
        Vec::new()
    }
    /// What a frame read during the handshake is.
    fn handshake_reply(&self, _frame: &str) -> Handshake {
        Handshake::Done
    }
    /// The text a quiet private stream is pinged with (OKX: `ping`); `None`: a WebSocket ping.
    fn stream_ping(&self) -> Option<&'static str> {
        None
    }
    /// Our client id as it travels on the wire (OKX escapes it into `clOrdId`): what a frame
    /// of ours contains.
    fn wire_client_id(&self, client_id: &str) -> String {
        client_id.to_owned()
    }
    /// For a venue without a cancel-all request (OKX): the account's open orders on `symbol`,
    /// which the engine then cancels with [`ExecutionClient::cancel_orders`]; `None` when
    /// [`ExecutionClient::cancel_all`] does it in one request (Binance).
    fn open_orders(&self, _symbol: &str, _now_ms: u64) -> Option<VenueRequest> {
        None
    }
    /// The next page of [`ExecutionClient::open_orders`]: the orders listed after the venue's
    /// order id `after` (the last of the page before); `None` when the listing is one page.
    fn open_orders_after(&self, _symbol: &str, _after: u64, _now_ms: u64) -> Option<VenueRequest> {
        None
    }
    /// Orders one page of [`ExecutionClient::open_orders`] holds at most: a full page is
    /// followed by the next one.
    fn open_orders_page(&self) -> usize {
        usize::MAX
    }
    /// The venue's ids of the orders in an accepted [`ExecutionClient::open_orders`].
    fn open_order_ids(&self, _body: &str) -> Result<Vec<u64>, ExecError> {
        Ok(Vec::new())
    }
    /// Cancels these orders of `symbol` by the venue's ids (at most
    /// [`ExecutionClient::cancel_batch_max`]); `None` on a venue with a cancel-all request.
    fn cancel_orders(&self, _symbol: &str, _ids: &[u64], _now_ms: u64) -> Option<VenueRequest> {
        None
    }
    /// Orders one [`ExecutionClient::cancel_orders`] may name.
    fn cancel_batch_max(&self) -> usize {
        20
    }
    /// Order entry over a persistent WebSocket connection, when the venue has one (Binance
    /// Spot's WebSocket API); `None`: REST only.
    fn frame_order_entry(&self) -> Option<Box<dyn FrameOrderEntry>> {
        None
    }
    /// The account's derivative settings and positions; `None` on a spot venue.
    fn derivatives(&self) -> Option<&dyn DerivativesAccount> {
        None
    }
    /// Whether an order on `symbol` may carry the reduce-only flag (a derivative: the venue
    /// then never lets it grow the position or flip it); a spot venue refuses the flag.
    fn reduce_only(&self, _symbol: &str) -> bool {
        self.derivatives().is_some()
    }
}

/// Order entry over the venue's persistent WebSocket connection (Binance's WebSocket API),
/// beside REST: requests written as frames into a buffer the caller reuses, each with the id
/// its answer carries. The answers are classified by [`ExecutionClient::classify`] like REST
/// answers ([`FrameAnswer::status`] and [`FrameAnswer::body`] mean what the REST answer's
/// status and body would).
pub trait FrameOrderEntry: fmt::Debug + Send {
    /// A new order as request `id` into `out` (cleared first).
    fn place(
        &mut self,
        out: &mut String,
        id: u64,
        order: &NewOrderSpec<'_>,
        now_ms: u64,
    ) -> Result<(), ExecError>;
    /// The cancel of our order `client_id` on `symbol` as request `id` into `out`.
    fn cancel(&mut self, out: &mut String, id: u64, symbol: &str, client_id: &str, now_ms: u64);
    /// Reads an answer frame at `now_ms`.
    fn answer(&self, frame: &str, now_ms: u64) -> Result<FrameAnswer, ExecError>;
    /// The REST request (method, path) a new order (`cancel` false) or a cancel stands for:
    /// how the venue's rate limits weigh it.
    fn weighed_as(&self, cancel: bool) -> (&'static str, &'static str);
    /// Writes the request that authenticates a new connection once (Binance: `session.logon`,
    /// Ed25519 keys) as request `id` into `out`, and signs the following requests one by one
    /// until [`FrameOrderEntry::logged_on`] accepts its answer. `false`: nothing written, every
    /// request is signed on its own (HMAC keys, no credentials).
    fn logon(&mut self, _out: &mut String, _id: u64, _now_ms: u64) -> bool {
        false
    }
    /// Reads the answer to [`FrameOrderEntry::logon`]: from now on the requests carry no key
    /// and no signature, or why not.
    fn logged_on(&mut self, _answer: &FrameAnswer) -> Result<(), LogonRefusal> {
        Ok(())
    }
}

/// Why the venue did not authenticate the order-entry connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogonRefusal {
    /// The key, its signature or its permissions: every logon would be refused alike (check
    /// the credentials; do not retry forever).
    Credentials(Refusal),
    /// Anything else (the venue busy, a rate limit, the clock off): connect again later.
    Transient(String),
}

/// An answer on the order-entry connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameAnswer {
    /// The request's id (`None`: not one of ours, or the venue could not read it).
    pub id: Option<u64>,
    /// As the REST answer's HTTP status.
    pub status: u16,
    /// As the REST answer's body (the error, or the result).
    pub body: String,
    /// The usage the answer reports, and a 429's or 418's wait, as REST's headers would.
    pub seen: crate::rate_limits::Seen,
}

/// A position with what the venue computes of its risk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionRiskState {
    pub symbol: String,
    /// Signed, 10^-8.
    pub qty: i64,
    pub entry_price: Price,
    pub mark_price: Price,
    /// Zero without a position.
    pub liquidation_price: Price,
    pub leverage: u32,
    pub isolated: bool,
}

/// A derivatives account's settings, set and verified before the engine trades, and its
/// positions with their liquidation prices.
pub trait DerivativesAccount: fmt::Debug + Send + Sync {
    /// Asks the position mode.
    fn position_mode(&self, now_ms: u64) -> VenueRequest;
    /// Whether the account is in hedge mode (two positions a symbol), from the answer.
    fn is_hedge_mode(&self, body: &str) -> Result<bool, ExecError>;
    /// Sets a symbol's leverage.
    fn set_leverage(&self, symbol: &str, leverage: u32, now_ms: u64) -> VenueRequest;
    /// The leverage in force, from the answer to [`DerivativesAccount::set_leverage`].
    fn leverage_set(&self, body: &str) -> Result<u32, ExecError>;
    /// Sets a symbol's margin type (isolated, or cross); `None` on a venue where the margin
    /// mode goes with each order and with the leverage (OKX: `tdMode`, `mgnMode`).
    fn set_margin_type(&self, symbol: &str, isolated: bool, now_ms: u64) -> Option<VenueRequest>;
    /// A refusal of [`DerivativesAccount::set_margin_type`] that says it already is so.
    fn margin_type_unchanged(&self, refusal: &Refusal) -> bool;
    /// Asks every position with its risk.
    fn positions(&self, now_ms: u64) -> VenueRequest;
    /// Whether [`DerivativesAccount::positions`] lists every symbol, flat ones too (Binance
    /// USD-M: with their leverage and margin type); `false` where only open positions are
    /// listed (OKX): a symbol without a row is flat, and its settings are checked by the
    /// answers to setting them.
    fn lists_flat_positions(&self) -> bool {
        true
    }
    fn position_risks(&self, body: &str) -> Result<Vec<PositionRiskState>, ExecError>;
    /// Asks the account's funding payments from `start_ms` on, per symbol (a cross-margin
    /// account's funding update names no symbol).
    fn funding_history(&self, start_ms: u64, now_ms: u64) -> VenueRequest;
    /// The payments from an accepted [`DerivativesAccount::funding_history`], oldest first.
    fn funding_payments(&self, body: &str) -> Result<Vec<FundingPayment>, ExecError>;
    /// Asks the delivery prices of the futures contract `symbol` (a venue without delivery
    /// futures: `None`).
    fn delivery_history(&self, _symbol: &str, _now_ms: u64) -> Option<VenueRequest> {
        None
    }
    /// `symbol`'s delivery, from an accepted [`DerivativesAccount::delivery_history`]: `None`
    /// while the venue lists none (not delivered yet).
    fn delivery(&self, _symbol: &str, _body: &str) -> Result<Option<Delivery>, ExecError> {
        Ok(None)
    }
}

/// A futures contract's delivery as the venue publishes it: the price the positions were
/// closed at, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub price: Price,
    pub time_ms: u64,
}

/// One funding payment of a derivatives account, as the venue books it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingPayment {
    pub symbol: String,
    pub asset: String,
    /// Signed, 10^-8 of `asset`: positive received.
    pub amount: i64,
    pub time_ms: u64,
    /// The venue's id of the payment (unique among the account's funding payments).
    pub id: u64,
}
