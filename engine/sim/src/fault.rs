//! Injected faults: what they are and how they are written, on the command line
//! (`--fault 1000:kind=gap`) and on the admin endpoint (`POST /sim/fault?kind=gap`).

use std::fmt;
use std::str::FromStr;

use rt_manifest::model::SimCommission;
use rt_manifest::Fixed;

use crate::limits::RateLimitFault;
use crate::SimError;

/// One fault. The query form is `kind=<kind>` plus the kind's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kind=drop[&after=N]`: drop every WebSocket connection (market and user data) without a
    /// close frame, now or once `N` more market-data frames have been sent.
    Drop { after_frames: u64 },
    /// `kind=drop_market`: drop every market-data connection now, without a close frame; user
    /// data streams stay up (a market-data outage alone).
    DropMarket,
    /// `kind=drop_user`: drop every user data stream connection now, without a close frame,
    /// and refuse new listen keys (`-1001`) until `kind=clear`; market data stays up (an
    /// outage of the account's stream alone, for as long as the test needs).
    DropUser,
    /// `kind=drop_ws_api`: drop every WebSocket API (order entry, `/ws-api/v3`) connection
    /// now, without a close frame, and refuse new ones (the handshake is answered 503) until
    /// `kind=clear`: a client's order entry has REST alone meanwhile.
    DropWsApi,
    /// `kind=freeze_user`: every user data stream connection open now goes silent but stays
    /// open (it sends nothing and answers nothing, not even a ping), as a half-open TCP
    /// connection does; new connections work.
    FreezeUser,
    /// `kind=gap[&count=N]`: do not send the next `N` (default 1) depth diffs; the sim's own
    /// book still applies them, so clients see a sequence gap and a fresh snapshot bridges it.
    Gap { count: u32 },
    /// `kind=malformed`: send one truncated frame on every market-data connection, now.
    Malformed,
    /// `kind=crossed[&transient=1]`: the next depth diff is sent with an extra bid above
    /// every ask (its ids in sequence): a client's book crosses. The sim's own book applies the
    /// diff as recorded, so a fresh snapshot repairs the client. With `transient=1` the diff
    /// after it removes that bid again (size 0), as a venue undoing a momentary crossing does:
    /// a client that kept the crossed book unused is then right again without a snapshot.
    Crossed { transient: bool },
    /// `kind=reorder`: the next two depth diffs are sent in the opposite order.
    Reorder,
    /// `kind=listen_key_expired`: every user data stream gets a `listenKeyExpired` event and
    /// then no more events (the connection stays open and answers pings), as Binance does
    /// when a listen key expires; a new listen key works.
    ListenKeyExpired,
    /// `kind=stall&ms=N`: send no market data for `N` ms; the replay schedule shifts by as
    /// much (nothing is lost).
    Stall { ms: u64 },
    /// `kind=reject[&count=N][&code=C]`: refuse the next `N` new orders (every new order when
    /// no count is given, until `kind=clear`) with Binance error code `C` (default -1015).
    RejectOrders { count: Option<u32>, code: i32 },
    /// `kind=reject_logon[&count=N][&code=C]`: refuse the next `N` WebSocket API
    /// `session.logon`s (every one when no count is given, until `kind=clear`) with Binance
    /// error code `C` (default -2015: the key refused; -1007: the venue busy).
    RejectLogon { count: Option<u32>, code: i32 },
    /// `kind=latency&ms=N`: from now on every order-entry request (new order, cancel) reaches
    /// the matcher `N` ms of capture time after it arrives, instead of the manifest's
    /// `sim.latency_us`, and is answered only then (a slow or congested venue), until
    /// `kind=clear` restores the manifest's latency.
    Latency { ms: u64 },
    /// `kind=duplicate[&count=N][&copies=K]`: send each of the next `N` (default 1,000)
    /// market-data frames `K` (default 1) more times right after it, as a client subscribed to
    /// its streams over and over sees them; the sim's own book applies each once.
    Duplicate { count: u64, copies: u32 },
    /// `kind=fee&bps=N`: from now on charge `N` basis points of each fill's notional on top of
    /// the manifest's fee schedule (the account fell to a worse fee tier), until `kind=clear`
    /// (or `bps=0`).
    Fee { bps: u32 },
    /// `kind=slippage&bps=N`: from now on every fill of the account is priced `N` basis points
    /// worse for it than the matcher's price (a buy higher, a sell lower), as fills slip on a
    /// venue whose prices move against its orders, until `kind=clear` (or `bps=0`).
    Slippage { bps: u32 },
    /// `kind=commission&asset=<quote|base|received|bnb>[&bnb_balance=D]`: charge the
    /// commissions of fills from now on in that asset (see the manifest's
    /// `sim.commission_asset`), with the BNB balance set to `D` when given.
    Commission {
        asset: SimCommission,
        /// 10^-8 BNB.
        bnb_balance: Option<i64>,
    },
    /// `kind=rate_limit[&weight_limit=N][&orders_10s_limit=N][&orders_1d_limit=N]`
    /// `[&used_weight=N][&used_orders_10s=N][&used_orders_1d=N][&retry_after_s=S][&ban_s=S]`:
    /// set or squeeze the REST limits (request weight per minute, new orders per 10 s and per
    /// day; from the manifest's `rate_limits` at start), raise the current usage (another
    /// client on the same IP or account), answer a 429 with `Retry-After: S` instead of the
    /// time to the window's end (0: the window's end again), make an IP ban last `S` seconds
    /// (default 120).
    RateLimit(RateLimitFault),
    /// `kind=ban[&s=S]`: ban the IP now (HTTP 418 to every venue request) for `S` seconds
    /// (default: the ban's length, see `rate_limit`).
    Ban { s: Option<u64> },
    /// `kind=balance&asset=A&delta=D`: move the account's balance of `A` by the signed decimal
    /// `D`, behind every client's back (a deposit, a withdrawal, another program trading); on
    /// a USD-M sim, `asset=USDT` moves the margin wallet (and so the liquidation prices).
    Balance { asset: String, delta: i64 },
    /// `kind=filters&symbol=S[&tick_size=D][&step_size=D][&min_notional=D]`: from now on
    /// `GET /api/v3/exchangeInfo` serves these filters for `S` (the venue changed them);
    /// matching keeps the manifest's.
    Filters {
        symbol: String,
        tick_size: Option<i64>,
        step_size: Option<i64>,
        min_notional: Option<i64>,
    },
    /// `kind=funding&rate=R` (USD-M): a funding payment now, at the signed decimal rate `R`
    /// (0.0001 is 0.01%; positive: longs pay shorts) on every position at its mark, sent on
    /// the user stream as an `ACCOUNT_UPDATE` with reason `FUNDING_FEE`.
    Funding { rate: i64 },
    /// `kind=mark&symbol=S&offset=D` (USD-M): from now on the venue marks `S` at its mid plus
    /// the signed decimal `D` (its `markPrice` stream, positions, liquidation prices).
    Mark { symbol: String, offset: i64 },
    /// `kind=position&symbol=S&side=buy|sell&qty=Q&price=P` (USD-M): the account traded `Q` of
    /// `S` at `P` elsewhere (another client of the account, an operator by hand): its position
    /// moves, no order of the engine's is involved.
    Position {
        symbol: String,
        side: rt_core::Side,
        qty: i64,
        price: i64,
    },
    /// `kind=clear`: cancel pending faults (rejection, gaps not yet taken, a scheduled drop,
    /// refused listen keys, an IP ban or a 429's back-off).
    Clear,
}

impl Fault {
    pub const fn kind(&self) -> &'static str {
        match self {
            Fault::Drop { .. } => "drop",
            Fault::DropMarket => "drop_market",
            Fault::DropUser => "drop_user",
            Fault::DropWsApi => "drop_ws_api",
            Fault::FreezeUser => "freeze_user",
            Fault::Gap { .. } => "gap",
            Fault::Malformed => "malformed",
            Fault::Crossed { .. } => "crossed",
            Fault::Reorder => "reorder",
            Fault::ListenKeyExpired => "listen_key_expired",
            Fault::Stall { .. } => "stall",
            Fault::RejectOrders { .. } => "reject",
            Fault::RejectLogon { .. } => "reject_logon",
            Fault::Latency { .. } => "latency",
            Fault::Duplicate { .. } => "duplicate",
            Fault::Fee { .. } => "fee",
            Fault::Slippage { .. } => "slippage",
            Fault::Commission { .. } => "commission",
            Fault::Balance { .. } => "balance",
            Fault::Filters { .. } => "filters",
            Fault::RateLimit(_) => "rate_limit",
            Fault::Ban { .. } => "ban",
            Fault::Funding { .. } => "funding",
            Fault::Mark { .. } => "mark",
            Fault::Position { .. } => "position",
            Fault::Clear => "clear",
        }
    }

    /// Parses the query form (`kind=stall&ms=500`).
    pub fn parse(query: &str) -> Result<Fault, SimError> {
        let bad = |reason: String| SimError::Fault {
            spec: query.to_owned(),
            reason,
        };
        let mut kind = None;
        let mut args: Vec<(&str, &str)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == "kind" {
                kind = Some(value);
            } else {
                args.push((key, value));
            }
        }
        let kind = kind.ok_or_else(|| {
            bad("no kind= (one of drop, drop_market, drop_user, drop_ws_api, freeze_user, gap, malformed, crossed, reorder, listen_key_expired, stall, reject, reject_logon, latency, duplicate, fee, slippage, commission, balance, filters, rate_limit, ban, funding, mark, position, clear)".into())
        })?;
        let allowed: &[&str] = match kind {
            "drop" => &["after"],
            "gap" => &["count"],
            "malformed" | "clear" | "drop_market" | "drop_user" | "drop_ws_api" | "freeze_user"
            | "reorder"
            | "listen_key_expired" => &[],
            "crossed" => &["transient"],
            "stall" => &["ms"],
            "reject" | "reject_logon" => &["count", "code"],
            "latency" => &["ms"],
            "duplicate" => &["count", "copies"],
            "fee" | "slippage" => &["bps"],
            "commission" => &["asset", "bnb_balance"],
            "balance" => &["asset", "delta"],
            "filters" => &["symbol", "tick_size", "step_size", "min_notional"],
            "rate_limit" => &RATE_LIMIT_ARGS,
            "ban" => &["s"],
            "funding" => &["rate"],
            "mark" => &["symbol", "offset"],
            "position" => &["symbol", "side", "qty", "price"],
            other => {
                return Err(bad(format!(
                    "unknown kind {other:?} (one of drop, drop_market, drop_user, drop_ws_api, freeze_user, gap, malformed, crossed, reorder, listen_key_expired, stall, reject, reject_logon, latency, duplicate, fee, slippage, commission, balance, filters, rate_limit, ban, funding, mark, position, clear)"
                )))
            }
        };
        if let Some((key, _)) = args.iter().find(|(k, _)| !allowed.contains(k)) {
            return Err(bad(format!(
                "kind={kind} takes no parameter {key:?} (it takes: {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        fn arg<T: FromStr>(
            args: &[(&str, &str)],
            key: &str,
            bad: &dyn Fn(String) -> SimError,
        ) -> Result<Option<T>, SimError> {
            match args.iter().find(|(k, _)| *k == key) {
                None => Ok(None),
                Some((_, v)) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(format!("{key}={v:?} is not a valid number"))),
            }
        }
        Ok(match kind {
            "drop" => Fault::Drop {
                after_frames: arg(&args, "after", &bad)?.unwrap_or(0),
            },
            "gap" => {
                let count = arg(&args, "count", &bad)?.unwrap_or(1);
                if count == 0 {
                    return Err(bad("count=0: a gap skips at least one diff".into()));
                }
                Fault::Gap { count }
            }
            "malformed" => Fault::Malformed,
            "crossed" => Fault::Crossed {
                transient: match arg::<u8>(&args, "transient", &bad)? {
                    None | Some(0) => false,
                    Some(1) => true,
                    Some(v) => return Err(bad(format!("transient={v}: 0 or 1"))),
                },
            },
            "reorder" => Fault::Reorder,
            "listen_key_expired" => Fault::ListenKeyExpired,
            "drop_market" => Fault::DropMarket,
            "drop_user" => Fault::DropUser,
            "drop_ws_api" => Fault::DropWsApi,
            "freeze_user" => Fault::FreezeUser,
            "stall" => Fault::Stall {
                ms: arg(&args, "ms", &bad)?
                    .ok_or_else(|| bad("kind=stall needs ms=<milliseconds>".into()))?,
            },
            "latency" => Fault::Latency {
                ms: arg(&args, "ms", &bad)?
                    .ok_or_else(|| bad("kind=latency needs ms=<milliseconds>".into()))?,
            },
            "duplicate" => {
                let count = arg(&args, "count", &bad)?.unwrap_or(1_000);
                if count == 0 {
                    return Err(bad(
                        "count=0: a duplicate fault repeats at least one frame".into()
                    ));
                }
                let copies = arg(&args, "copies", &bad)?.unwrap_or(1);
                if copies == 0 {
                    return Err(bad(
                        "copies=0: a duplicate fault sends at least one copy".into()
                    ));
                }
                Fault::Duplicate { count, copies }
            }
            "fee" | "slippage" => {
                let bps = arg(&args, "bps", &bad)?
                    .ok_or_else(|| bad(format!("kind={kind} needs bps=<basis points>")))?;
                if kind == "fee" {
                    Fault::Fee { bps }
                } else {
                    Fault::Slippage { bps }
                }
            }
            "reject" | "reject_logon" => {
                let logon = kind == "reject_logon";
                let code: i32 =
                    arg(&args, "code", &bad)?.unwrap_or(if logon { -2015 } else { -1015 });
                if code >= 0 {
                    return Err(bad(format!(
                        "code={code}: Binance error codes are negative"
                    )));
                }
                let count = arg(&args, "count", &bad)?;
                if logon {
                    Fault::RejectLogon { count, code }
                } else {
                    Fault::RejectOrders { count, code }
                }
            }
            "commission" => {
                let value = |key: &str| args.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                let asset = match value("asset") {
                    Some("quote") => SimCommission::Quote,
                    Some("base") => SimCommission::Base,
                    Some("received") => SimCommission::Received,
                    Some("bnb") => SimCommission::Bnb,
                    Some(other) => {
                        return Err(bad(format!(
                            "asset={other:?} (one of quote, base, received, bnb)"
                        )))
                    }
                    None => return Err(bad("kind=commission needs asset=<asset>".into())),
                };
                let bnb_balance = match value("bnb_balance") {
                    None => None,
                    Some(v) => match Fixed::parse(v) {
                        Ok(f) if f.raw() >= 0 => Some(f.raw()),
                        _ => {
                            return Err(bad(format!(
                                "bnb_balance={v:?} is not a non-negative decimal"
                            )))
                        }
                    },
                };
                Fault::Commission { asset, bnb_balance }
            }
            "balance" | "filters" => {
                let value = |key: &str| args.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                let decimal = |key: &str, signed: bool| -> Result<Option<i64>, SimError> {
                    let Some(v) = value(key) else {
                        return Ok(None);
                    };
                    let (negative, digits) = match v.strip_prefix('-') {
                        Some(d) if signed => (true, d),
                        _ => (false, v),
                    };
                    match Fixed::parse(digits) {
                        Ok(f) if signed || f.raw() > 0 => {
                            Ok(Some(if negative { -f.raw() } else { f.raw() }))
                        }
                        _ => Err(bad(format!(
                            "{key}={v:?} is not a {} decimal",
                            if signed { "signed" } else { "positive" }
                        ))),
                    }
                };
                let name = if kind == "balance" { "asset" } else { "symbol" };
                let target = value(name)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| bad(format!("kind={kind} needs {name}=<{name}>")))?
                    .to_owned();
                if kind == "balance" {
                    Fault::Balance {
                        asset: target,
                        delta: decimal("delta", true)?
                            .ok_or_else(|| bad("kind=balance needs delta=<decimal>".into()))?,
                    }
                } else {
                    Fault::Filters {
                        symbol: target,
                        tick_size: decimal("tick_size", false)?,
                        step_size: decimal("step_size", false)?,
                        min_notional: decimal("min_notional", false)?,
                    }
                }
            }
            "rate_limit" => {
                let f = RateLimitFault {
                    weight_limit: arg(&args, "weight_limit", &bad)?,
                    orders_10s_limit: arg(&args, "orders_10s_limit", &bad)?,
                    orders_1d_limit: arg(&args, "orders_1d_limit", &bad)?,
                    used_weight: arg(&args, "used_weight", &bad)?,
                    used_orders_10s: arg(&args, "used_orders_10s", &bad)?,
                    used_orders_1d: arg(&args, "used_orders_1d", &bad)?,
                    retry_after_s: arg(&args, "retry_after_s", &bad)?,
                    ban_s: arg(&args, "ban_s", &bad)?,
                };
                if f == RateLimitFault::default() {
                    return Err(bad(format!(
                        "kind=rate_limit needs one of {}",
                        RATE_LIMIT_ARGS.join(", ")
                    )));
                }
                if [f.weight_limit, f.orders_10s_limit, f.orders_1d_limit].contains(&Some(0)) {
                    return Err(bad("a limit of 0 refuses everything; use kind=ban".into()));
                }
                Fault::RateLimit(f)
            }
            "ban" => Fault::Ban {
                s: arg(&args, "s", &bad)?,
            },
            "mark" => {
                let value = |key: &str| args.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                let symbol = value("symbol")
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("kind=mark needs symbol=<symbol>".into()))?;
                let v = value("offset")
                    .ok_or_else(|| bad("kind=mark needs offset=<signed decimal>".into()))?;
                let (negative, digits) = v.strip_prefix('-').map_or((false, v), |d| (true, d));
                let offset = Fixed::parse(digits)
                    .map_err(|_| bad(format!("offset={v:?} is not a signed decimal")))?
                    .raw();
                Fault::Mark {
                    symbol: symbol.to_owned(),
                    offset: if negative { -offset } else { offset },
                }
            }
            "position" => {
                let value = |key: &str| {
                    args.iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| bad(format!("kind=position needs {key}=")))
                };
                let symbol = value("symbol")?;
                let side = match value("side")? {
                    "buy" => rt_core::Side::Buy,
                    "sell" => rt_core::Side::Sell,
                    other => return Err(bad(format!("side={other:?} is not buy or sell"))),
                };
                let positive = |key: &str| -> Result<i64, SimError> {
                    let v = value(key)?;
                    match Fixed::parse(v) {
                        Ok(f) if f.raw() > 0 => Ok(f.raw()),
                        _ => Err(bad(format!("{key}={v:?} is not a positive decimal"))),
                    }
                };
                Fault::Position {
                    symbol: symbol.to_owned(),
                    side,
                    qty: positive("qty")?,
                    price: positive("price")?,
                }
            }
            "funding" => {
                let v = args
                    .iter()
                    .find(|(k, _)| *k == "rate")
                    .map(|(_, v)| *v)
                    .ok_or_else(|| bad("kind=funding needs rate=<signed decimal>".into()))?;
                let (negative, digits) = v.strip_prefix('-').map_or((false, v), |d| (true, d));
                let rate = Fixed::parse(digits)
                    .map_err(|_| bad(format!("rate={v:?} is not a signed decimal")))?
                    .raw();
                Fault::Funding {
                    rate: if negative { -rate } else { rate },
                }
            }
            _ => Fault::Clear,
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kind={}", self.kind())?;
        match self {
            Fault::Drop { after_frames } if *after_frames > 0 => write!(f, "&after={after_frames}"),
            Fault::Gap { count } => write!(f, "&count={count}"),
            Fault::Crossed { transient: true } => write!(f, "&transient=1"),
            Fault::Stall { ms } | Fault::Latency { ms } => write!(f, "&ms={ms}"),
            Fault::Duplicate { count, copies } => write!(f, "&count={count}&copies={copies}"),
            Fault::Fee { bps } | Fault::Slippage { bps } => write!(f, "&bps={bps}"),
            Fault::RejectOrders { count, code } | Fault::RejectLogon { count, code } => {
                if let Some(count) = count {
                    write!(f, "&count={count}")?;
                }
                write!(f, "&code={code}")
            }
            Fault::Commission { asset, bnb_balance } => {
                let name = match asset {
                    SimCommission::Quote => "quote",
                    SimCommission::Base => "base",
                    SimCommission::Received => "received",
                    SimCommission::Bnb => "bnb",
                };
                write!(f, "&asset={name}")?;
                if let Some(b) = bnb_balance {
                    write!(f, "&bnb_balance={}", Fixed::from_raw(*b))?;
                }
                Ok(())
            }
            Fault::Balance { asset, delta } => {
                let sign = if *delta < 0 { "-" } else { "" };
                write!(
                    f,
                    "&asset={asset}&delta={sign}{}",
                    Fixed::from_raw(delta.saturating_abs())
                )
            }
            Fault::Filters {
                symbol,
                tick_size,
                step_size,
                min_notional,
            } => {
                write!(f, "&symbol={symbol}")?;
                for (key, v) in [
                    ("tick_size", tick_size),
                    ("step_size", step_size),
                    ("min_notional", min_notional),
                ] {
                    if let Some(v) = v {
                        write!(f, "&{key}={}", Fixed::from_raw(*v))?;
                    }
                }
                Ok(())
            }
            Fault::RateLimit(r) => {
                let fields = [
                    r.weight_limit.map(u64::from),
                    r.orders_10s_limit.map(u64::from),
                    r.orders_1d_limit.map(u64::from),
                    r.used_weight.map(u64::from),
                    r.used_orders_10s.map(u64::from),
                    r.used_orders_1d.map(u64::from),
                    r.retry_after_s,
                    r.ban_s,
                ];
                for (name, value) in RATE_LIMIT_ARGS.iter().zip(fields) {
                    if let Some(v) = value {
                        write!(f, "&{name}={v}")?;
                    }
                }
                Ok(())
            }
            Fault::Ban { s: Some(s) } => write!(f, "&s={s}"),
            Fault::Funding { rate } => {
                let sign = if *rate < 0 { "-" } else { "" };
                write!(f, "&rate={sign}{}", Fixed::from_raw(rate.abs()))
            }
            Fault::Position {
                symbol,
                side,
                qty,
                price,
            } => write!(
                f,
                "&symbol={symbol}&side={}&qty={}&price={}",
                if *side == rt_core::Side::Buy {
                    "buy"
                } else {
                    "sell"
                },
                Fixed::from_raw(*qty),
                Fixed::from_raw(*price)
            ),
            Fault::Mark { symbol, offset } => {
                let sign = if *offset < 0 { "-" } else { "" };
                write!(
                    f,
                    "&symbol={symbol}&offset={sign}{}",
                    Fixed::from_raw(offset.abs())
                )
            }
            _ => Ok(()),
        }
    }
}

/// The parameters of `kind=rate_limit`, in [`RateLimitFault`]'s order.
const RATE_LIMIT_ARGS: [&str; 8] = [
    "weight_limit",
    "orders_10s_limit",
    "orders_1d_limit",
    "used_weight",
    "used_orders_10s",
    "used_orders_1d",
    "retry_after_s",
    "ban_s",
];

impl FromStr for Fault {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Fault, SimError> {
        Fault::parse(s)
    }
}

/// A fault set from the options, applied once `at_frame` market-data frames have been
/// replayed. Written `<frame>:<query>`, e.g. `2000:kind=drop` or `500:kind=stall&ms=3000`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFault {
    pub at_frame: u64,
    pub fault: Fault,
}

impl FromStr for ScheduledFault {
    type Err = SimError;
    fn from_str(s: &str) -> Result<ScheduledFault, SimError> {
        let (at, query) = s.split_once(':').ok_or_else(|| SimError::Fault {
            spec: s.to_owned(),
            reason: "expected <frame>:<fault>, e.g. 2000:kind=gap".into(),
        })?;
        let at_frame = at.trim().parse().map_err(|_| SimError::Fault {
            spec: s.to_owned(),
            reason: format!("{at:?} is not a frame count"),
        })?;
        Ok(ScheduledFault {
            at_frame,
            fault: Fault::parse(query)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_kind_and_round_trips() {
        let cases = [
            ("kind=drop", Fault::Drop { after_frames: 0 }),
            ("kind=drop&after=10", Fault::Drop { after_frames: 10 }),
            ("kind=gap", Fault::Gap { count: 1 }),
            ("kind=gap&count=3", Fault::Gap { count: 3 }),
            ("kind=malformed", Fault::Malformed),
            ("kind=crossed", Fault::Crossed { transient: false }),
            (
                "kind=crossed&transient=1",
                Fault::Crossed { transient: true },
            ),
            ("kind=reorder", Fault::Reorder),
            ("kind=listen_key_expired", Fault::ListenKeyExpired),
            ("kind=drop_user", Fault::DropUser),
            ("kind=drop_ws_api", Fault::DropWsApi),
            ("kind=freeze_user", Fault::FreezeUser),
            ("kind=stall&ms=250", Fault::Stall { ms: 250 }),
            ("kind=latency&ms=400", Fault::Latency { ms: 400 }),
            (
                "kind=duplicate",
                Fault::Duplicate {
                    count: 1_000,
                    copies: 1,
                },
            ),
            (
                "kind=duplicate&count=5&copies=9",
                Fault::Duplicate {
                    count: 5,
                    copies: 9,
                },
            ),
            ("kind=fee&bps=250", Fault::Fee { bps: 250 }),
            ("kind=slippage&bps=20", Fault::Slippage { bps: 20 }),
            (
                "kind=reject",
                Fault::RejectOrders {
                    count: None,
                    code: -1015,
                },
            ),
            (
                "code=-2010&kind=reject&count=2",
                Fault::RejectOrders {
                    count: Some(2),
                    code: -2010,
                },
            ),
            (
                "kind=reject_logon",
                Fault::RejectLogon {
                    count: None,
                    code: -2015,
                },
            ),
            (
                "kind=reject_logon&count=1&code=-1007",
                Fault::RejectLogon {
                    count: Some(1),
                    code: -1007,
                },
            ),
            (
                "kind=commission&asset=bnb&bnb_balance=0.5",
                Fault::Commission {
                    asset: SimCommission::Bnb,
                    bnb_balance: Some(50_000_000),
                },
            ),
            (
                "kind=commission&asset=base",
                Fault::Commission {
                    asset: SimCommission::Base,
                    bnb_balance: None,
                },
            ),
            (
                "kind=rate_limit&weight_limit=10&used_orders_1d=5&retry_after_s=3&ban_s=7",
                Fault::RateLimit(RateLimitFault {
                    weight_limit: Some(10),
                    used_orders_1d: Some(5),
                    retry_after_s: Some(3),
                    ban_s: Some(7),
                    ..RateLimitFault::default()
                }),
            ),
            ("kind=ban", Fault::Ban { s: None }),
            ("kind=ban&s=30", Fault::Ban { s: Some(30) }),
            (
                "kind=mark&symbol=BTCUSDT&offset=-25",
                Fault::Mark {
                    symbol: "BTCUSDT".into(),
                    offset: -2_500_000_000,
                },
            ),
            (
                "kind=funding&rate=-0.0001",
                Fault::Funding { rate: -10_000 },
            ),
            (
                "kind=balance&asset=BTC&delta=-0.5",
                Fault::Balance {
                    asset: "BTC".into(),
                    delta: -50_000_000,
                },
            ),
            (
                "kind=filters&symbol=BTCUSDT&tick_size=0.1",
                Fault::Filters {
                    symbol: "BTCUSDT".into(),
                    tick_size: Some(10_000_000),
                    step_size: None,
                    min_notional: None,
                },
            ),
            ("kind=clear", Fault::Clear),
        ];
        for (text, fault) in cases {
            assert_eq!(Fault::parse(text).unwrap(), fault, "{text}");
            assert_eq!(Fault::parse(&fault.to_string()).unwrap(), fault);
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (text, needle) in [
            ("", "no kind="),
            ("kind=boom", "unknown kind \"boom\""),
            ("kind=stall", "needs ms="),
            ("kind=stall&ms=x", "ms=\"x\" is not a valid number"),
            ("kind=gap&ms=3", "takes no parameter \"ms\""),
            ("kind=gap&count=0", "count=0"),
            ("kind=latency", "needs ms="),
            ("kind=duplicate&count=0", "count=0"),
            ("kind=duplicate&copies=0", "copies=0"),
            ("kind=fee", "needs bps="),
            ("kind=slippage", "needs bps="),
            ("kind=fee&bps=-3", "bps=\"-3\" is not a valid number"),
            ("kind=reject&code=5", "negative"),
            ("kind=commission", "needs asset="),
            ("kind=commission&asset=eth", "asset=\"eth\""),
            ("kind=commission&asset=bnb&bnb_balance=-1", "non-negative"),
            ("kind=balance&delta=1", "needs asset="),
            ("kind=balance&asset=BTC", "needs delta="),
            ("kind=filters&symbol=BTCUSDT&tick_size=-1", "positive"),
            ("kind=rate_limit", "needs one of weight_limit"),
            ("kind=rate_limit&weight_limit=0", "kind=ban"),
            ("kind=rate_limit&ban=1", "takes no parameter \"ban\""),
            ("kind=ban&s=x", "s=\"x\" is not a valid number"),
        ] {
            let err = Fault::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let s: ScheduledFault = "20:kind=gap".parse().unwrap();
        assert_eq!(s.at_frame, 20);
        assert!("kind=gap".parse::<ScheduledFault>().is_err());
        assert!("x:kind=gap".parse::<ScheduledFault>().is_err());
    }
}
