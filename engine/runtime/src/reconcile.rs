//! Reconciliation with the venue: what the engine believes against what the venue says.
//!
//! # At start, before anything trades
//!
//! - **Instrument metadata** (every exchange of the manifest, traded or read for its market
//!   data): what the venue lists now, asked through its metadata interface
//!   (`rt_venues::metadata`: Binance `GET /api/v3/exchangeInfo` or `/fapi/v1/exchangeInfo`, OKX
//!   `GET /api/v5/public/instruments` once per `instType`, Kraken `GET /0/public/AssetPairs`).
//!   Each configured instrument's tick, lot and minimum notional (Binance `PRICE_FILTER`,
//!   `LOT_SIZE`, `NOTIONAL`), minimum size, type and contract terms (OKX `tickSz`, `lotSz`,
//!   `minSz`, `instType`, `ctVal`, `ctMult`, `ctValCcy`, `ctType`, `settleCcy`; Kraken
//!   `pair_decimals`, `lot_decimals`, `ordermin`) must equal the venue's; an instrument the venue
//!   does not list, or lists as not trading, is a mismatch too. A market-data-only exchange's
//!   requests count against an account of its own rate limits (its feed has not started).
//! - **Balances** (exchanges with `reconcile`): `GET /api/v3/account`. The engine's expected
//!   balance of an asset is what the configuration says the account held when this engine's
//!   journal began (`reconcile.starting_balances`) moved by every journaled fill: the base
//!   asset by the quantity (a buy adds), the quote asset by the notional (`price * qty`
//!   truncated to 10^-8, as the venue books it), the commission out of the asset it was
//!   charged in (a journal line without the asset: the fee, in the quote asset). That is the
//!   honest comparison: the portfolio itself starts flat and holds positions and P&L, not the
//!   account's cash, so only the configured start plus the journal says what the account must
//!   hold. The venue's figure is `free + locked`. Only the configured assets are compared, each
//!   within its absolute `reconcile.tolerance`. A futures account (USD-M) holds a margin
//!   wallet instead (`GET /fapi/v2/balance`): its expected wallet is the configured start plus
//!   the realised P&L of the journal's closing fills (average entry, as the venue books it),
//!   less commissions, plus the journal's funding payments ([`expected_wallet`]).
//!
//! - **Derivative settings** (futures venues, `ExecutionClient::derivatives`): the account must
//!   be in one-way position mode; each instrument's configured `margin_type` and `leverage` are
//!   set (`POST /fapi/v1/marginType`, `/fapi/v1/leverage`; "no need to change" is fine) and
//!   read back from the venue's positions (`GET /fapi/v2/positionRisk`).
//!
//! Live, any mismatch refuses the start (exit code [`EXIT_VENUE_MISMATCH`]) with one line per
//! mismatch naming the exchange and instrument and the venue's field, or the asset, and both
//! values; paper, each is a warning in the log and counted in the heartbeat
//! (`metadata_mismatches`, `balance_mismatches`), and trading goes on.
//!
//! # While running
//!
//! Every derivatives venue's positions are watched (see [`LIQUIDATION_CHECK_MS`]): each traded
//! symbol's position must be the engine's (a difference seen twice in a row HALTS), and with
//! `risk.min_liquidation_distance_bps` one closer to its liquidation price HALTS the engine.
//!
//! Every `reconcile.interval_ms` the balances are compared again, the expected ones from the
//! journal as it is then. A fill the venue made but whose report is still in flight would show
//! as a transient difference, so a mismatch must be seen on two checks in a row (the second
//! one second later) before it counts: then the engine HALTS (risk cause
//! `balance_mismatch`, the asset and both values in the risk event's detail), live or paper.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use rt_manifest::model::{Exchange, MarginType, Reconcile};
use rt_manifest::Manifest;
use rt_venues::execution::{Balance, Operation, Outcome};
use rt_venues::metadata::{Listed, Mismatch, VenueMetadata};

use crate::gateway::{now_ms, send_request, VenueConfig};
use crate::http::{Base, Client};
use crate::journal::RecoveredFill;
use crate::ratelimit::VenueLimits;
use crate::shared::{dec, Flags, Hk, HkSender, Positions};
use crate::trader::{Command, Reply};

/// `rt-engine run`'s exit code when live trading is refused because the venue disagrees with
/// the configuration or the journal (filters, balances).
pub const EXIT_VENUE_MISMATCH: u8 = 4;

/// A balance that differs from the expected one by more than its tolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceProblem {
    pub exchange: String,
    pub asset: String,
    /// 10^-8 units.
    pub expected: i128,
    pub venue: i128,
    pub tolerance: i64,
}

fn dec128(v: i128) -> String {
    match i64::try_from(v) {
        Ok(v) => dec(v),
        Err(_) => format!("{v}e-8"),
    }
}

impl fmt::Display for BalanceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} balance: the venue holds {}, the engine expects {} (tolerance {})",
            self.exchange,
            self.asset,
            dec128(self.venue),
            dec128(self.expected),
            dec(self.tolerance)
        )
    }
}

fn units(text: &str, what: &str) -> Result<i64, String> {
    rt_core::parse_signed_units(text.as_bytes())
        .map_err(|_| format!("journal: a fill's {what} {text:?}"))
}

/// A fill's commission as the venue charged it: its asset and amount (10^-8); a journal line
/// without the asset charged the fee in the quote asset.
fn commission<'a>(f: &'a RecoveredFill, quote: &'a str) -> Result<(&'a str, i128), String> {
    if f.commission_asset.is_empty() {
        Ok((quote, units(&f.fee, "fee")?.into()))
    } else {
        let paid = units(&f.commission, "commission")?;
        Ok((f.commission_asset.as_str(), paid.into()))
    }
}

/// The balances the engine expects on `exchange` (asset -> 10^-8 units): the configured start
/// moved by every journaled fill on it (see the module documentation). Every asset a fill
/// touches is in the answer; the caller compares the configured ones.
pub fn expected_balances(
    reconcile: &Reconcile,
    exchange: &str,
    fills: &[RecoveredFill],
) -> Result<BTreeMap<String, i128>, String> {
    let mut out: BTreeMap<String, i128> = reconcile
        .starting_balances
        .iter()
        .map(|(a, v)| (a.clone(), i128::from(v.raw())))
        .collect();
    let mut add = |asset: &str, delta: i128| *out.entry(asset.to_owned()).or_insert(0) += delta;
    for f in fills.iter().filter(|f| f.exchange == exchange) {
        let (base, quote) = rt_venues::assets::split_symbol(&f.symbol)
            .ok_or_else(|| format!("journal: {}: no known quote asset", f.symbol))?;
        let price = units(&f.price, "price")?;
        let qty = units(&f.qty, "qty")?;
        // As the venue books it: the notional truncated to 10^-8 per fill.
        let value = i128::from(
            i64::try_from(rt_core::notional(rt_core::Price(price), rt_core::Qty(qty)))
                .map_err(|_| format!("journal: a fill's notional on {} is too large", f.symbol))?,
        );
        let buy = f.side != "sell";
        add(base, if buy { qty.into() } else { -i128::from(qty) });
        add(quote, if buy { -value } else { value });
        let (asset, paid) = commission(f, quote)?;
        add(asset, -paid);
    }
    Ok(out)
}

/// The wallet a futures account (USD-M) should hold (asset -> 10^-8 units): the configured
/// start, plus each closing fill's realised P&L in its symbol's quote asset, less every
/// commission in the asset it was charged in, plus every journaled funding payment. A futures
/// fill moves no base or quote holding: the wallet changes only by what a position realises.
/// Realised P&L is computed as the venue books it: the position's entry is the
/// quantity-weighted average of its opening fills (10^-8, truncated), a reducing fill realises
/// `(price - entry) * closed` (its sign by the position's), a flip opens the rest at its
/// price. The venue keeps its entry at more digits than 10^-8: `reconcile.tolerance` absorbs
/// the truncation (about 10^-8 per fill).
pub fn expected_wallet(
    reconcile: &Reconcile,
    exchange: &str,
    fills: &[RecoveredFill],
    fundings: &[crate::journal::RecoveredFunding],
) -> Result<BTreeMap<String, i128>, String> {
    const SCALE: i128 = rt_core::SCALE as i128;
    let mut out: BTreeMap<String, i128> = reconcile
        .starting_balances
        .iter()
        .map(|(a, v)| (a.clone(), i128::from(v.raw())))
        .collect();
    let mut add = |asset: &str, delta: i128| *out.entry(asset.to_owned()).or_insert(0) += delta;
    // Per symbol: (signed quantity, entry price).
    let mut held: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
    for f in fills.iter().filter(|f| f.exchange == exchange) {
        let (_, quote) = rt_venues::assets::split_symbol(&f.symbol)
            .ok_or_else(|| format!("journal: {}: no known quote asset", f.symbol))?;
        let price = i128::from(units(&f.price, "price")?);
        let qty = i128::from(units(&f.qty, "qty")?);
        let signed = if f.side == "sell" { -qty } else { qty };
        let (q, entry) = held.entry(f.symbol.as_str()).or_insert((0, 0));
        if *q == 0 || (*q > 0) == (signed > 0) {
            let total = q.abs() + qty;
            if total > 0 {
                *entry = (*entry * q.abs() / SCALE + price * qty / SCALE) * SCALE / total;
            }
            *q += signed;
        } else {
            let closed = qty.min(q.abs());
            let direction = if *q > 0 { 1 } else { -1 };
            add(
                quote,
                direction * (price * closed / SCALE - *entry * closed / SCALE),
            );
            *q += signed;
            if *q == 0 {
                *entry = 0;
            } else if (*q > 0) == (signed > 0) {
                *entry = price;
            }
        }
        let (asset, paid) = commission(f, quote)?;
        add(asset, -paid);
    }
    for p in fundings.iter().filter(|p| p.exchange == exchange) {
        // In the asset the venue paid it in (the journal's), as booked.
        add(&p.asset, i128::from(units(&p.amount, "funding")?));
    }
    Ok(out)
}

/// What the engine expects `venue` to hold: a futures account's wallet, or spot holdings.
fn expected_holdings(
    reconcile: &Reconcile,
    venue: &VenueConfig,
    recovery: &crate::journal::Recovery,
) -> Result<BTreeMap<String, i128>, String> {
    if venue.derivatives().is_some() {
        expected_wallet(reconcile, &venue.name, &recovery.fills, &recovery.fundings)
    } else {
        expected_balances(reconcile, &venue.name, &recovery.fills)
    }
}

/// Differences between the venue and the journal accepted at start (paper mode), per exchange
/// and asset (10^-8 units): a paper engine that traded on anyway measures later drift from
/// them, not from zero.
pub type Baseline = BTreeMap<(String, String), i128>;

/// The configured assets whose venue balance (`free + locked`; 0 when the venue does not list
/// the asset) is off the expected one (plus its accepted baseline) by more than the tolerance.
pub fn check_balances(
    name: &str,
    reconcile: &Reconcile,
    expected: &BTreeMap<String, i128>,
    venue: &[Balance],
    baseline: &Baseline,
) -> Vec<BalanceProblem> {
    reconcile
        .starting_balances
        .keys()
        .filter_map(|asset| {
            let accepted = baseline
                .get(&(name.to_owned(), asset.clone()))
                .copied()
                .unwrap_or(0);
            let expected = expected.get(asset).copied().unwrap_or(0) + accepted;
            let held = venue
                .iter()
                .find(|b| b.asset == *asset)
                .map_or(0, Balance::total);
            let tolerance = reconcile.tolerance.get(asset).map_or(0, |t| t.raw());
            ((held - expected).abs() > i128::from(tolerance)).then(|| BalanceProblem {
                exchange: name.to_owned(),
                asset: asset.clone(),
                expected,
                venue: held,
                tolerance,
            })
        })
        .collect()
}

/// What the venue lists, through its metadata interface (`rt_venues::metadata`): every
/// request it takes, each answer read.
async fn fetch_metadata(
    client: &mut Client,
    name: &str,
    metadata: &dyn VenueMetadata,
) -> Result<Vec<Listed>, String> {
    let endpoint = metadata.endpoint();
    let mut out = Vec::new();
    for request in metadata.requests() {
        let r = send_request(client, &request)
            .await
            .map_err(|e| format!("{name}: {endpoint}: {e}"))?;
        let body = String::from_utf8_lossy(&r.body);
        if r.status != 200 {
            return Err(format!("{name}: {endpoint}: HTTP {}: {body}", r.status));
        }
        out.extend(metadata.parse(&body).map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(out)
}

async fn fetch_account(client: &mut Client, venue: &VenueConfig) -> Result<Vec<Balance>, String> {
    let r = send_request(client, &venue.client.balances(now_ms()))
        .await
        .map_err(|e| format!("{}: account: {e}", venue.name))?;
    let body = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        return Err(format!(
            "{}: account: HTTP {}: {body}",
            venue.name, r.status
        ));
    }
    venue
        .client
        .balance_list(&body)
        .map_err(|e| format!("{}: account: {e}", venue.name))
}

/// A derivatives venue's account settings against the configuration: the position mode
/// (one-way, or every order is refused), each instrument's leverage and margin type as set
/// at start and read back from the venue's positions. Errors are lines naming the exchange,
/// the symbol, the setting and both values.
async fn derivative_settings(
    client: &mut Client,
    venue: &VenueConfig,
    exchange: &Exchange,
    lines: &mut Vec<String>,
) -> Result<(Vec<String>, Vec<rt_venues::execution::PositionRiskState>), String> {
    let Some(account) = venue.derivatives() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let name = &venue.name;
    let mut problems = Vec::new();
    let ask = |what: &'static str, r: Result<crate::http::Response, crate::http::HttpError>| {
        let r = r.map_err(|e| format!("{name}: {what}: {e}"))?;
        Ok::<_, String>((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    };
    let (status, body) = ask(
        "position mode",
        send_request(client, &account.position_mode(now_ms())).await,
    )?;
    if status != 200 {
        return Err(format!("{name}: position mode: HTTP {status}: {body}"));
    }
    let hedge = account
        .is_hedge_mode(&body)
        .map_err(|e| format!("{name}: position mode: {e}"))?;
    if hedge {
        problems.push(format!(
            "{name}: the account is in hedge mode (two positions a symbol, long and short); the \
             engine trades one-way (net) mode: switch the account to it"
        ));
    }
    for (symbol, inst) in &exchange.instruments {
        // OKX has no margin-type setting: the mode goes with each order and with the
        // leverage, and is read back from the positions below.
        let margin_request = inst.margin_type.and_then(|margin| {
            let isolated = margin == MarginType::Isolated;
            Some((margin, account.set_margin_type(symbol, isolated, now_ms())?))
        });
        if let Some((margin, request)) = margin_request {
            let r = send_request(client, &request).await;
            let r = r.map_err(|e| format!("{name}: marginType {symbol}: {e}"))?;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            match venue
                .client
                .classify(Operation::Read, r.status, &text, None)
            {
                Outcome::Accepted => {}
                Outcome::Rejected(refusal) if account.margin_type_unchanged(&refusal) => {}
                other => problems.push(format!(
                    "{name}/{symbol}: margin type {}: the venue refused it: {other:?}",
                    margin_str(margin)
                )),
            }
        }
        if let Some(leverage) = inst.leverage {
            let request = account.set_leverage(symbol, leverage, now_ms());
            let (status, body) = ask("leverage", send_request(client, &request).await)?;
            let set = if status == 200 {
                account.leverage_set(&body).map_err(|e| e.to_string())
            } else {
                Err(format!("HTTP {status}: {body}"))
            };
            match set {
                Ok(l) if l == leverage => {}
                Ok(l) => problems.push(format!(
                    "{name}/{symbol}: leverage configured {leverage} but the venue set {l}"
                )),
                Err(e) => problems.push(format!(
                    "{name}/{symbol}: leverage {leverage}: the venue refused it: {e}"
                )),
            }
        }
    }
    // Read back: what the venue holds now is what the configuration says.
    let risks = venue_positions(client, venue).await?;
    for (symbol, inst) in &exchange.instruments {
        let isolated = inst.margin_type == Some(MarginType::Isolated);
        let Some(held) = held_row(&risks, symbol, isolated) else {
            if account.lists_flat_positions() {
                problems.push(format!("{name}/{symbol}: the venue shows no position row"));
            } else if inst.listing.as_ref().is_some_and(|l| l.contract.is_some()) {
                // Only open positions are listed (OKX): flat, its leverage checked when set.
                lines.push(format!("{name}/{symbol}: one-way {}, flat", !hedge));
            }
            continue;
        };
        if let Some(l) = inst.leverage.filter(|l| *l != held.leverage) {
            problems.push(format!(
                "{name}/{symbol}: leverage configured {l} but the venue says {}",
                held.leverage
            ));
        }
        if let Some(m) = inst.margin_type {
            if (m == MarginType::Isolated) != held.isolated {
                problems.push(format!(
                    "{name}/{symbol}: margin type configured {} but the venue says {}",
                    margin_str(m),
                    if held.isolated { "isolated" } else { "cross" }
                ));
            }
        }
        lines.push(format!(
            "{name}/{symbol}: one-way {}, leverage {}, margin {}, position {}",
            !hedge,
            held.leverage,
            if held.isolated { "isolated" } else { "cross" },
            dec(held.qty)
        ));
    }
    Ok((problems, risks))
}

/// The row of `symbol` whose settings the start check compares: the one in the configured
/// margin mode (`isolated` or cross), else the first. OKX lists a swap's cross and isolated
/// positions as two rows; the engine trades one mode, and a row in the other (another
/// client's) is no reason to report its leverage or mode as ours (its quantity still counts:
/// `check_positions` sums every row of the symbol).
fn held_row<'a>(
    risks: &'a [rt_venues::execution::PositionRiskState],
    symbol: &str,
    isolated: bool,
) -> Option<&'a rt_venues::execution::PositionRiskState> {
    let mut rows = risks.iter().filter(|r| r.symbol == symbol);
    let first = rows.clone().next();
    rows.find(|r| r.isolated == isolated).or(first)
}

fn margin_str(m: MarginType) -> &'static str {
    match m {
        MarginType::Cross => "cross",
        MarginType::Isolated => "isolated",
    }
}

/// What the start-up check found.
#[derive(Debug, Default)]
pub struct StartCheck {
    /// Instruments that differ from the venue's metadata (the instrument, the venue's field
    /// and both values).
    pub filters: Vec<Mismatch>,
    pub balances: Vec<BalanceProblem>,
    /// A derivatives venue's position mode, leverage or margin type not as configured.
    pub derivatives: Vec<String>,
    /// A derivatives venue's position that is not the journal's.
    pub positions: Vec<PositionProblem>,
    /// Lines for the log: what was checked.
    pub lines: Vec<String>,
}

impl StartCheck {
    /// The differences found, as the baseline a paper engine trading anyway accepts.
    pub fn baseline(&self) -> Baseline {
        self.balances
            .iter()
            .map(|p| ((p.exchange.clone(), p.asset.clone()), p.venue - p.expected))
            .chain(self.positions.iter().map(|p| {
                let key = (p.exchange.clone(), p.symbol.clone());
                (key, i128::from(p.venue) - i128::from(p.engine))
            }))
            .collect()
    }

    pub fn problems(&self) -> Vec<String> {
        self.filters
            .iter()
            .map(ToString::to_string)
            .chain(self.balances.iter().map(ToString::to_string))
            .chain(self.derivatives.iter().cloned())
            .chain(self.positions.iter().map(ToString::to_string))
            .collect()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))
}

/// The start-up check (see the module documentation), against every venue. An error: a venue
/// that could not be asked (which stops the start).
pub fn at_start(
    manifest: &Manifest,
    venues: &[VenueConfig],
    recovery: &crate::journal::Recovery,
) -> Result<StartCheck, String> {
    let rt = runtime()?;
    let mut positions = expected_positions(&recovery.fills)?;
    // A future delivered (journaled), or expired and so delivered by the venue while the engine
    // was down (booked once the gateway reads its price): flat at the venue, and no longer
    // listed there.
    let expired = crate::delivery::expired(manifest, crate::gateway::now_ms());
    for key in recovery
        .deliveries
        .iter()
        .map(|d| (d.exchange.clone(), d.symbol.clone()))
        .chain(expired.iter().cloned())
    {
        positions.remove(&key);
    }
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let mut out = StartCheck::default();
        for (name, exchange) in &manifest.exchanges {
            // Order entry on it (an account), or market data only.
            let venue = venues.iter().find(|v| v.name == *name);
            let base = Base::parse(&exchange.endpoints.rest).map_err(|e| format!("{name}: {e}"))?;
            // Counted against (and refused by) the venue's limits like every other request:
            // its gateway's where it has one, else an account of its own (the feed has not
            // started yet).
            let limits = venue.map_or_else(
                || {
                    Arc::new(VenueLimits::from_manifest(
                        &exchange.rate_limits,
                        exchange.venue,
                    ))
                },
                |v| Arc::clone(&v.limits),
            );
            let mut client = Client::with_limits(base, limits);
            let metadata = rt_venues::metadata::for_exchange(exchange);
            let listed = fetch_metadata(&mut client, name, metadata.as_ref()).await?;
            let mut found =
                rt_venues::metadata::check(name, exchange, metadata.endpoint(), &listed);
            found.retain(|m| {
                !(m.problem == rt_venues::metadata::Problem::NotListed
                    && expired.contains(&(name.clone(), m.instrument.clone())))
            });
            out.lines.push(format!(
                "{name}: {}: {} instrument(s) checked, {} filter mismatch(es)",
                metadata.endpoint(),
                exchange.instruments.len(),
                found.len()
            ));
            out.filters.extend(found);
            let Some(venue) = venue else {
                continue;
            };
            let (found, risks) =
                derivative_settings(&mut client, venue, exchange, &mut out.lines).await?;
            out.derivatives.extend(found);
            // Each traded symbol's position is the journal's (see the position watch).
            if venue.derivatives().is_some() {
                out.positions.extend(check_positions(
                    name,
                    &position_symbols(venue),
                    &positions,
                    &Baseline::new(),
                    &risks,
                ));
            }
            if let Some(r) = &exchange.reconcile {
                let expected = expected_holdings(r, venue, recovery)?;
                let held = fetch_account(&mut client, venue).await?;
                let found = check_balances(&venue.name, r, &expected, &held, &Baseline::new());
                out.lines.push(format!(
                    "{}: account: {} balance(s) reconciled ({}), {} mismatch(es)",
                    venue.name,
                    r.starting_balances.len(),
                    r.starting_balances
                        .keys()
                        .map(|a| format!("{a} {}", dec128(expected.get(a).copied().unwrap_or(0))))
                        .collect::<Vec<_>>()
                        .join(", "),
                    found.len()
                ));
                out.balances.extend(found);
            }
        }
        Ok(out)
    })
}

/// One venue reconciled while running.
struct Periodic {
    venue: VenueConfig,
    reconcile: Reconcile,
}

/// What the periodic check compares against: the venues, and the differences accepted at start.
struct Checked {
    venues: Vec<Periodic>,
    baseline: Baseline,
}

/// The position watch: every [`LIQUIDATION_CHECK_MS`], each derivatives venue's positions
/// (`GET /fapi/v2/positionRisk`: amount, mark and liquidation price, as the venue computes
/// them), for two checks:
/// - with `risk.min_liquidation_distance_bps`, a position whose mark is closer to its
///   liquidation price than that (of the mark) HALTS the engine (risk cause
///   `liquidation_distance`, the symbol, both prices and the distance in the detail), once,
///   until an operator resumes and the distance is back above the limit;
/// - always, each traded symbol's position at the venue must equal the engine's (a fill the
///   engine never saw, or another client trading the symbol on the same account, would make
///   its risk blind). A difference seen on two checks in a row (a report in flight explains
///   one) HALTS the engine (risk cause `balance_mismatch`, the symbol and both positions in
///   the detail), once, until the positions agree again; counted as `position_mismatches`.
///   While a venue's private stream is down or catching up (the gateway, `Flags::
///   private_streams_live`) no check counts: a fill the engine has not seen yet explains a
///   difference. A difference must be seen on two checks in a row after the catch-up.
pub const LIQUIDATION_CHECK_MS: u64 = 1_000;

/// One position's distance to liquidation, bps of the mark; `None` without a position or a
/// liquidation price.
pub fn liquidation_distance_bps(risk: &rt_venues::execution::PositionRiskState) -> Option<i64> {
    if risk.qty == 0 || risk.liquidation_price.0 <= 0 || risk.mark_price.0 <= 0 {
        return None;
    }
    let gap = i128::from(risk.mark_price.0 - risk.liquidation_price.0).abs();
    i64::try_from(gap * 10_000 / i128::from(risk.mark_price.0)).ok()
}

/// The symbols whose positions the venue holds and the engine checks: the traded ones (a
/// read-only one's position is someone else's) that are derivatives (OKX's spot instruments
/// on the same account are balances, not positions).
fn position_symbols(venue: &VenueConfig) -> Vec<String> {
    let now = crate::gateway::now_ms();
    venue
        .traded
        .iter()
        .filter(|s| venue.client.reduce_only(s))
        .filter(|s| !crate::delivery::expired_on(venue, s, now))
        .cloned()
        .collect()
}

/// A derivatives venue's positions now (its traded symbols only).
async fn venue_positions(
    client: &mut Client,
    venue: &VenueConfig,
) -> Result<Vec<rt_venues::execution::PositionRiskState>, String> {
    let Some(account) = venue.derivatives() else {
        return Ok(Vec::new());
    };
    let r = send_request(client, &account.positions(now_ms()))
        .await
        .map_err(|e| format!("{}: positionRisk: {e}", venue.name))?;
    let body = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        return Err(format!(
            "{}: positionRisk: HTTP {}: {body}",
            venue.name, r.status
        ));
    }
    let risks = account
        .position_risks(&body)
        .map_err(|e| format!("{}: positionRisk: {e}", venue.name))?;
    Ok(risks
        .into_iter()
        .filter(|r| venue.symbols.contains(&r.symbol))
        .collect())
}

/// The positions closer to their liquidation price than `min_bps`, one line each.
fn liquidation_breaches(
    venue: &str,
    risks: &[rt_venues::execution::PositionRiskState],
    min_bps: u32,
) -> Vec<String> {
    risks
        .iter()
        .filter_map(|r| {
            let bps = liquidation_distance_bps(r)?;
            (bps < i64::from(min_bps)).then(|| {
                format!(
                    "{venue}/{}: position {} marked at {} is {bps} bps from its liquidation price {} \
                     (risk.min_liquidation_distance_bps {min_bps})",
                    r.symbol,
                    dec(r.qty),
                    dec(r.mark_price.0),
                    dec(r.liquidation_price.0)
                )
            })
        })
        .collect()
}

/// A traded symbol whose position at a derivatives venue is not the engine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionProblem {
    pub exchange: String,
    pub symbol: String,
    /// Signed, 10^-8.
    pub venue: i64,
    pub engine: i64,
}

impl PositionProblem {
    /// The same symbol off by the same amount.
    fn same_difference(&self, other: &PositionProblem) -> bool {
        self.exchange == other.exchange
            && self.symbol == other.symbol
            && i128::from(self.venue) - i128::from(self.engine)
                == i128::from(other.venue) - i128::from(other.engine)
    }
}

impl fmt::Display for PositionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}: position: the venue holds {}, the engine {} (a fill the engine never saw, \
             or another client trading this symbol on the account)",
            self.exchange,
            self.symbol,
            dec(self.venue),
            dec(self.engine)
        )
    }
}

/// Each of `symbols` whose venue position (no row: flat) differs from `expected` (none:
/// flat) by other than its accepted `baseline` difference (a paper engine that started with a
/// difference trades on and watches for a new one).
pub fn check_positions(
    exchange: &str,
    symbols: &[String],
    expected: &Positions,
    baseline: &Baseline,
    risks: &[rt_venues::execution::PositionRiskState],
) -> Vec<PositionProblem> {
    symbols
        .iter()
        .filter_map(|symbol| {
            let venue = risks
                .iter()
                .filter(|r| r.symbol == *symbol)
                .map(|r| r.qty)
                .sum::<i64>();
            let engine = expected
                .get(&(exchange.to_owned(), symbol.clone()))
                .copied()
                .unwrap_or(0);
            let accepted = baseline
                .get(&(exchange.to_owned(), symbol.clone()))
                .copied()
                .unwrap_or(0);
            (i128::from(venue) - i128::from(engine) != accepted).then(|| PositionProblem {
                exchange: exchange.to_owned(),
                symbol: symbol.clone(),
                venue,
                engine,
            })
        })
        .collect()
}

/// The net position of each (exchange, symbol) the journal's fills leave (a buy adds).
pub fn expected_positions(fills: &[RecoveredFill]) -> Result<Positions, String> {
    let mut out = Positions::new();
    for f in fills {
        let qty = rt_core::parse_units(f.qty.as_bytes())
            .map_err(|e| format!("journal: a fill's qty {:?}: {e}", f.qty))?;
        let signed = match f.side.as_str() {
            "buy" => qty,
            "sell" => -qty,
            other => return Err(format!("journal: a fill's side {other:?}")),
        };
        *out.entry((f.exchange.clone(), f.symbol.clone()))
            .or_insert(0) += signed;
    }
    Ok(out)
}

fn position_watch(
    venues: &[VenueConfig],
    min_bps: Option<u32>,
    baseline: &Baseline,
    commands: &Sender<(Command, Sender<Reply>)>,
    flags: &Flags,
    hk: &HkSender,
) {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = hk.send(Hk::Log(format!("position watch: {e}; not watching")));
            return;
        }
    };
    while !flags.gateway_ready.load(Ordering::Acquire) {
        if !nap(Duration::from_millis(50), flags) {
            return;
        }
    }
    let (mut liquidation_halted, mut position_halted) = (false, false);
    let mut differences = Differences::default();
    let mut mismatches = 0u64;
    loop {
        if !nap(Duration::from_millis(LIQUIDATION_CHECK_MS), flags) {
            return;
        }
        let live_before = flags.private_streams_live();
        let engine = flags.published_positions();
        // A connection per check, in its own local task set, as the balance check does.
        let local = tokio::task::LocalSet::new();
        let (breaches, problems, complete) = local.block_on(&rt, async {
            let (mut breaches, mut problems, mut complete) = (Vec::new(), Vec::new(), true);
            for venue in venues {
                let held = match Base::parse(&venue.rest) {
                    Ok(base) => {
                        let mut client = Client::with_limits(base, Arc::clone(&venue.limits));
                        venue_positions(&mut client, venue).await
                    }
                    Err(e) => Err(format!("{}: {e}", venue.name)),
                };
                match held {
                    Ok(risks) => {
                        if let Some(min_bps) = min_bps {
                            breaches.extend(liquidation_breaches(&venue.name, &risks, min_bps));
                        }
                        if let Some(engine) = &engine {
                            problems.extend(check_positions(
                                &venue.name,
                                &position_symbols(venue),
                                engine,
                                baseline,
                                &risks,
                            ));
                        }
                    }
                    Err(e) => {
                        complete = false;
                        let _ = hk.send(Hk::Log(format!("position watch: {e}")));
                    }
                }
            }
            (breaches, problems, complete)
        });
        if breaches.is_empty() {
            liquidation_halted = false;
        } else if !liquidation_halted {
            liquidation_halted = true;
            let detail = breaches.join("; ");
            let _ = hk.send(Hk::Log(format!("liquidation watch: HALT: {detail}")));
            if !halt(commands, rt_core::RiskCause::LiquidationDistance, detail) {
                return;
            }
        }
        let live = live_before.filter(|b| flags.private_streams_live() == Some(*b));
        let Some(confirmed) = differences.confirm(problems, complete, live) else {
            continue;
        };
        if confirmed.is_empty() {
            if complete && differences.seen.is_empty() {
                position_halted = false;
            }
            continue;
        }
        mismatches += confirmed.len() as u64;
        let _ = hk.send(Hk::Reconcile(vec![("position_mismatches", mismatches)]));
        let detail = confirmed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let _ = hk.send(Hk::Log(format!("position watch: mismatch: {detail}")));
        if !position_halted {
            position_halted = true;
            if !halt(commands, rt_core::RiskCause::BalanceMismatch, detail) {
                return;
            }
        }
    }
}

/// The position differences of the last check that counted, and the private streams' state
/// it was made in (`Flags::private_streams_live`).
#[derive(Debug, Default)]
struct Differences {
    seen: Vec<PositionProblem>,
    live: Option<u64>,
}

impl Differences {
    /// The findings of a check: its differences seen on the previous check too, off by the
    /// same amount (both sides may have traded in between: not a report in flight), both made
    /// while every private stream was up and caught up, with no loss in between. `live`: the
    /// streams' state before and after this check (`None`: a stream was down, catching up, or
    /// lost or back during it). A check made while a stream is down does not count (`None`:
    /// a fill the gateway has not seen yet explains a difference), and a difference seen
    /// before the loss must be seen twice again after the catch-up. `complete`: every venue
    /// answered (else the differences seen are kept for the next check).
    fn confirm(
        &mut self,
        problems: Vec<PositionProblem>,
        complete: bool,
        live: Option<u64>,
    ) -> Option<Vec<PositionProblem>> {
        let Some(live) = live else {
            self.seen.clear();
            self.live = None;
            return None;
        };
        if self.live != Some(live) {
            self.seen.clear();
        }
        let confirmed = problems
            .iter()
            .filter(|p| self.seen.iter().any(|q| q.same_difference(p)))
            .cloned()
            .collect();
        if complete {
            self.seen = problems;
            self.live = Some(live);
        }
        Some(confirmed)
    }
}

/// HALTS the engine through the strategy thread's command channel; false when it is gone.
fn halt(
    commands: &Sender<(Command, Sender<Reply>)>,
    cause: rt_core::RiskCause,
    detail: String,
) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    if commands
        .send((Command::Halt { cause, detail }, tx))
        .is_err()
    {
        return false;
    }
    let _ = rx.recv_timeout(Duration::from_secs(5));
    true
}

/// Starts the position watch (see [`LIQUIDATION_CHECK_MS`]) when a venue has derivatives;
/// `None` otherwise.
fn spawn_position_watch(
    manifest: &Manifest,
    venues: &[VenueConfig],
    commands: &Sender<(Command, Sender<Reply>)>,
    flags: &Arc<Flags>,
    hk: &HkSender,
    baseline: &Baseline,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let min_bps = manifest.risk.min_liquidation_distance_bps;
    let watched: Vec<VenueConfig> = venues
        .iter()
        .filter(|v| v.derivatives().is_some())
        .cloned()
        .collect();
    if watched.is_empty() {
        return Ok(None);
    }
    let (commands, flags, hk) = (commands.clone(), Arc::clone(flags), hk.clone());
    let baseline = baseline.clone();
    std::thread::Builder::new()
        .name("positions".into())
        .spawn(move || position_watch(&watched, min_bps, &baseline, &commands, &flags, &hk))
        .map(Some)
}

/// Starts the periodic balance check (see the module documentation) for every venue with
/// `reconcile`, and the position watch (`spawn_position_watch`) when a venue has derivatives;
/// `None` when neither runs. The balance check reads the journal in
/// `journal_dir` for the expected balances; both halt through the strategy thread's command
/// channel.
#[allow(clippy::too_many_arguments)]
pub fn spawn_periodic(
    manifest: &Manifest,
    venues: &[VenueConfig],
    journal_dir: &Path,
    commands: Sender<(Command, Sender<Reply>)>,
    flags: Arc<Flags>,
    hk: HkSender,
    start_counts: Vec<(&'static str, u64)>,
    baseline: Baseline,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let checked: Vec<Periodic> = venues
        .iter()
        .filter_map(|v| {
            let r = manifest.exchanges.get(&v.name)?.reconcile.clone()?;
            Some(Periodic {
                venue: v.clone(),
                reconcile: r,
            })
        })
        .collect();
    let watch = spawn_position_watch(manifest, venues, &commands, &flags, &hk, &baseline)?;
    if checked.is_empty() {
        return Ok(watch);
    }
    let dir = journal_dir.to_path_buf();
    let checked = Checked {
        venues: checked,
        baseline,
    };
    std::thread::Builder::new()
        .name("reconcile".into())
        .spawn(move || {
            periodic(checked, &dir, &commands, &flags, &hk, &start_counts);
            // The caller joins this thread: it joins the watch (both end on the stop flag).
            if let Some(w) = watch {
                let _ = w.join();
            }
        })
        .map(Some)
}

/// Sleeps up to `d`, waking early when the engine stops; false when it stops.
fn nap(d: Duration, flags: &Flags) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if flags.stopping() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - std::time::Instant::now()));
    }
    !flags.stopping()
}

/// The problems of one check of every venue, or why it could not be made.
fn check_once(
    rt: &tokio::runtime::Runtime,
    checked: &Checked,
    dir: &Path,
) -> Result<Vec<BalanceProblem>, String> {
    let recovery = crate::journal::recover(dir).map_err(|e| format!("journal: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async {
        let mut out = Vec::new();
        for p in &checked.venues {
            let base = Base::parse(&p.venue.rest).map_err(|e| format!("{}: {e}", p.venue.name))?;
            // Through the venue's shared limits: no balance request during a 429 back-off or
            // an IP ban (it would extend the ban), and its weight counts.
            let mut client = Client::with_limits(base, Arc::clone(&p.venue.limits));
            let expected = expected_holdings(&p.reconcile, &p.venue, &recovery)?;
            let held = fetch_account(&mut client, &p.venue).await?;
            out.extend(check_balances(
                &p.venue.name,
                &p.reconcile,
                &expected,
                &held,
                &checked.baseline,
            ));
        }
        Ok(out)
    })
}

fn periodic(
    checked: Checked,
    dir: &Path,
    commands: &Sender<(Command, Sender<Reply>)>,
    flags: &Flags,
    hk: &HkSender,
    start_counts: &[(&'static str, u64)],
) {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = hk.send(Hk::Log(format!(
                "reconcile: {e}; no periodic balance check"
            )));
            return;
        }
    };
    let interval = checked
        .venues
        .iter()
        .map(|p| p.reconcile.interval_ms)
        .min()
        .unwrap_or(60_000);
    let (mut checks, mut errors, mut mismatches, mut halts) = (0u64, 0u64, 0u64, 0u64);
    // Trading starts once the gateway is ready: so do the checks.
    while !flags.gateway_ready.load(Ordering::Acquire) {
        if !nap(Duration::from_millis(50), flags) {
            return;
        }
    }
    let mut halted = false;
    loop {
        if !nap(Duration::from_millis(interval), flags) {
            return;
        }
        checks += 1;
        let mut found = match check_once(&rt, &checked, dir) {
            Ok(found) => found,
            Err(e) => {
                errors += 1;
                let _ = hk.send(Hk::Log(format!("reconcile: cannot check balances: {e}")));
                Vec::new()
            }
        };
        if !found.is_empty() {
            // Seen once: a report in flight could explain it. Look again shortly.
            if !nap(Duration::from_secs(1), flags) {
                return;
            }
            checks += 1;
            found = match check_once(&rt, &checked, dir) {
                Ok(again) => found
                    .into_iter()
                    .filter(|p| {
                        again
                            .iter()
                            .any(|q| q.asset == p.asset && q.exchange == p.exchange)
                    })
                    .map(|p| {
                        again
                            .iter()
                            .find(|q| q.asset == p.asset && q.exchange == p.exchange)
                            .cloned()
                            .unwrap_or(p)
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
        }
        mismatches += found.len() as u64;
        let at_start = |name: &str| {
            start_counts
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| *v)
        };
        if !found.is_empty() {
            let detail = found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let _ = hk.send(Hk::Log(format!("reconcile: balance mismatch: {detail}")));
            if !halted && halt(commands, rt_core::RiskCause::BalanceMismatch, detail) {
                halts += 1;
                halted = true;
            }
        }
        let _ = hk.send(Hk::Reconcile(vec![
            ("metadata_mismatches", at_start("metadata_mismatches")),
            (
                "balance_mismatches",
                at_start("balance_mismatches") + mismatches,
            ),
            ("reconcile_checks", checks),
            ("reconcile_errors", errors),
            ("reconcile_halts", halts),
        ]));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rt_manifest::Fixed;

    fn fx(s: &str) -> Fixed {
        Fixed::parse(s).unwrap()
    }

    fn reconcile() -> Reconcile {
        Reconcile {
            starting_balances: [("BTC".into(), fx("1")), ("USDT".into(), fx("100000"))].into(),
            tolerance: [
                ("BTC".into(), fx("0.00000001")),
                ("USDT".into(), fx("0.01")),
            ]
            .into(),
            interval_ms: 5000,
        }
    }

    fn fill(side: &str, price: &str, qty: &str, commission: &str, asset: &str) -> RecoveredFill {
        RecoveredFill {
            exchange: "sim".into(),
            symbol: "BTCUSDT".into(),
            side: side.into(),
            price: price.into(),
            qty: qty.into(),
            fee: "0.01".into(),
            base_commission: "0".into(),
            commission: commission.into(),
            commission_asset: asset.into(),
        }
    }

    const UNIT: i128 = 100_000_000;

    #[test]
    fn expected_balances_follow_fills_and_commissions_in_their_asset() {
        let fills = [
            // Buys 0.001 BTC at 60000.01: pays 60.00001 USDT, commission 0.000001 BTC.
            fill("buy", "60000.01", "0.001", "0.000001", "BTC"),
            // Sells 0.0005 at 61000: gets 30.5 USDT, commission 0.0305 USDT.
            fill("sell", "61000", "0.0005", "0.0305", "USDT"),
            // An old journal line: no commission asset, the fee (0.01) in the quote asset.
            fill("sell", "61000", "0.0001", "", ""),
            // BNB: neither BTC nor USDT pays it.
            fill("buy", "60000", "0.0001", "0.001", "BNB"),
        ];
        let mut other = fill("buy", "1", "1", "0", "BTC");
        other.exchange = "elsewhere".into();
        let all: Vec<RecoveredFill> = fills.into_iter().chain([other]).collect();
        let e = expected_balances(&reconcile(), "sim", &all).unwrap();
        let btc = UNIT + 100_000 - 100 - 50_000 - 10_000 + 10_000;
        assert_eq!(e["BTC"], btc);
        let usdt = 100_000 * UNIT - 6_000_001_000 + 3_050_000_000 - 3_050_000 + 610_000_000
            - 1_000_000
            - 600_000_000;
        assert_eq!(e["USDT"], usdt);
        assert_eq!(e["BNB"], -100_000);

        let venue = |btc: i128, usdt: i128| {
            vec![
                Balance {
                    asset: "BTC".into(),
                    free: i64::try_from(btc).unwrap() - 5,
                    locked: 5,
                },
                Balance {
                    asset: "USDT".into(),
                    free: i64::try_from(usdt).unwrap(),
                    locked: 0,
                },
            ]
        };
        let r = reconcile();
        let none = Baseline::new();
        assert_eq!(check_balances("sim", &r, &e, &venue(btc, usdt), &none), []);
        // Within the tolerance: 1e-8 BTC and 0.01 USDT.
        assert_eq!(
            check_balances("sim", &r, &e, &venue(btc + 1, usdt - 1_000_000), &none),
            []
        );
        let off = check_balances("sim", &r, &e, &venue(btc - 2, usdt + 1_000_001), &none);
        assert_eq!(off.len(), 2);
        assert_eq!(
            off[0].to_string(),
            format!(
                "sim: BTC balance: the venue holds {}, the engine expects {} (tolerance 0.00000001)",
                dec128(btc - 2),
                dec128(btc)
            )
        );
        assert_eq!(off[1].asset, "USDT");
        // An asset the venue does not list counts as 0.
        let missing = check_balances("sim", &r, &e, &venue(btc, usdt)[..1], &none);
        assert_eq!(missing.len(), 1);
        assert_eq!((missing[0].asset.as_str(), missing[0].venue), ("USDT", 0));
        // A paper engine that traded on past a difference at start (a fresh sim under an old
        // journal) measures drift from that difference: the same offset is no mismatch, a
        // further move is.
        let start = StartCheck {
            balances: off,
            ..StartCheck::default()
        };
        let accepted = start.baseline();
        assert_eq!(
            check_balances("sim", &r, &e, &venue(btc - 2, usdt + 1_000_001), &accepted),
            []
        );
        let drift = check_balances("sim", &r, &e, &venue(btc - 4, usdt + 1_000_001), &accepted);
        assert_eq!(drift.len(), 1);
        assert_eq!(
            (drift[0].asset.as_str(), drift[0].expected),
            ("BTC", btc - 2)
        );
        // A journal line that cannot be read stops the check.
        let bad = [fill("buy", "x", "1", "0", "BTC")];
        assert!(expected_balances(&r, "sim", &bad).is_err());
    }

    fn held(symbol: &str, qty: i64) -> rt_venues::execution::PositionRiskState {
        rt_venues::execution::PositionRiskState {
            symbol: symbol.into(),
            qty,
            entry_price: rt_core::Price(60_000 * 100_000_000),
            mark_price: rt_core::Price(60_000 * 100_000_000),
            liquidation_price: rt_core::Price(0),
            leverage: 2,
            isolated: false,
        }
    }

    /// OKX lists a swap's cross and isolated positions as two rows: the start check reads the
    /// settings of the row in the configured mode, whichever comes first, and the position
    /// check still counts both.
    #[test]
    fn the_settings_checked_are_the_configured_margin_modes_row() {
        let other = rt_venues::execution::PositionRiskState {
            leverage: 7,
            ..held("UNIUSDSWAP", 100_000_000)
        };
        let ours = rt_venues::execution::PositionRiskState {
            leverage: 3,
            isolated: true,
            ..held("UNIUSDSWAP", -200_000_000)
        };
        let rows = [held("BTCUSDT", 1), other.clone(), ours.clone()];
        assert_eq!(held_row(&rows, "UNIUSDSWAP", true), Some(&ours));
        assert_eq!(held_row(&rows, "UNIUSDSWAP", false), Some(&other));
        // No row in the configured mode: the first, whose mode is then reported as differing.
        assert_eq!(held_row(&rows[..2], "UNIUSDSWAP", true), Some(&other));
        assert_eq!(held_row(&rows, "ETHUSDT", false), None);
        let problems = check_positions(
            "okx",
            &["UNIUSDSWAP".to_owned()],
            &Positions::new(),
            &Baseline::new(),
            &rows,
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].venue, -100_000_000, "both rows count");
    }

    #[test]
    fn positions_are_the_journals_net_fills_and_the_venue_must_hold_them() {
        let fills = [
            fill("buy", "60000", "0.003", "0", "USDT"),
            fill("sell", "60100", "0.001", "0", "USDT"),
        ];
        let expected = expected_positions(&fills).unwrap();
        let key = ("sim".to_owned(), "BTCUSDT".to_owned());
        assert_eq!(expected[&key], 200_000);
        let symbols = ["BTCUSDT".to_owned(), "ETHUSDT".to_owned()];
        let none = Baseline::new();
        // The venue agrees; ETHUSDT is flat on both sides (no row counts as flat).
        let agree = [held("BTCUSDT", 200_000)];
        assert_eq!(
            check_positions("sim", &symbols, &expected, &none, &agree),
            []
        );
        // A position opened behind the engine's back, and a fill the engine never saw.
        let off = [held("BTCUSDT", 300_000), held("ETHUSDT", -2 * 100_000_000)];
        let found = check_positions("sim", &symbols, &expected, &none, &off);
        assert_eq!(
            found,
            [
                PositionProblem {
                    exchange: "sim".into(),
                    symbol: "BTCUSDT".into(),
                    venue: 300_000,
                    engine: 200_000,
                },
                PositionProblem {
                    exchange: "sim".into(),
                    symbol: "ETHUSDT".into(),
                    venue: -200_000_000,
                    engine: 0,
                },
            ]
        );
        assert_eq!(
            found[1].to_string(),
            "sim/ETHUSDT: position: the venue holds -2, the engine 0 (a fill the engine never \
             saw, or another client trading this symbol on the account)"
        );
        // A paper engine that started anyway measures drift from the difference it accepted.
        let start = StartCheck {
            positions: found,
            ..StartCheck::default()
        };
        let accepted = start.baseline();
        assert_eq!(
            check_positions("sim", &symbols, &expected, &accepted, &off),
            []
        );
        let drift = [held("BTCUSDT", 400_000), held("ETHUSDT", -2 * 100_000_000)];
        let moved = check_positions("sim", &symbols, &expected, &accepted, &drift);
        assert_eq!(moved.len(), 1);
        assert_eq!(
            (moved[0].symbol.as_str(), moved[0].venue),
            ("BTCUSDT", 400_000)
        );
        // Live refuses on any of them: they are problems of the start check.
        assert_eq!(start.problems().len(), 2);
        // A journal line that cannot be read stops the check.
        assert!(expected_positions(&[fill("hold", "1", "1", "0", "USDT")]).is_err());
    }

    #[test]
    fn a_futures_wallet_moves_by_realised_pnl_commissions_and_funding() {
        let r = Reconcile {
            starting_balances: [("USDT".into(), fx("100000"))].into(),
            tolerance: [("USDT".into(), fx("0.01"))].into(),
            interval_ms: 5000,
        };
        let fills = [
            // Long 0.003 at an average entry of 60100: nothing realised, the wallet pays fees.
            fill("buy", "60000", "0.002", "0.01", "USDT"),
            fill("buy", "60300", "0.001", "0.01", "USDT"),
            // Sells 0.004 at 60200: closes 0.003 (+0.3) and opens a short 0.001 at 60200.
            fill("sell", "60200", "0.004", "0.01", "USDT"),
            // Buys it back at 60000: the short realises +0.2.
            fill("buy", "60000", "0.001", "0.01", "USDT"),
        ];
        let fundings = [crate::journal::RecoveredFunding {
            exchange: "sim".into(),
            symbol: "BTCUSDT".into(),
            asset: "USDT".into(),
            amount: "-0.5".into(),
            ts: 1,
            id: None,
            time_ms: None,
        }];
        let wallet = expected_wallet(&r, "sim", &fills, &fundings).unwrap();
        // 100000 + 0.3 + 0.2 - 4 x 0.01 - 0.5; no base asset moves.
        assert_eq!(wallet["USDT"], 9_999_996 * UNIT / 100);
        assert_eq!(wallet.len(), 1, "{wallet:?}");
        // The spot reading of the same fills would move BTC and USDT by the notional.
        let spot = expected_balances(&r, "sim", &fills).unwrap();
        assert_ne!(spot["USDT"], wallet["USDT"]);
    }

    #[test]
    fn a_position_difference_counts_only_while_the_private_streams_are_up_and_caught_up() {
        let off = |venue: i64| {
            vec![PositionProblem {
                exchange: "sim".into(),
                symbol: "BTCUSDT".into(),
                venue,
                engine: 0,
            }]
        };
        let mut d = Differences::default();
        // Up: a difference seen twice in a row is a finding.
        assert_eq!(d.confirm(off(5), true, Some(0)), Some(vec![]));
        assert_eq!(d.confirm(off(5), true, Some(0)), Some(off(5)));
        // A fill lands while the stream is down: no check counts, however long it lasts.
        let mut d = Differences::default();
        assert_eq!(d.confirm(vec![], true, Some(0)), Some(vec![]));
        for _ in 0..5 {
            assert_eq!(d.confirm(off(5), true, None), None);
        }
        // Back and caught up (the stream was lost and came back: 2 changes): the engine has
        // the fill, no difference.
        assert_eq!(d.confirm(vec![], true, Some(2)), Some(vec![]));
        // A difference seen before a loss must be seen twice after the catch-up.
        let mut d = Differences::default();
        assert_eq!(d.confirm(off(5), true, Some(0)), Some(vec![]));
        assert_eq!(d.confirm(off(5), true, None), None);
        assert_eq!(d.confirm(off(5), true, Some(2)), Some(vec![]));
        // Still there after the catch-up: a finding, as ever.
        assert_eq!(d.confirm(off(5), true, Some(2)), Some(off(5)));
        // A check the stream was lost and back during (different states before and after it,
        // so `None`), between two that saw the difference, resets it too.
        let mut d = Differences::default();
        assert_eq!(d.confirm(off(5), true, Some(2)), Some(vec![]));
        assert_eq!(d.confirm(off(5), true, Some(4)), Some(vec![]));
        assert_eq!(d.confirm(off(5), true, Some(4)), Some(off(5)));
        // An incomplete check keeps what was seen.
        let mut d = Differences::default();
        assert_eq!(d.confirm(off(5), true, Some(0)), Some(vec![]));
        assert_eq!(d.confirm(vec![], false, Some(0)), Some(vec![]));
        assert_eq!(d.confirm(off(5), true, Some(0)), Some(off(5)));
    }
}
