//! `rt-engine run`: a manifest, live. Sets up the rings, the journal (and recovers from it),
//! the bus, and the threads as the manifest declares them, each pinned to its core:
//!
//! ```text
//! feed (one per exchange) --market-data ring--> strategy --orders ring--> gateway --> venue
//!                                                   ^------fills ring-------'
//! housekeeping (this thread): bus (events PUB, control REP), journal fsync timer, heartbeats
//! ```
//!
//! A core that cannot be had is an error in live mode and a warning in paper mode. On SIGTERM
//! or SIGINT: the strategy stops quoting and cancels its open orders (waiting up to 3 s for
//! the venue), the journal is flushed, the latency table is printed, exit 0.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use rt_core::{Price, Qty, Side, Trader};
use rt_manifest::model::{Backing, Layout, Mode};
use rt_manifest::{Fixed, Manifest};
use rt_ring::Ring;
use rt_venues::execution::Credentials;

use crate::bus::{self, Bus, Identity};
use crate::feed::{self, FeedConfig, SNAPSHOT_LIMIT};
use crate::flight;
use crate::gateway::{self, GatewayConfig, VenueConfig};
use crate::journal::{self, Journal, Record};
use crate::journal_ring;
use crate::latency::human;
use crate::metrics;
use crate::shared::{dec, Flags, Names};
use crate::trader;

/// How a polling thread waits when it found nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spin {
    /// Pinned to an isolated core: spin, never give the core away.
    pub busy: bool,
}

/// Empty turns (each a poll of the rings, tens of ns) a thread on a shared core spins before
/// it parks: a burst of market data is met spinning, a quiet market costs no CPU.
const SPIN_TURNS: u32 = 1000;

impl Spin {
    /// After `idle` empty turns: spin on an isolated core; elsewhere spin briefly, then park
    /// until a writer unparks the thread (at most 1 ms, so timers still run).
    #[inline]
    pub fn idle(self, idle: u32) {
        if self.busy || idle < SPIN_TURNS {
            std::hint::spin_loop();
        } else {
            std::thread::park_timeout(Duration::from_millis(1));
        }
    }

    /// The same inside a current-thread tokio runtime: yield on an isolated core (the
    /// runtime polls its I/O every turn), otherwise await `wake` (at most 1 ms).
    pub async fn idle_async(self, idle: u32, wake: &tokio::sync::Notify) {
        if self.busy || idle < SPIN_TURNS {
            tokio::task::yield_now().await;
        } else {
            let _ = tokio::time::timeout(Duration::from_millis(1), wake.notified()).await;
        }
    }
}

/// The current-thread runtime of a hot thread (the gateway's, or the fused layout's one
/// thread): spinning on an isolated core, it looks at its sockets on every turn.
pub fn hot_runtime(spin: Spin) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(if spin.busy { 1 } else { 61 })
        .build()
}

/// The fused layout's one hot thread: every feed, the strategy and the gateway as tasks of
/// one current-thread runtime. A feed turns the strategy loop inline after each event it
/// writes, so decode -> book -> strategy -> risk -> order runs in one call stack. Each request
/// the strategy writes to the orders ring (a queue within the thread) is taken by the gateway
/// at once, in that same call stack (`gateway::Handoff`): built, signed, journaled and handed
/// to its connection, whose task writes it at the feed's next await. No thread hop, no task
/// hop and no wake-up on the way.
/// On an isolated core the runtime spins (every task yields, the sockets are polled each
/// turn); elsewhere it sleeps in epoll until a socket, a timer or a wake-up calls.
#[allow(clippy::too_many_arguments)]
fn run_fused(
    feeds: Vec<(FeedConfig, rt_ring::Producer, Option<flight::Tap>)>,
    strategy: trader::StrategyLoop,
    gateway_cfg: GatewayConfig,
    orders: rt_ring::Consumer,
    fills: rt_ring::Producer,
    journal: journal_ring::JournalTx,
    flags: Arc<crate::shared::Flags>,
    hk: crate::shared::HkSender,
    spin: Spin,
) {
    let runtime = match hot_runtime(spin) {
        Ok(r) => r,
        Err(e) => {
            let _ = hk.send(crate::shared::Hk::Log(format!("fused: no runtime: {e}")));
            flags.fail();
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        // The gateway's intake, shared with the strategy loop of this thread: what the
        // strategy decides is built, journaled and handed to its connection in the call stack
        // that decided it.
        let handoff = gateway::Handoff::default();
        handoff.install_on_this_thread();
        let strategy = std::rc::Rc::new(std::cell::RefCell::new(strategy));
        // Every stage is a task of one set: one that panics or ends before the stop would
        // leave the others trading without it (a feed's books frozen, orders nobody sends),
        // so it stops the engine (exit 2), as the end of its thread would in the pipeline.
        let mut tasks = tokio::task::JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (cfg, ring, tap) in feeds {
            let name = format!("feed {}", cfg.name);
            let feed =
                feed::serve_fused(cfg, ring, flags.clone(), hk.clone(), tap, strategy.clone());
            let task = tasks.spawn_local(async move {
                feed.await;
            });
            names.insert(task.id(), name);
        }
        let task = tasks.spawn_local(gateway::serve(
            gateway_cfg,
            orders,
            fills,
            journal,
            flags.clone(),
            hk.clone(),
            spin,
            handoff.clone(),
        ));
        names.insert(task.id(), "gateway".to_owned());
        let task = tasks.spawn_local(trader::run_task(strategy, flags.clone(), spin));
        let strategy_task = task.id();
        names.insert(strategy_task, "strategy".to_owned());
        while let Some(ended) = tasks.join_next_with_id().await {
            let (id, failure) = match ended {
                Ok((id, ())) => (id, (!flags.stopping()).then(|| "ended".to_owned())),
                Err(e) => (e.id(), Some(format!("failed: {e}"))),
            };
            if let Some(failure) = failure {
                let name = names.get(&id).map_or("a task", String::as_str);
                let _ = hk.send(crate::shared::Hk::Log(format!(
                    "fused: {name} {failure} before the stop; stopping the engine"
                )));
                flags.fail();
                if id == strategy_task {
                    // Nobody will send the last cancels: the gateway need not wait for them
                    // (the next start cancels what the venue still holds).
                    flags.trader_done.store(true, Ordering::Release);
                }
            }
        }
    });
}

/// Options of `rt-engine run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub manifest_path: PathBuf,
    pub mlockall: bool,
    /// Stop by itself after this long (tests, demos); `None`: until a signal.
    pub duration: Option<Duration>,
    pub verbose: bool,
    /// The ONNX Runtime library of model strategies (`None`: rt-model's discovery order).
    pub onnxruntime: Option<PathBuf>,
}

/// Resolves a credential reference (`env:NAME`, `file:PATH`); the value is never printed.
pub fn resolve_secret(reference: &str, what: &str) -> anyhow::Result<String> {
    if let Some(name) = reference.strip_prefix("env:") {
        std::env::var(name)
            .with_context(|| format!("{what}: environment variable {name} is not set"))
    } else if let Some(path) = reference.strip_prefix("file:") {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{what}: cannot read {path}"))?;
        Ok(text.trim().to_owned())
    } else {
        bail!("{what}: not a reference (env:NAME or file:PATH)")
    }
}

fn ring_dir(backing: Backing) -> &'static Path {
    match backing {
        Backing::Shm => rt_ring::Backing::Shm.default_dir(),
        Backing::Hugetlbfs => rt_ring::Backing::Hugetlbfs.default_dir(),
    }
}

/// Pins the calling thread as the manifest says; returns whether it may busy-poll.
fn pin(manifest: &Manifest, thread: &str, core: Option<u32>) -> Result<Spin, String> {
    let Some(core) = core else {
        return Ok(Spin { busy: false });
    };
    match rt_ring::pin_current_thread(core as usize) {
        Ok(()) => Ok(Spin {
            busy: manifest.host.cpu.isolated.contains(&core),
        }),
        Err(e) => Err(format!("thread {thread}: cannot pin to core {core}: {e}")),
    }
}

fn start_pinned(
    manifest: &Manifest,
    thread: &str,
    core: Option<u32>,
    pins: &mpsc::Sender<Result<String, String>>,
) -> Spin {
    let result = pin(manifest, thread, core);
    // Parks time out on shared cores: the default 50 µs timer slack would stretch them.
    let _ = crate::sys::set_timer_slack_ns(1_000);
    let spin = *result.as_ref().unwrap_or(&Spin { busy: false });
    let _ = pins.send(result.map(|s| {
        format!(
            "thread {thread}: {}",
            match core {
                Some(c) if s.busy => format!("core {c} (isolated, busy-poll)"),
                Some(c) => format!("core {c}"),
                None => "unpinned".to_owned(),
            }
        )
    }));
    spin
}

/// Runs the engine; the exit code.
pub fn run(opts: &RunOptions) -> anyhow::Result<u8> {
    crate::clock::init();
    let text = std::fs::read_to_string(&opts.manifest_path)
        .with_context(|| format!("cannot read manifest {}", opts.manifest_path.display()))?;
    let manifest = match rt_manifest::load(&text) {
        Ok(m) => m,
        Err(err) => {
            eprintln!("error: {}: refused:", opts.manifest_path.display());
            for p in err.violations() {
                eprintln!("  - {p}");
            }
            return Ok(2);
        }
    };
    let live = manifest.deployment.mode == Mode::Live;
    let engine_id = manifest.engine.id.clone();
    eprintln!(
        "rt-engine {} on {}: deployment {} ({}), manifest {}",
        engine_id,
        manifest.host.name,
        manifest.deployment.name,
        manifest.deployment.mode.as_str(),
        &manifest.content_sha256[..16]
    );
    if opts.mlockall {
        match crate::sys::mlockall() {
            Ok(()) => eprintln!("memory locked (mlockall)"),
            Err(e) if live => bail!("mlockall: {e} (raise LimitMEMLOCK)"),
            Err(e) => eprintln!("warning: mlockall: {e}; going on unlocked (paper mode)"),
        }
    }

    // The trading core, exactly as a backtest builds it, with the venues external.
    // Live, the records go to the bus and the journal as they happen: none are kept in memory.
    let mut config = rt_core::TraderConfig::from_manifest(&manifest);
    config.max_records = 0;
    config.max_equity_samples = 1024;
    // Model sessions are built here, once, before any thread starts; a model or library that
    // cannot be loaded refuses the start like a bad manifest.
    let mut models = crate::models::loader(opts.onnxruntime.clone());
    let mut bt = match Trader::with_models(config, &mut models) {
        Ok(bt) => bt,
        Err(
            e @ rt_core::TraderError::Strategy {
                source: rt_core::StrategyError::Model(_),
                ..
            },
        ) => {
            eprintln!("error: {}: refused:", opts.manifest_path.display());
            eprintln!("  - {e}");
            return Ok(2);
        }
        Err(e) => bail!("manifest {}: {e}", opts.manifest_path.display()),
    };
    let exchanges: Vec<String> = manifest.exchanges.keys().cloned().collect();
    for x in 0..exchanges.len() {
        bt.set_external(x).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    bt.enable_event_log();
    let names = Names {
        exchanges: exchanges.clone(),
        instruments: bt
            .instruments()
            .iter()
            .map(|i| {
                let x = exchanges.iter().position(|e| *e == i.exchange).unwrap_or(0);
                (x as u32, i.symbol.clone())
            })
            .collect(),
        strategies: bt.strategy_names().map(str::to_owned).collect(),
    };
    // Anomaly detection against the manifest's baseline (engine.anomaly), in housekeeping.
    let anomaly = match &manifest.engine.anomaly {
        Some(a) => Some(crate::anomaly::Detector::new(a, &names.exchanges)?),
        None => None,
    };

    // Rings.
    let rings = &manifest.host.rings;
    let mut backing = rings.backing;
    if backing == Backing::Hugetlbfs && !ring_dir(backing).is_dir() {
        if live {
            bail!(
                "host.rings.backing: hugetlbfs, but {} is not mounted",
                ring_dir(backing).display()
            );
        }
        eprintln!(
            "warning: host.rings.backing: hugetlbfs is not mounted at {}; paper mode uses /dev/shm",
            ring_dir(backing).display()
        );
        backing = Backing::Shm;
    }
    let dir = ring_dir(backing);
    let rb = match backing {
        Backing::Shm => rt_ring::Backing::Shm,
        Backing::Hugetlbfs => rt_ring::Backing::Hugetlbfs,
    };
    let ring_path = |name: &str| dir.join(format!("py_rt.{engine_id}.{name}.ring"));
    if (rings.market_data.slot_bytes as usize)
        < crate::wire::MIN_CAPACITY + rt_ring::SLOT_HEADER_BYTES
    {
        bail!(
            "host.rings.market_data.slot_bytes: {} is too small for market data (at least {})",
            rings.market_data.slot_bytes,
            (crate::wire::MIN_CAPACITY + rt_ring::SLOT_HEADER_BYTES).next_multiple_of(64)
        );
    }
    for (name, ring, need) in [
        ("orders", &rings.orders, crate::wire::ORDER_BYTES),
        ("fills", &rings.fills, crate::wire::EXEC_BYTES),
    ] {
        if (ring.slot_bytes as usize) < need + rt_ring::SLOT_HEADER_BYTES {
            bail!(
                "host.rings.{name}.slot_bytes: {} is too small for one message (at least {})",
                ring.slot_bytes,
                (need + rt_ring::SLOT_HEADER_BYTES).next_multiple_of(64)
            );
        }
    }
    // A full REST snapshot (both sides) must fit the ring at once, or the book never syncs.
    let snapshot_slots = crate::wire::slots_for(
        2 * SNAPSHOT_LIMIT as usize,
        rings.market_data.slot_bytes as usize - rt_ring::SLOT_HEADER_BYTES,
    );
    if (rings.market_data.slots as usize) < snapshot_slots {
        bail!(
            "host.rings.market_data.slots: {} slots of {} B cannot hold a depth snapshot of {} \
             levels a side ({snapshot_slots} slots); use at least {}",
            rings.market_data.slots,
            rings.market_data.slot_bytes,
            SNAPSHOT_LIMIT,
            snapshot_slots.next_power_of_two()
        );
    }
    let mut md_producers = Vec::new();
    let mut md_consumers = Vec::new();
    let mut ring_files = Vec::new();
    for x in &exchanges {
        let path = ring_path(&format!("md.{x}"));
        let p = Ring::create_on(
            rb,
            &path,
            rings.market_data.slots,
            rings.market_data.slot_bytes,
        )
        .with_context(|| format!("host.rings.market_data ({x})"))?;
        let c = Ring::open(&path).with_context(|| format!("host.rings.market_data ({x})"))?;
        md_producers.push(p);
        md_consumers.push(c);
        ring_files.push(path);
    }
    let orders_path = ring_path("orders");
    let orders_tx = Ring::create_on(
        rb,
        &orders_path,
        rings.orders.slots,
        rings.orders.slot_bytes,
    )
    .context("host.rings.orders")?;
    let orders_rx = Ring::open(&orders_path).context("host.rings.orders")?;
    let fills_path = ring_path("fills");
    let fills_tx = Ring::create_on(rb, &fills_path, rings.fills.slots, rings.fills.slot_bytes)
        .context("host.rings.fills")?;
    let fills_rx = Ring::open(&fills_path).context("host.rings.fills")?;
    ring_files.push(orders_path);
    ring_files.push(fills_path);
    eprintln!(
        "rings in {}: market_data {}x{} B per exchange, orders {}x{} B, fills {}x{} B",
        dir.display(),
        rings.market_data.slots,
        rings.market_data.slot_bytes,
        rings.orders.slots,
        rings.orders.slot_bytes,
        rings.fills.slots,
        rings.fills.slot_bytes
    );

    // Commission assets' prices (see `fees`), before the venues that book by them.
    let marks = Arc::new(fee_marks(&manifest, &bt));
    // Venue configs (credentials resolved here, never printed).
    let mut feeds = Vec::new();
    let mut venues = Vec::new();
    for (x, (name, ex)) in manifest.exchanges.iter().enumerate() {
        let feed = FeedConfig::for_exchange(x as u32, name, ex, manifest.risk.feed_stale_ms);
        // One account of the venue's rate limits for its feed and its gateway (one IP).
        let limits = feed.limits.clone();
        feeds.push(feed);
        let traded = manifest.strategies.values().any(|st| st.exchange == *name);
        if !rt_venues::market::order_entry_wanted(ex.venue, traded) {
            // Market data only (signals, recording): no gateway venue, account or user stream.
            continue;
        }
        let credentials = match &ex.credentials {
            Some(c) => Some(Credentials {
                key: resolve_secret(&c.api_key, &format!("exchanges.{name}.credentials.api_key"))?,
                secret: resolve_secret(
                    &c.api_secret,
                    &format!("exchanges.{name}.credentials.api_secret"),
                )?,
                // A venue that signs with a passphrase too (a reference, like the others).
                passphrase: c
                    .passphrase
                    .as_deref()
                    .map(|p| resolve_secret(p, &format!("exchanges.{name}.credentials.passphrase")))
                    .transpose()?,
                // Ed25519: `api_secret` is the private key's PEM, decoded by the venue's client.
                key_type: c.key_type.unwrap_or_default(),
            }),
            None if live => bail!("exchanges.{name}.credentials: live trading needs credentials"),
            None => None,
        };
        venues.push(VenueConfig {
            exchange: x as u32,
            name: name.clone(),
            rest: ex.endpoints.rest.clone(),
            ws: ex.endpoints.ws.clone(),
            // New orders and cancels over the venue's WebSocket API (`order_entry: websocket`).
            ws_api: match ex.order_entry {
                rt_manifest::model::OrderEntry::Websocket => ex.endpoints.ws_api.clone(),
                rt_manifest::model::OrderEntry::Rest => None,
            },
            // The venue's execution client (rt-venues picks it by venue and market).
            client: rt_venues::order_entry::for_exchange(ex, credentials)
                .with_context(|| format!("exchanges.{name}"))?,
            symbols: ex.instruments.keys().cloned().collect(),
            traded: crate::gateway::traded_instruments(&manifest, name),
            marks: marks.clone(),
            limits,
            settlements: ex
                .instruments
                .iter()
                .filter_map(|(symbol, i)| {
                    let contract = i.listing.as_ref()?.contract.as_ref()?;
                    Some((symbol.clone(), contract.settle_currency.clone()))
                })
                .collect(),
            futures: crate::delivery::futures_of(ex),
        });
    }

    // The journal: positions and order ids from the previous runs. First what a run that died
    // left in its journal ring (records the gateway had handed over and the writer had not
    // appended yet: see `journal_ring`).
    let journal_dir = PathBuf::from(&manifest.engine.journal.dir);
    let replayed = journal_ring::replay(
        &journal_dir,
        manifest.engine.journal.fsync,
        manifest.engine.journal.fsync_interval_ms,
    )?;
    if replayed > 0 {
        eprintln!(
            "journal: {replayed} record(s) the previous run left in its journal ring are journaled"
        );
    }
    let mut recovery = journal::recover(&journal_dir)?;
    let mut caught_up = Vec::new();
    if !recovery.unfinished_orders.is_empty() {
        eprintln!(
            "journal: {} order(s) had no final report; catching up with the venue before trading",
            recovery.unfinished_orders.len()
        );
        let mut j = Journal::open(
            &journal_dir,
            manifest.engine.journal.fsync,
            manifest.engine.journal.fsync_interval_ms,
        )?;
        let done = crate::catchup::catch_up(
            &venues,
            &client_prefix(&engine_id),
            live,
            &recovery.unfinished_orders,
            &mut j,
        )
        .map_err(|e| anyhow::anyhow!("catching up with the venue: {e}; not trading"))?;
        drop(j);
        caught_up = done.lines;
        caught_up.push(format!(
            "caught up: {} fill(s) the engine had not seen are journaled",
            done.fills
        ));
        recovery = journal::recover(&journal_dir)?;
        if let Some(o) = recovery.unfinished_orders.first() {
            bail!(
                "journal {}: order {} is still unfinished after catching up with the venue; \
                 not trading",
                journal_dir.display(),
                o.id
            );
        }
    }
    let mut restored = 0;
    for f in &recovery.fills {
        let Some(id) = bt.instrument_id(&f.exchange, &f.symbol) else {
            bail!(
                "journal {}: a fill on {}/{} which this manifest does not trade; \
                 move the journal aside to start flat",
                journal_dir.display(),
                f.exchange,
                f.symbol
            );
        };
        let side = if f.side == "sell" {
            Side::Sell
        } else {
            Side::Buy
        };
        let price = Fixed::parse(&f.price).context("journal: a fill's price")?;
        let qty = Fixed::parse(&f.qty).context("journal: a fill's qty")?;
        let fee = Fixed::parse(f.fee.trim_start_matches('-'))
            .context("journal: a fill's fee")?
            .raw();
        let fee = if f.fee.starts_with('-') { -fee } else { fee };
        bt.restore_fill(id, side, Price(price.raw()), Qty(qty.raw()), fee)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let base = Fixed::parse(&f.base_commission).context("journal: a fill's commission")?;
        // A charge (positive) or a rebate (negative) in the base asset, as live booked it.
        if base.raw() != 0 {
            bt.restore_base_commission(id, Qty(base.raw()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        restored += 1;
    }
    // Funding payments of perpetuals, into the realised P&L they were booked into.
    for f in &recovery.fundings {
        let Some(id) = bt.instrument_id(&f.exchange, &f.symbol) else {
            bail!(
                "journal {}: a funding payment on {}/{} which this manifest does not trade; \
                 move the journal aside to start flat",
                journal_dir.display(),
                f.exchange,
                f.symbol
            );
        };
        // Booked live only in the instrument's settlement currency (journaled either way).
        let settles_in = venues
            .iter()
            .find(|v| v.name == f.exchange)
            .and_then(|v| v.settlement(&f.symbol))
            .unwrap_or_else(|| rt_venues::assets::quote_asset(&f.symbol));
        if f.asset != settles_in {
            continue;
        }
        let amount = Fixed::parse(f.amount.trim_start_matches('-'))
            .context("journal: a funding payment's amount")?
            .raw();
        let amount = if f.amount.starts_with('-') {
            -amount
        } else {
            amount
        };
        bt.book_funding(id, amount)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // Futures delivered at expiry, after the fills they closed (once a contract: a journaled
    // delivery is not asked for again).
    crate::delivery::restore(&mut bt, &mut venues, &recovery.deliveries)?;
    // The venue's metadata and balances against the configuration and the journal.
    let start_check = match crate::reconcile::at_start(&manifest, &venues, &recovery) {
        Ok(c) => c,
        Err(e) if live => bail!("reconciling with the venue: {e}; not trading"),
        Err(e) => {
            eprintln!("warning: reconciling with the venue: {e}; going on (paper mode)");
            crate::reconcile::StartCheck::default()
        }
    };
    for line in &start_check.lines {
        eprintln!("reconcile: {line}");
    }
    let problems = start_check.problems();
    if live && !problems.is_empty() {
        eprintln!("error: the venue disagrees with the configuration or the journal; refused:");
        for p in &problems {
            eprintln!("  - {p}");
        }
        return Ok(crate::reconcile::EXIT_VENUE_MISMATCH);
    }
    for p in &problems {
        eprintln!("warning: {p} (paper mode: trading anyway)");
    }
    bt.set_next_order_id(recovery.next_order_id);
    let restored_safety = restore_safety(&mut bt, &recovery, &manifest.content_sha256)
        .with_context(|| format!("journal {}", journal_dir.display()))?;
    if recovery.records > 0 {
        let positions: Vec<String> = bt
            .instruments()
            .iter()
            .map(|i| format!("{} {}", i.symbol, bt.portfolio().qty(i.id)))
            .collect();
        eprintln!(
            "journal {}: {} records, {restored} fills replayed -> positions {}; next order id {}{}{}",
            journal_dir.display(),
            recovery.records,
            positions.join(", "),
            recovery.next_order_id,
            if recovery.clean_stop { "" } else { "; the previous run did not stop cleanly" },
            if recovery.torn_tail { " (a torn last line was skipped)" } else { "" },
        );
        for line in &restored_safety {
            eprintln!("journal: {line}");
        }
        for line in &caught_up {
            eprintln!("journal: {line}");
        }
    }
    let journal = Journal::open(
        &journal_dir,
        manifest.engine.journal.fsync,
        manifest.engine.journal.fsync_interval_ms,
    )?;
    let journal = Arc::new(Mutex::new(journal));
    if let Ok(mut j) = journal.lock() {
        j.append(&Record::Start {
            ts: crate::clock::now_ns(),
            engine: engine_id.clone(),
            manifest_sha256: manifest.content_sha256.clone(),
            pid: std::process::id(),
        })?;
        j.sync()?;
    }
    // The gateway's records go through the journal ring to the journal writer thread: the
    // order path never waits for the disk.
    let (journal_tx, journal_rx) = journal_ring::JournalTx::create(&journal_dir)?;
    let journal_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let journal_writer =
        journal_ring::spawn_writer(journal_rx, journal.clone(), journal_done.clone())?;

    let bus = Bus::bind(
        &manifest.engine.bus.events,
        &manifest.engine.bus.control,
        manifest.engine.bus.hwm,
    )?;
    eprintln!(
        "bus: events {} control {}",
        manifest.engine.bus.events, manifest.engine.bus.control
    );
    // Prometheus metrics, off the hot path. A port that cannot be had costs the metrics (said
    // loudly here, and Prometheus sees the target down), never the trading.
    let metrics = match metrics::Exporter::start(&manifest.engine.metrics.listen) {
        Ok(m) => {
            eprintln!("metrics: http://{}/metrics", m.addr);
            Some(m)
        }
        Err(e) => {
            eprintln!("warning: {e}; no metrics are served");
            None
        }
    };

    let flags = Arc::new(Flags::new(exchanges.len()));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flags.stop.clone())
        .context("cannot install the SIGTERM handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, flags.stop.clone())
        .context("cannot install the SIGINT handler")?;
    let (hk_tx, hk_rx) = mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let start_counts = vec![
        ("metadata_mismatches", start_check.filters.len() as u64),
        ("balance_mismatches", start_check.balances.len() as u64),
    ];
    let _ = hk_tx.send(crate::shared::Hk::Reconcile(start_counts.clone()));
    let reconcile_thread = crate::reconcile::spawn_periodic(
        &manifest,
        &venues,
        &journal_dir,
        cmd_tx.clone(),
        flags.clone(),
        hk_tx.clone(),
        start_counts,
        // Live refused any difference above; paper trades on and watches for new drift.
        start_check.baseline(),
    )?;
    let (pin_tx, pin_rx) = mpsc::channel();
    let manifest = Arc::new(manifest);
    let threads = &manifest.host.threads;

    let mut handles = Vec::new();
    handles.extend(reconcile_thread);
    let mut flight_writers = Vec::new();
    let mut feed_parts = Vec::new();
    for (cfg, ring) in feeds.into_iter().zip(md_producers) {
        // The flight recorder of this exchange: a recording that cannot start (a directory
        // that cannot be written) costs the recording, never the trading.
        let tap = manifest.engine.flight_recorder.as_ref().and_then(|rec| {
            match flight::start(&manifest, rec, &cfg.name, &cfg.symbols) {
                Ok((tap, writer)) => {
                    eprintln!(
                        "flight recorder: {} -> {}",
                        cfg.name,
                        flight::exchange_dir(rec, &cfg.name).display()
                    );
                    flight_writers.push(writer);
                    Some(tap)
                }
                Err(e) => {
                    eprintln!(
                        "warning: engine.flight_recorder: {e}; {} is not recorded",
                        cfg.name
                    );
                    None
                }
            }
        });
        feed_parts.push((cfg, ring, tap));
    }
    // The strategy thread's decision log (what `appliance parity` replays), beside the feeds'.
    let decisions = manifest.engine.flight_recorder.as_ref().and_then(|rec| {
        match flight::start_decisions(&manifest, &text, rec, restored) {
            Ok((tap, writer)) => {
                flight_writers.push(writer);
                Some(tap)
            }
            Err(e) => {
                eprintln!("warning: engine.flight_recorder: {e}; decisions are not recorded");
                None
            }
        }
    });
    let fused = threads.layout == Layout::Fused;
    let strategy = trader::StrategyLoop::new(
        bt,
        md_consumers,
        fills_rx,
        trader::Outbox::new(orders_tx, fused),
        cmd_rx,
        flags.clone(),
        hk_tx.clone(),
        marks,
        decisions,
    );
    let gateway_cfg = GatewayConfig {
        venues,
        names: names.clone(),
        client_prefix: client_prefix(&engine_id),
        funding: gateway::FundingStart {
            journaled: recovery.fundings.clone(),
            journal_start_ms: recovery
                .first_start_ts
                .and_then(|ts| u64::try_from(ts / 1_000_000).ok()),
        },
    };
    if fused {
        // One hot thread: the feeds, the strategy and the gateway as tasks of one runtime.
        let (m, f, hk, pins) = (
            manifest.clone(),
            flags.clone(),
            hk_tx.clone(),
            pin_tx.clone(),
        );
        let core = threads.strategy;
        let j = journal_tx;
        handles.push(
            std::thread::Builder::new()
                .name("fused".into())
                .spawn(move || {
                    let spin = start_pinned(&m, "fused (feeds, strategy, gateway)", core, &pins);
                    f.strategy_spins.store(spin.busy, Ordering::Relaxed);
                    f.gateway_spins.store(spin.busy, Ordering::Relaxed);
                    drop(pins);
                    run_fused(
                        feed_parts,
                        strategy,
                        gateway_cfg,
                        orders_rx,
                        fills_tx,
                        j,
                        f,
                        hk,
                        spin,
                    );
                })?,
        );
    } else {
        for (cfg, ring, tap) in feed_parts {
            let core = threads.feeds.get(&cfg.name).copied().flatten();
            let (m, f, hk, pins) = (
                manifest.clone(),
                flags.clone(),
                hk_tx.clone(),
                pin_tx.clone(),
            );
            handles.push(
                std::thread::Builder::new()
                    .name(format!("feed-{}", cfg.name))
                    .spawn(move || {
                        let _ = start_pinned(&m, &format!("feed {}", cfg.name), core, &pins);
                        drop(pins);
                        feed::run(cfg, ring, f, hk, tap);
                    })?,
            );
        }
        let (m, f, pins) = (manifest.clone(), flags.clone(), pin_tx.clone());
        let core = threads.strategy;
        handles.push(
            std::thread::Builder::new()
                .name("strategy".into())
                .spawn(move || {
                    let spin = start_pinned(&m, "strategy", core, &pins);
                    f.strategy_spins.store(spin.busy, Ordering::Relaxed);
                    let _ = f.strategy.set(std::thread::current());
                    drop(pins);
                    trader::run(strategy, spin);
                })?,
        );
        let (m, f, hk, pins) = (
            manifest.clone(),
            flags.clone(),
            hk_tx.clone(),
            pin_tx.clone(),
        );
        let core = threads.gateway;
        let j = journal_tx;
        handles.push(
            std::thread::Builder::new()
                .name("gateway".into())
                .spawn(move || {
                    let spin = start_pinned(&m, "gateway", core, &pins);
                    f.gateway_spins.store(spin.busy, Ordering::Relaxed);
                    drop(pins);
                    gateway::run(gateway_cfg, orders_rx, fills_tx, j, f, hk, spin);
                })?,
        );
    }
    let _ = start_pinned(&manifest, "housekeeping", threads.housekeeping, &pin_tx);
    drop(pin_tx);
    drop(hk_tx);
    let mut pin_failed = false;
    for result in pin_rx.iter() {
        match result {
            Ok(line) => eprintln!("{line}"),
            Err(e) if live => {
                eprintln!("error: {e} (live mode)");
                pin_failed = true;
            }
            Err(e) => eprintln!("warning: {e}; going on unpinned (paper mode)"),
        }
    }
    if pin_failed {
        flags.stop.store(true, Ordering::Relaxed);
    }
    if let Some(d) = opts.duration {
        let stop = flags.stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            stop.store(true, Ordering::Relaxed);
        });
    }

    let id = Identity {
        engine_id: engine_id.clone(),
        host: manifest.host.name.clone(),
        deployment: manifest.deployment.name.clone(),
        mode: manifest.deployment.mode.as_str().to_owned(),
        manifest_sha256: manifest.content_sha256.clone(),
        tick_to_order_p99_alert_us: manifest.engine.metrics.tick_to_order_p99_alert_us,
    };
    let fin = bus::housekeeping(
        bus,
        id,
        names.clone(),
        hk_rx,
        cmd_tx,
        journal.clone(),
        flags.clone(),
        opts.verbose,
        metrics.as_ref().map(|m| m.page.clone()),
        anomaly,
    );
    drop(metrics);
    for h in handles {
        let _ = h.join();
    }
    // The gateway is gone: the writer appends what is left in the ring, then ends.
    journal_done.store(true, Ordering::Release);
    journal_writer.thread().unpark();
    let written = journal_writer.join().unwrap_or_default();
    if written.errors + written.unreadable > 0 {
        eprintln!(
            "journal: {} of the gateway's records could not be journaled ({} unreadable)",
            written.errors + written.unreadable,
            written.unreadable
        );
    }
    // The feeds are gone, and their taps: each writer finishes its file and lists it.
    for w in flight_writers {
        let _ = w.join();
    }
    let fatal = flags.fatal.load(Ordering::Relaxed);
    if let Ok(mut j) = journal.lock() {
        // A clean stop only: no order left open and no fatal error (recovery says so).
        if fin.view.open_orders == 0 && !fatal {
            j.append(&Record::Stop {
                ts: crate::clock::now_ns(),
                open_orders: 0,
            })?;
        }
        j.sync()?;
    }
    // Emptied by the writer: nothing for the next start to replay.
    journal_ring::remove(&journal_ring::ring_path(&journal_dir))?;
    for f in &ring_files {
        let _ = std::fs::remove_file(f);
    }
    print_summary(&names, &fin);
    Ok(if pin_failed || fatal { 2 } else { 0 })
}

/// Client order ids: `<engine id, at most 12 safe chars>-<order id>` (Binance allows 36).
pub fn client_prefix(engine_id: &str) -> String {
    // One definition, which the manifest rules check against OKX's limit (client_ids).
    rt_manifest::client_ids::client_prefix(engine_id)
}

fn print_summary(names: &Names, fin: &bus::Final) {
    let v = &fin.view;
    println!("== rt-engine stopped ==");
    println!(
        "risk state {}, {}; open orders {}",
        v.risk_state.map_or("?", |s| s.as_str()),
        if v.paused { "paused" } else { "trading" },
        v.open_orders
    );
    println!(
        "P&L {} (realised {}, fees {}); fills {}",
        dec(v.equity),
        dec(v.realised),
        dec(v.fees),
        fin.fills
    );
    for p in &v.positions {
        let (x, s) = names.instrument(p.instrument);
        println!(
            "position {x}/{s}: {} (avg {}, unrealised {})",
            dec(p.qty),
            dec(p.avg_price),
            dec(p.unrealised)
        );
    }
    if fin.risk_events.is_empty() {
        println!("risk events: none");
    } else {
        for r in &fin.risk_events {
            println!("risk event: {r}");
        }
    }
    let counters: Vec<String> = v
        .counters
        .iter()
        .chain(fin.gateway.iter())
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    println!("counters: {}", counters.join(" "));
    if !v.rejections.is_empty() {
        let r: Vec<String> = v
            .rejections
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!("orders refused: {}", r.join(" "));
    }
    for f in &fin.feeds {
        println!(
            "feed {}: {} messages, {} snapshots, {} reconnects, {} gaps, {} malformed, {} ring overflows",
            names.exchange(f.exchange),
            f.messages,
            f.snapshots,
            f.reconnects,
            f.gaps,
            f.malformed,
            f.ring_overflows
        );
    }
    println!(
        "bus events published: {} (a subscriber's queue overflowed {} times)",
        fin.events_published, fin.subscriber_overflows
    );
    // A debug build (what the tests run) is several times slower on the hot path: say which
    // build measured the table so nobody reads a debug figure as the engine's latency.
    if cfg!(debug_assertions) {
        println!("latency (debug build: not representative, measure a release build):");
    } else {
        println!("latency (release build):");
    }
    print!("{}", fin.latency.table());
    let t = fin.latency.figures(crate::latency::Stage::TickToOrder);
    if t.count > 0 {
        println!(
            "tick-to-order: p50 {} p99 {} over {} orders",
            human(t.p50_ns),
            human(t.p99_ns),
            t.count
        );
    }
}

/// Restores from the journal what keeps a restart safe (see the journal module): the risk state
/// and the loss limits' anchors, an operator's pause, and the limits an operator tightened
/// while this same manifest ran. Returns one line per thing restored, for the log.
fn restore_safety(
    bt: &mut Trader,
    recovery: &journal::Recovery,
    manifest_sha256: &str,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let anchors = match &recovery.anchors {
        None => None,
        Some(a) => Some(rt_core::RiskAnchors {
            day: a.day,
            day_start_equity: journal::signed_units(&a.day_start_equity)
                .map_err(|e| anyhow::anyhow!("the anchors' day_start_equity {e}"))?,
            peak_equity: journal::signed_units(&a.peak_equity)
                .map_err(|e| anyhow::anyhow!("the anchors' peak_equity {e}"))?,
        }),
    };
    let (mut state, mut cause) = match &recovery.risk {
        None => (rt_core::RiskState::Active, None),
        Some(r) => (
            rt_core::RiskState::parse(&r.state)
                .ok_or_else(|| anyhow::anyhow!("an unknown risk state {:?}", r.state))?,
            rt_core::RiskCause::parse(&r.cause),
        ),
    };
    if recovery.killed {
        // A kill on an account that was HALTED already writes no risk record: the kill switch
        // holds until an operator resumes, whatever halted it first.
        state = rt_core::RiskState::Halted;
        cause = Some(rt_core::RiskCause::KillSwitch);
    }
    if anchors.is_some() || recovery.risk.is_some() || recovery.killed {
        bt.restore_risk(rt_core::RiskRestore {
            state,
            halt_cause: cause,
            anchors,
        });
        let mut line = format!("risk state {}", state.as_str().to_uppercase());
        if state == rt_core::RiskState::Halted {
            line.push_str(&format!(
                " ({}) restored: no order passes until {}",
                cause.map_or("unknown cause", |c| c.as_str()),
                if cause == Some(rt_core::RiskCause::DailyLoss) {
                    "the next UTC day or `rt-engine ctl resume`"
                } else {
                    "`rt-engine ctl resume`"
                }
            ));
        } else {
            line.push_str(" restored");
        }
        if let Some(a) = anchors {
            line.push_str(&format!(
                "; the day's losses measured from {} and the drawdown from the peak {}",
                crate::shared::dec(a.day_start_equity),
                crate::shared::dec(a.peak_equity)
            ));
        }
        lines.push(line);
    }
    if recovery.paused {
        bt.set_paused(true);
        lines.push(
            "an operator paused trading and did not resume: paused until `rt-engine ctl resume`"
                .to_owned(),
        );
    }
    if !recovery.tightened.is_empty() {
        if recovery.manifest_sha256.as_deref() == Some(manifest_sha256) {
            for (limit, value) in &recovery.tightened {
                let cmd = crate::trader::Command::Tighten(limit.clone(), value.clone());
                match crate::trader::command(bt, &cmd) {
                    Ok(done) => lines.push(format!("re-applied: {done}")),
                    Err(e) => lines.push(format!("not re-applied: {e}")),
                }
            }
        } else {
            lines.push(format!(
                "{} limit(s) tightened under the previous manifest are dropped: this manifest's \
                 reviewed limits apply",
                recovery.tightened.len()
            ));
        }
    }
    Ok(lines)
}

/// Price sources of the commission assets of every exchange (see `fees`): each asset with a
/// configured reference price, and BNB (Binance's fee asset), priced by the engine's book of
/// `<asset><quote>` on that exchange when it has one, else by the reference.
fn fee_marks(manifest: &rt_manifest::Manifest, bt: &Trader) -> crate::fees::FeeMarks {
    let mut sources = Vec::new();
    for (x, (name, ex)) in manifest.exchanges.iter().enumerate() {
        let Some(quote) = ex
            .instruments
            .keys()
            .next()
            .map(|s| rt_venues::assets::quote_asset(s))
        else {
            continue;
        };
        let mut assets: Vec<&str> = ex
            .commission_reference_prices
            .keys()
            .map(String::as_str)
            .collect();
        if !assets.contains(&"BNB") {
            assets.push("BNB");
        }
        for asset in assets {
            let symbol = format!("{asset}{quote}");
            let instrument = bt.instrument_id(name, &symbol);
            let reference = ex
                .commission_reference_prices
                .get(asset)
                .map_or(0, |p| p.raw());
            if instrument.is_some() || reference > 0 {
                sources.push((x as u32, asset.to_owned(), instrument, reference));
            }
        }
    }
    crate::fees::FeeMarks::new(sources)
}
