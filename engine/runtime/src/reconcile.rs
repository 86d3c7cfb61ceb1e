//! Reconciliation with the venue: what the engine believes against what the venue says.
//!
//! # At start, before anything trades
//!
//! - **Instrument metadata** (every exchange): `GET /api/v3/exchangeInfo`; each configured
//!   instrument's `tick_size`, `lot_size` and `min_notional` must equal the venue's
//!   `PRICE_FILTER.tickSize`, `LOT_SIZE.stepSize` and `NOTIONAL.minNotional` (an instrument the
//!   venue does not list is a mismatch too).
//! - **Balances** (exchanges with `reconcile`): `GET /api/v3/account`. The engine's expected
//!   balance of an asset is what the configuration says the account held when this engine's
//!   journal began (`reconcile.starting_balances`) moved by every journaled fill: the base
//!   asset by the quantity (a buy adds), the quote asset by the notional (`price * qty`
//!   truncated to 10^-8, as the venue books it), the commission out of the asset it was
//!   charged in (a journal line without the asset: the fee, in the quote asset). That is the
//!   honest comparison: the portfolio itself starts flat and holds positions and P&L, not the
//!   account's cash, so only the configured start plus the journal says what the account must
//!   hold. The venue's figure is `free + locked`. Only the configured assets are compared, each
//!   within its absolute `reconcile.tolerance`.
//!
//! - **Derivative settings** (futures venues, `ExecutionClient::derivatives`): the account must
//!   be in one-way position mode; each instrument's configured `margin_type` and `leverage` are
//!   set (`POST /fapi/v1/marginType`, `/fapi/v1/leverage`; "no need to change" is fine) and
//!   read back from the venue's positions (`GET /fapi/v2/positionRisk`).
//!
//! Live, any mismatch refuses the start (exit code [`EXIT_VENUE_MISMATCH`]) with one line per
//! mismatch naming the instrument and filter or the asset, and both values; paper, each is a
//! warning in the log and counted in the heartbeat (`metadata_mismatches`,
//! `balance_mismatches`), and trading goes on.
//!
//! # While running
//!
//! With `risk.min_liquidation_distance_bps`, every derivatives venue's positions are watched
//! (see [`LIQUIDATION_CHECK_MS`]): one closer to its liquidation price HALTS the engine.
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
use rt_venues::execution::{Balance, FilterMismatch, SymbolFilters};
use rt_venues::execution::{Operation, Outcome};

use crate::gateway::{now_ms, send_request, VenueConfig};
use crate::http::{Base, Client};
use crate::journal::RecoveredFill;
use crate::shared::{dec, Flags, Hk, HkSender};
use crate::trader::{Command, Reply};

/// `rt-engine run`'s exit code when live trading is refused because the venue disagrees with
/// the configuration or the journal (filters, balances).
pub const EXIT_VENUE_MISMATCH: u8 = 4;

/// A configured filter that differs from the venue's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterProblem {
    pub exchange: String,
    pub symbol: String,
    /// `None`: the venue does not list the symbol.
    pub mismatch: Option<FilterMismatch>,
}

impl fmt::Display for FilterProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mismatch {
            None => write!(
                f,
                "{}/{}: the venue does not list this instrument (exchangeInfo)",
                self.exchange, self.symbol
            ),
            Some(m) => write!(
                f,
                "{}/{}: {} configured {} but the venue says {}",
                self.exchange,
                self.symbol,
                m.filter,
                dec(m.configured),
                dec(m.venue)
            ),
        }
    }
}

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

/// Every filter of `exchange`'s instruments that differs from the venue's `listed` ones.
pub fn check_filters(
    name: &str,
    exchange: &Exchange,
    listed: &[SymbolFilters],
) -> Vec<FilterProblem> {
    let mut out = Vec::new();
    for (symbol, instrument) in &exchange.instruments {
        let configured = SymbolFilters {
            symbol: symbol.clone(),
            base_asset: String::new(),
            quote_asset: String::new(),
            tick_size: instrument.tick_size.raw(),
            step_size: instrument.lot_size.raw(),
            min_notional: instrument.min_notional.raw(),
        };
        match listed.iter().find(|s| s.symbol == *symbol) {
            None => out.push(FilterProblem {
                exchange: name.to_owned(),
                symbol: symbol.clone(),
                mismatch: None,
            }),
            Some(venue) => {
                out.extend(
                    configured
                        .mismatches(venue)
                        .into_iter()
                        .map(|m| FilterProblem {
                            exchange: name.to_owned(),
                            symbol: symbol.clone(),
                            mismatch: Some(m),
                        }),
                )
            }
        }
    }
    out
}

fn units(text: &str, what: &str) -> Result<i64, String> {
    rt_core::parse_signed_units(text.as_bytes())
        .map_err(|_| format!("journal: a fill's {what} {text:?}"))
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
        if f.commission_asset.is_empty() {
            add(quote, -i128::from(units(&f.fee, "fee")?));
        } else {
            add(
                &f.commission_asset,
                -i128::from(units(&f.commission, "commission")?),
            );
        }
    }
    Ok(out)
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

async fn fetch_exchange_info(
    client: &mut Client,
    venue: &VenueConfig,
) -> Result<Vec<SymbolFilters>, String> {
    // One request, or one a kind of instrument (OKX lists its instruments by `instType`).
    let mut out = Vec::new();
    for request in venue.client.exchange_info_requests() {
        let r = send_request(client, &request)
            .await
            .map_err(|e| format!("{}: exchangeInfo: {e}", venue.name))?;
        let body = String::from_utf8_lossy(&r.body);
        if r.status != 200 {
            return Err(format!(
                "{}: exchangeInfo: HTTP {}: {body}",
                venue.name, r.status
            ));
        }
        out.extend(
            venue
                .client
                .symbol_filters(&body)
                .map_err(|e| format!("{}: exchangeInfo: {e}", venue.name))?,
        );
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
) -> Result<Vec<String>, String> {
    let Some(account) = venue.client.derivatives() else {
        return Ok(Vec::new());
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
            "{name}: the account is in hedge mode (dualSidePosition true); the engine trades \
             one-way mode (positionSide BOTH): switch the account to one-way mode"
        ));
    }
    for (symbol, inst) in &exchange.instruments {
        if let Some(margin) = inst.margin_type {
            let isolated = margin == MarginType::Isolated;
            let request = account.set_margin_type(symbol, isolated, now_ms());
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
    let (status, body) = ask(
        "positionRisk",
        send_request(client, &account.positions(now_ms())).await,
    )?;
    if status != 200 {
        return Err(format!("{name}: positionRisk: HTTP {status}: {body}"));
    }
    let risks = account
        .position_risks(&body)
        .map_err(|e| format!("{name}: positionRisk: {e}"))?;
    for (symbol, inst) in &exchange.instruments {
        let Some(held) = risks.iter().find(|r| r.symbol == *symbol) else {
            problems.push(format!("{name}/{symbol}: the venue shows no position row"));
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
    Ok(problems)
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
    pub filters: Vec<FilterProblem>,
    pub balances: Vec<BalanceProblem>,
    /// A derivatives venue's position mode, leverage or margin type not as configured.
    pub derivatives: Vec<String>,
    /// Lines for the log: what was checked.
    pub lines: Vec<String>,
}

impl StartCheck {
    /// The differences found, as the baseline a paper engine trading anyway accepts.
    pub fn baseline(&self) -> Baseline {
        self.balances
            .iter()
            .map(|p| ((p.exchange.clone(), p.asset.clone()), p.venue - p.expected))
            .collect()
    }

    pub fn problems(&self) -> Vec<String> {
        self.filters
            .iter()
            .map(ToString::to_string)
            .chain(self.balances.iter().map(ToString::to_string))
            .chain(self.derivatives.iter().cloned())
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
    fills: &[RecoveredFill],
) -> Result<StartCheck, String> {
    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let mut out = StartCheck::default();
        for venue in venues {
            let Some(exchange) = manifest.exchanges.get(&venue.name) else {
                continue;
            };
            let base = Base::parse(&venue.rest).map_err(|e| format!("{}: {e}", venue.name))?;
            // Counted against (and refused by) the venue's limits like every other request.
            let mut client = Client::with_limits(base, Arc::clone(&venue.limits));
            let listed = fetch_exchange_info(&mut client, venue).await?;
            let found = check_filters(&venue.name, exchange, &listed);
            out.lines.push(format!(
                "{}: exchangeInfo: {} instrument(s) checked, {} filter mismatch(es)",
                venue.name,
                exchange.instruments.len(),
                found.len()
            ));
            out.filters.extend(found);
            let found = derivative_settings(&mut client, venue, exchange, &mut out.lines).await?;
            out.derivatives.extend(found);
            if let Some(r) = &exchange.reconcile {
                let expected = expected_balances(r, &venue.name, fills)?;
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

/// The liquidation watch: every [`LIQUIDATION_CHECK_MS`], each derivatives venue's positions
/// (`GET /fapi/v2/positionRisk`: mark and liquidation price, as the venue computes them); a
/// position whose mark is closer to its liquidation price than
/// `risk.min_liquidation_distance_bps` (of the mark) HALTS the engine (risk cause
/// `liquidation_distance`, the symbol, both prices and the distance in the detail), once, until
/// an operator resumes and the distance is back above the limit.
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

/// The positions of `venue` closer to liquidation than `min_bps`, as lines for a risk event.
async fn liquidation_breaches(
    client: &mut Client,
    venue: &VenueConfig,
    min_bps: u32,
) -> Result<Vec<String>, String> {
    let Some(account) = venue.client.derivatives() else {
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
        .iter()
        .filter(|r| venue.symbols.contains(&r.symbol))
        .filter_map(|r| {
            let bps = liquidation_distance_bps(r)?;
            (bps < i64::from(min_bps)).then(|| {
                format!(
                    "{}/{}: position {} marked at {} is {bps} bps from its liquidation price {} \
                     (risk.min_liquidation_distance_bps {min_bps})",
                    venue.name,
                    r.symbol,
                    dec(r.qty),
                    dec(r.mark_price.0),
                    dec(r.liquidation_price.0)
                )
            })
        })
        .collect())
}

fn liquidation_watch(
    venues: &[VenueConfig],
    min_bps: u32,
    commands: &Sender<(Command, Sender<Reply>)>,
    flags: &Flags,
    hk: &HkSender,
) {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = hk.send(Hk::Log(format!("liquidation watch: {e}; not watching")));
            return;
        }
    };
    while !flags.gateway_ready.load(Ordering::Acquire) {
        if !nap(Duration::from_millis(50), flags) {
            return;
        }
    }
    let mut halted = false;
    loop {
        if !nap(Duration::from_millis(LIQUIDATION_CHECK_MS), flags) {
            return;
        }
        // A connection per check, in its own local task set, as the balance check does.
        let local = tokio::task::LocalSet::new();
        let found = local.block_on(&rt, async {
            let mut found = Vec::new();
            for venue in venues {
                let checked = match Base::parse(&venue.rest) {
                    Ok(base) => {
                        let mut client = Client::with_limits(base, Arc::clone(&venue.limits));
                        liquidation_breaches(&mut client, venue, min_bps).await
                    }
                    Err(e) => Err(format!("{}: {e}", venue.name)),
                };
                match checked {
                    Ok(lines) => found.extend(lines),
                    Err(e) => {
                        let _ = hk.send(Hk::Log(format!("liquidation watch: {e}")));
                    }
                }
            }
            found
        });
        if found.is_empty() {
            halted = false;
            continue;
        }
        if halted {
            continue;
        }
        halted = true;
        let detail = found.join("; ");
        let _ = hk.send(Hk::Log(format!("liquidation watch: HALT: {detail}")));
        let (tx, rx) = std::sync::mpsc::channel();
        let cmd = Command::Halt {
            cause: rt_core::RiskCause::LiquidationDistance,
            detail,
        };
        if commands.send((cmd, tx)).is_err() {
            return;
        }
        let _ = rx.recv_timeout(Duration::from_secs(5));
    }
}

/// Starts the liquidation watch (see [`LIQUIDATION_CHECK_MS`]) when the risk section sets a
/// distance and a venue has derivatives; `None` otherwise.
fn spawn_liquidation_watch(
    manifest: &Manifest,
    venues: &[VenueConfig],
    commands: &Sender<(Command, Sender<Reply>)>,
    flags: &Arc<Flags>,
    hk: &HkSender,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let Some(min_bps) = manifest.risk.min_liquidation_distance_bps else {
        return Ok(None);
    };
    let watched: Vec<VenueConfig> = venues
        .iter()
        .filter(|v| v.client.derivatives().is_some())
        .cloned()
        .collect();
    if watched.is_empty() {
        return Ok(None);
    }
    let (commands, flags, hk) = (commands.clone(), Arc::clone(flags), hk.clone());
    std::thread::Builder::new()
        .name("liquidation".into())
        .spawn(move || liquidation_watch(&watched, min_bps, &commands, &flags, &hk))
        .map(Some)
}

/// Starts the periodic balance check (see the module documentation) for every venue with
/// `reconcile`, and the liquidation watch (`spawn_liquidation_watch`) when the risk section
/// asks for it; `None` when neither runs. The balance check reads the journal in
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
    let watch = spawn_liquidation_watch(manifest, venues, &commands, &flags, &hk)?;
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
            let expected = expected_balances(&p.reconcile, &p.venue.name, &recovery.fills)?;
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
        if let Some(first) = found.first() {
            let detail = found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let _ = hk.send(Hk::Log(format!("reconcile: balance mismatch: {detail}")));
            if !halted {
                let (tx, rx) = std::sync::mpsc::channel();
                let cmd = Command::Halt {
                    cause: rt_core::RiskCause::BalanceMismatch,
                    detail: detail.clone(),
                };
                if commands.send((cmd, tx)).is_ok() {
                    let _ = rx.recv_timeout(Duration::from_secs(5));
                    halts += 1;
                    halted = true;
                    let _ = first;
                }
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

    #[test]
    fn filters_are_named_with_both_values() {
        let m: Manifest = serde_json::from_str(include_str!(
            "../../../tests/contract/example.manifest.json"
        ))
        .unwrap();
        let (name, x) = m.exchanges.iter().next().unwrap();
        let listed: Vec<SymbolFilters> = x
            .instruments
            .iter()
            .map(|(s, i)| SymbolFilters {
                symbol: s.clone(),
                base_asset: String::new(),
                quote_asset: String::new(),
                tick_size: i.tick_size.raw(),
                step_size: i.lot_size.raw(),
                min_notional: i.min_notional.raw(),
            })
            .collect();
        assert_eq!(check_filters(name, x, &listed), []);
        let mut changed = listed.clone();
        changed[0].tick_size *= 10;
        let found = check_filters(name, x, &changed);
        assert_eq!(found.len(), 1);
        let symbol = &listed[0].symbol;
        assert_eq!(
            found[0].to_string(),
            format!(
                "{name}/{symbol}: PRICE_FILTER.tickSize configured {} but the venue says {}",
                dec(listed[0].tick_size),
                dec(listed[0].tick_size * 10)
            )
        );
        let found = check_filters(name, x, &listed[1..]);
        assert!(found[0].to_string().contains("does not list"), "{found:?}");
    }
}
