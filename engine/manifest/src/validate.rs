//! The semantic rules of docs/manifest.md, and the field-level rules serde cannot express.
//!
//! Validation never stops at the first problem: it walks the whole manifest and returns every
//! violation, each naming the path, the offending value and the rule (a stable id such as
//! `thread.hot_core_isolated`, listed in docs/manifest.md). This is the one implementation of the
//! manifest-level rules: the compiler and the Python reader call it through `appliance._engine`.
//! Paths and messages are only formatted when a rule fails: a valid manifest allocates only a few
//! small working sets here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Display};

use crate::model::{
    Backing, Core, Cpu, Exchange, Instrument, InstrumentLimits, Layout, Manifest, Mode, ModelRef,
    SimCommission, SimVenue, Strategy, StrategyParams, ThreadRole, Venue,
};
use crate::{Fixed, Violation};

mod anomaly;
pub mod client_ids;
mod multi;
mod venues;

/// Slot counts are powers of two up to 2^24.
const MAX_SLOTS: u64 = 1 << 24;
const MIN_SLOT_BYTES: u64 = 64;
const MAX_SLOT_BYTES: u64 = 65536;
const HUGEPAGE_SIZES_KB: [u64; 2] = [2048, 1_048_576];
const MIN_HWM: u64 = 1000;
/// The newest `ai.onnx` opset a model may declare.
pub const MAX_OPSET: u64 = 21;
/// Most ONNX Runtime intra-op threads a model session may use.
pub const MAX_INTRA_OP_THREADS: u64 = 64;

/// 64 lowercase hex digits.
pub(crate) fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Every rule violation in `manifest`, in document order; empty if it is valid.
/// The highest leverage Binance USD-M offers (`POST /fapi/v1/leverage`: 1-125).
pub const MAX_LEVERAGE: u32 = 125;

pub fn validate(manifest: &Manifest) -> Vec<Violation> {
    let mut check = Checker::default();
    check.engine(manifest);
    check.cpu(&manifest.host.cpu);
    check.nic(manifest);
    check.memory(manifest);
    check.threads(manifest);
    check.rings(manifest);
    for (name, exchange) in &manifest.exchanges {
        check.exchange(name, exchange, manifest.deployment.mode);
    }
    for (name, strategy) in &manifest.strategies {
        check.strategy(name, strategy, manifest);
    }
    check.risk(manifest);
    check.assets(manifest);
    check.okx_client_ids(manifest);
    check.out
}

#[derive(Default)]
struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, rule: &'static str, path: impl Display, message: impl Display) {
        self.out
            .push(Violation::of(rule, path.to_string(), message.to_string()));
    }

    fn positive(&mut self, rule: &'static str, path: fmt::Arguments<'_>, value: Fixed) {
        if !value.is_positive() {
            self.fail(
                rule,
                path,
                format_args!("{value} is not positive (must be > 0)"),
            );
        }
    }

    fn at_least(&mut self, rule: &'static str, path: fmt::Arguments<'_>, value: u64, min: u64) {
        if value < min {
            self.fail(
                rule,
                path,
                format_args!("{value} is below the minimum {min}"),
            );
        }
    }

    fn within(
        &mut self,
        rule: &'static str,
        path: fmt::Arguments<'_>,
        value: u64,
        min: u64,
        max: u64,
    ) {
        if !(min..=max).contains(&value) {
            self.fail(
                rule,
                path,
                format_args!("{value} is outside {min}..{max} (inclusive)"),
            );
        }
    }

    /// A positive quantity or price that must be a whole number of `step`s of each instrument
    /// (rule `rule`; a non-positive value is `strategy.param_range`).
    fn multiple(
        &mut self,
        rule: &'static str,
        path: fmt::Arguments<'_>,
        value: Fixed,
        step_name: &str,
        steps: &[(&str, &str, Fixed)],
    ) {
        if !value.is_positive() {
            self.positive("strategy.param_range", path, value);
            return;
        }
        // A non-positive step is reported at the instrument; "not a multiple of 0" adds nothing.
        for &(exchange, symbol, step) in steps {
            if step.is_positive() && !value.is_multiple_of(step) {
                self.fail(
                    rule,
                    path,
                    format_args!(
                        "{value} is not a multiple of {step_name} {step} of {exchange}:{symbol}"
                    ),
                );
            }
        }
    }

    fn engine(&mut self, m: &Manifest) {
        let engine = &m.engine;
        if engine.host != m.host.name {
            self.fail(
                "engine.host_is_host",
                "engine.host",
                format_args!(
                    "{:?} does not equal host.name {:?} (an engine runs on the host of its \
                     manifest)",
                    engine.host, m.host.name
                ),
            );
        }
        for (key, endpoint) in [
            ("events", &engine.bus.events),
            ("control", &engine.bus.control),
        ] {
            if !has_scheme(endpoint, &["tcp://", "ipc://"]) {
                self.fail(
                    "engine.bus_endpoint",
                    format_args!("engine.bus.{key}"),
                    format_args!("{endpoint:?} is not a tcp:// or ipc:// endpoint"),
                );
            }
        }
        if engine
            .metrics
            .listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            self.fail(
                "engine.metrics_listen",
                "engine.metrics.listen",
                format_args!(
                    "{:?} is not an address and port (for example 127.0.0.1:9464)",
                    engine.metrics.listen
                ),
            );
        }
        self.within(
            "engine.metrics_alert",
            format_args!("engine.metrics.tick_to_order_p99_alert_us"),
            engine.metrics.tick_to_order_p99_alert_us.into(),
            1,
            10_000_000,
        );
        if let Some(rec) = &engine.flight_recorder {
            if rec.dir.trim().is_empty() {
                self.fail(
                    "engine.flight_recorder",
                    "engine.flight_recorder.dir",
                    "is empty (a directory for the recordings)",
                );
            }
            self.at_least(
                "engine.flight_recorder",
                format_args!("engine.flight_recorder.file_mb"),
                rec.file_mb.into(),
                1,
            );
            if rec.budget_mb < rec.file_mb {
                self.fail(
                    "engine.flight_recorder",
                    "engine.flight_recorder.budget_mb",
                    format_args!(
                        "{} is below file_mb {} (the budget holds at least one file)",
                        rec.budget_mb, rec.file_mb
                    ),
                );
            }
        }
        if let Some(anomaly) = &engine.anomaly {
            self.anomaly(m, anomaly);
        }
        self.at_least(
            "engine.bus_hwm",
            format_args!("engine.bus.hwm"),
            engine.bus.hwm.into(),
            MIN_HWM,
        );
        self.at_least(
            "engine.fsync_interval",
            format_args!("engine.journal.fsync_interval_ms"),
            engine.journal.fsync_interval_ms.into(),
            1,
        );
    }

    /// Rule 3: the CPU sets are consistent with the online cores.
    fn cpu(&mut self, cpu: &Cpu) {
        let cores: BTreeSet<Core> = cpu.cores.iter().copied().collect();
        self.no_duplicates(
            "cpu.no_duplicates",
            format_args!("host.cpu.cores"),
            &cpu.cores,
        );
        for (key, list) in [
            ("isolated", &cpu.isolated),
            ("housekeeping", &cpu.housekeeping),
        ] {
            self.no_duplicates("cpu.no_duplicates", format_args!("host.cpu.{key}"), list);
            self.all_cores(
                "cpu.subset_of_cores",
                format_args!("host.cpu.{key}"),
                list,
                &cores,
                &cpu.cores,
            );
        }
        for core in &cpu.housekeeping {
            if cpu.isolated.contains(core) {
                self.fail(
                    "cpu.isolated_not_housekeeping",
                    "host.cpu.housekeeping",
                    format_args!(
                        "core {core} is also in cpu.isolated {:?} (the sets must be disjoint)",
                        cpu.isolated
                    ),
                );
            }
        }
        for (i, pair) in cpu.smt_siblings.iter().enumerate() {
            self.no_duplicates(
                "cpu.smt_pair",
                format_args!("host.cpu.smt_siblings[{i}]"),
                pair,
            );
            self.all_cores(
                "cpu.smt_pair",
                format_args!("host.cpu.smt_siblings[{i}]"),
                pair,
                &cores,
                &cpu.cores,
            );
        }
        for (i, node) in cpu.numa_nodes.iter().enumerate() {
            self.no_duplicates(
                "cpu.no_duplicates",
                format_args!("host.cpu.numa_nodes[{i}]"),
                node,
            );
            self.all_cores(
                "cpu.subset_of_cores",
                format_args!("host.cpu.numa_nodes[{i}]"),
                node,
                &cores,
                &cpu.cores,
            );
        }
    }

    fn no_duplicates(&mut self, rule: &'static str, path: fmt::Arguments<'_>, list: &[Core]) {
        let mut seen = BTreeSet::new();
        for core in list {
            if !seen.insert(core) {
                self.fail(
                    rule,
                    path,
                    format_args!("core {core} is listed twice in {list:?}"),
                );
            }
        }
    }

    fn all_cores(
        &mut self,
        rule: &'static str,
        path: fmt::Arguments<'_>,
        list: &[Core],
        cores: &BTreeSet<Core>,
        all: &[Core],
    ) {
        for core in list {
            if !cores.contains(core) {
                self.fail(
                    rule,
                    path,
                    format_args!("core {core} is not in cpu.cores {all:?}"),
                );
            }
        }
    }

    /// The market-data NIC sits on a NUMA node the host has.
    fn nic(&mut self, m: &Manifest) {
        let (nic, nodes) = (&m.host.nic, m.host.cpu.numa_nodes.len());
        if nic.numa_node as usize >= nodes {
            self.fail(
                "nic.numa_node",
                "host.nic.numa_node",
                format_args!(
                    "NUMA node {} does not exist (cpu.numa_nodes lists {nodes})",
                    nic.numa_node
                ),
            );
        }
    }

    fn memory(&mut self, m: &Manifest) {
        let memory = &m.host.memory;
        if !HUGEPAGE_SIZES_KB.contains(&memory.hugepage_kb) {
            self.fail(
                "memory.hugepage_size",
                "host.memory.hugepage_kb",
                format_args!(
                    "{} is not a hugepage size (2048 or 1048576)",
                    memory.hugepage_kb
                ),
            );
        }
        self.at_least(
            "memory.shm_budget",
            format_args!("host.memory.shm_budget_mb"),
            memory.shm_budget_mb,
            1,
        );
    }

    /// Rule 4: thread placement.
    fn threads(&mut self, m: &Manifest) {
        let host = &m.host;
        let cpu = &host.cpu;
        let threads = &host.threads;
        for exchange in m.exchanges.keys() {
            if !threads.feeds.contains_key(exchange) {
                self.fail(
                    "thread.feed_per_exchange",
                    "host.threads.feeds",
                    format_args!("no feed thread for exchange {exchange} (one per exchange)"),
                );
            }
        }
        for exchange in threads.feeds.keys() {
            if !m.exchanges.contains_key(exchange) {
                self.fail(
                    "thread.feed_per_exchange",
                    format_args!("host.threads.feeds.{exchange}"),
                    format_args!(
                        "{exchange} is not an exchange of this manifest {:?}",
                        m.exchanges.keys().collect::<Vec<_>>()
                    ),
                );
            }
        }

        if threads.layout == Layout::Fused {
            // One thread runs the feeds and the gateway too: their cores, when named, are its.
            let named = threads
                .feeds
                .iter()
                .map(|(exchange, core)| (format!("host.threads.feeds.{exchange}"), *core))
                .chain([("host.threads.gateway".to_owned(), threads.gateway)]);
            for (path, core) in named {
                if core.is_some() && core != threads.strategy {
                    self.fail(
                        "thread.fused_one_core",
                        path,
                        format_args!(
                            "core {} is not the strategy's core {} (layout fused runs the feeds, \
                             the strategy and the gateway on one thread: name its core or null)",
                            core.map_or("null".to_owned(), |c| c.to_string()),
                            threads
                                .strategy
                                .map_or("null".to_owned(), |c| c.to_string()),
                        ),
                    );
                }
            }
        }

        let slots = threads.slots();
        // Live mode pins every hot thread to its own isolated core: a pipeline with more hot
        // threads than the host isolates cannot be placed; the fused layout needs one core.
        let hot = slots.iter().filter(|s| s.role == ThreadRole::Hot).count();
        if m.deployment.mode == Mode::Live
            && threads.layout == Layout::Pipeline
            && hot > cpu.isolated.len()
        {
            self.fail(
                "thread.layout_fits_host",
                "host.threads",
                format_args!(
                    "layout pipeline has {hot} hot threads (a feed per exchange, the strategy, \
                     the gateway) and the host isolates {} core(s) {:?}: isolate more cores or \
                     use layout: fused (one hot thread)",
                    cpu.isolated.len(),
                    cpu.isolated
                ),
            );
        }
        let mut used: BTreeMap<Core, usize> = BTreeMap::new();
        for (index, slot) in slots.iter().enumerate() {
            let Some(core) = slot.core else {
                if m.deployment.mode == Mode::Live {
                    self.fail(
                        "thread.pinned_in_live",
                        slot.path(),
                        "not pinned (null) in live mode (live mode pins every thread)",
                    );
                }
                continue;
            };
            if !cpu.cores.contains(&core) {
                self.fail(
                    "thread.core_exists",
                    slot.path(),
                    format_args!(
                        "core {core} is not in cpu.cores {:?} (the host has no such core)",
                        cpu.cores
                    ),
                );
            } else {
                match slot.role {
                    ThreadRole::Hot if !cpu.isolated.contains(&core) => self.fail(
                        "thread.hot_core_isolated",
                        slot.path(),
                        format_args!(
                            "core {core} is not in cpu.isolated {:?} (hot threads must run on \
                             isolated cores)",
                            cpu.isolated
                        ),
                    ),
                    ThreadRole::Housekeeping if !cpu.housekeeping.contains(&core) => self.fail(
                        "thread.housekeeping_core",
                        slot.path(),
                        format_args!(
                            "core {core} is not in cpu.housekeeping {:?} (the housekeeping thread \
                             runs with the OS)",
                            cpu.housekeeping
                        ),
                    ),
                    _ => {}
                }
            }
            match used.get(&core) {
                Some(&first) => self.fail(
                    "thread.core_used_once",
                    slot.path(),
                    format_args!(
                        "core {core} is already used by {} (one thread per core)",
                        slots[first].path()
                    ),
                ),
                None => {
                    used.insert(core, index);
                }
            }
        }

        // Two hot threads on the two hyperthreads of one physical core share its pipeline.
        for (i, a) in slots.iter().enumerate() {
            for b in &slots[i + 1..] {
                let (Some(ca), Some(cb)) = (a.core, b.core) else {
                    continue;
                };
                if a.role != ThreadRole::Hot || b.role != ThreadRole::Hot {
                    continue;
                }
                if cpu
                    .smt_siblings
                    .iter()
                    .any(|&[x, y]| (x, y) == (ca, cb) || (y, x) == (ca, cb))
                {
                    self.fail(
                        "thread.smt_sibling",
                        b.path(),
                        format_args!(
                            "core {cb} is the SMT sibling of core {ca} used by {} (hot threads \
                             must not share a physical core)",
                            a.path()
                        ),
                    );
                }
            }
        }
    }

    /// Rule 5: ring geometry and the memory budget.
    fn rings(&mut self, m: &Manifest) {
        let host = &m.host;
        for (name, ring) in host.rings.named() {
            if !(ring.slots.is_power_of_two() && (2..=MAX_SLOTS).contains(&ring.slots)) {
                self.fail(
                    "ring.power_of_two",
                    format_args!("host.rings.{name}.slots"),
                    format_args!("{} is not a power of two in 2..{MAX_SLOTS}", ring.slots),
                );
            }
            if ring.slot_bytes % MIN_SLOT_BYTES != 0
                || !(MIN_SLOT_BYTES..=MAX_SLOT_BYTES).contains(&ring.slot_bytes)
            {
                self.fail(
                    "ring.slot_bytes",
                    format_args!("host.rings.{name}.slot_bytes"),
                    format_args!(
                        "{} is not a multiple of 64 in {MIN_SLOT_BYTES}..{MAX_SLOT_BYTES} \
                         (slots are whole cache lines)",
                        ring.slot_bytes
                    ),
                );
            }
        }
        let (need, budget) = (host.rings.total_bytes(), host.ring_budget_bytes());
        if need > budget {
            let memory = &host.memory;
            let source = match host.rings.backing {
                Backing::Hugetlbfs => format!(
                    "hugetlbfs budget is {budget} bytes (hugepages {} x hugepage_kb {} KiB)",
                    memory.hugepages, memory.hugepage_kb
                ),
                Backing::Shm => format!(
                    "shm budget is {budget} bytes (shm_budget_mb {})",
                    memory.shm_budget_mb
                ),
            };
            self.fail(
                "ring.fits_budget",
                "host.rings",
                format_args!(
                    "the rings need {need} bytes (slots x slot_bytes + 4096 header bytes per \
                     ring) but the {source}"
                ),
            );
        }
    }

    /// Rule 6, and the exchange's own fields.
    fn exchange(&mut self, name: &str, exchange: &Exchange, mode: Mode) {
        let venue = exchange.venue;
        if let Some(reconcile) = &exchange.reconcile {
            self.reconcile(name, reconcile);
        }
        if let Some(market) = venue.required_market() {
            if exchange.market != market {
                self.fail(
                    "exchange.venue_market",
                    format_args!("exchanges.{name}.market"),
                    format_args!(
                        "{} does not match venue {} (which speaks {})",
                        exchange.market.as_str(),
                        venue.as_str(),
                        market.as_str()
                    ),
                );
            }
        }
        match (&exchange.sim, venue) {
            (None, Venue::Sim) => self.fail(
                "exchange.sim_section",
                format_args!("exchanges.{name}.sim"),
                "null but the venue is sim (a sim venue needs capture, speed, latency_us)",
            ),
            (Some(sim), Venue::Sim) => self.sim(name, sim),
            (Some(_), _) => self.fail(
                "exchange.sim_section",
                format_args!("exchanges.{name}.sim"),
                format_args!(
                    "set but the venue is {} (sim settings are for sim only)",
                    venue.as_str()
                ),
            ),
            (None, _) => {}
        }
        for (asset, price) in &exchange.commission_reference_prices {
            self.positive(
                "exchange.commission_price",
                format_args!("exchanges.{name}.commission_reference_prices.{asset}"),
                *price,
            );
        }
        match &exchange.credentials {
            Some(credentials) => {
                self.credential_reference(name, "api_key", &credentials.api_key);
                self.credential_reference(name, "api_secret", &credentials.api_secret);
            }
            // Kraken is read without an account (its credentials are refused:
            // `exchange.market_data_only`), live as in paper.
            None if mode == Mode::Live && venue != Venue::Kraken => self.fail(
                "live.credentials",
                format_args!("exchanges.{name}.credentials"),
                "null in live mode (live trading needs credentials)",
            ),
            None => {}
        }
        if mode == Mode::Live && venue == Venue::Sim {
            self.fail(
                "live.no_sim",
                format_args!("exchanges.{name}.venue"),
                "sim in live mode (live trading needs a real venue)",
            );
        }
        let endpoints = &exchange.endpoints;
        if !has_scheme(&endpoints.ws, &["ws://", "wss://"]) {
            self.fail(
                "exchange.endpoint_scheme",
                format_args!("exchanges.{name}.endpoints.ws"),
                format_args!("{:?} is not a ws:// or wss:// URL", endpoints.ws),
            );
        }
        if !has_scheme(&endpoints.rest, &["http://", "https://"]) {
            self.fail(
                "exchange.endpoint_scheme",
                format_args!("exchanges.{name}.endpoints.rest"),
                format_args!("{:?} is not an http:// or https:// URL", endpoints.rest),
            );
        }
        self.order_entry(name, exchange);
        let limits = &exchange.rate_limits;
        for (key, value) in [
            ("orders_per_10s", limits.orders_per_10s),
            ("orders_per_day", limits.orders_per_day),
            (
                "request_weight_per_minute",
                limits.request_weight_per_minute,
            ),
        ] {
            self.at_least(
                "exchange.rate_limit",
                format_args!("exchanges.{name}.rate_limits.{key}"),
                value.into(),
                1,
            );
        }
        if exchange.instruments.is_empty() {
            self.fail(
                "exchange.has_instruments",
                format_args!("exchanges.{name}.instruments"),
                "empty (an exchange needs at least one instrument)",
            );
        }
        for (symbol, instrument) in &exchange.instruments {
            let Instrument {
                tick_size,
                lot_size,
                min_notional,
                ..
            } = *instrument;
            for (key, value) in [
                ("tick_size", tick_size),
                ("lot_size", lot_size),
                ("min_notional", min_notional),
            ] {
                self.positive(
                    "instrument.positive",
                    format_args!("exchanges.{name}.instruments.{symbol}.{key}"),
                    value,
                );
            }
            self.derivative_settings(name, symbol, instrument, exchange.market);
        }
        self.venue_exchange(name, exchange);
    }

    /// An instrument's leverage and margin type: a derivative's only (USD-M, or a listed
    /// contract: an OKX swap); leverage 1-125 (both venues' range).
    fn derivative_settings(
        &mut self,
        name: &str,
        symbol: &str,
        instrument: &Instrument,
        market: crate::model::Market,
    ) {
        let usdm = market == crate::model::Market::Usdm
            || instrument
                .listing
                .as_ref()
                .is_some_and(|l| l.kind == crate::model::InstrumentType::Swap);
        if let Some(leverage) = instrument.leverage {
            if !usdm {
                self.fail(
                    "instrument.derivative_setting",
                    format_args!("exchanges.{name}.instruments.{symbol}.leverage"),
                    format_args!(
                        "{leverage} on a {} instrument (leverage is a derivative's setting: \
                         USD-M, or a swap)",
                        market.as_str()
                    ),
                );
            } else if !(1..=MAX_LEVERAGE).contains(&leverage) {
                self.fail(
                    "instrument.leverage",
                    format_args!("exchanges.{name}.instruments.{symbol}.leverage"),
                    format_args!("{leverage} is outside 1-{MAX_LEVERAGE}"),
                );
            }
        }
        if let (Some(margin), false) = (instrument.margin_type, usdm) {
            self.fail(
                "instrument.derivative_setting",
                format_args!("exchanges.{name}.instruments.{symbol}.margin_type"),
                format_args!(
                    "{} on a {} instrument (the margin type is a derivative's setting: USD-M, \
                     or a swap)",
                    match margin {
                        crate::model::MarginType::Cross => "cross",
                        crate::model::MarginType::Isolated => "isolated",
                    },
                    market.as_str()
                ),
            );
        }
    }

    /// Credential `key` of exchange `name` is a reference, never a secret.
    fn credential_reference(&mut self, name: &str, key: &str, value: &str) {
        if !is_secret_reference(value) {
            self.fail(
                "exchange.credential_reference",
                format_args!("exchanges.{name}.credentials.{key}"),
                format_args!(
                    "{} is not a reference (env:NAME with NAME [A-Z_][A-Z0-9_]*, or \
                     file:/absolute/path); secrets never go into a manifest",
                    shown_credential(value)
                ),
            );
        }
    }

    /// Balance reconciliation: non-negative balances and tolerances, one tolerance per
    /// compared asset, a sane interval.
    fn reconcile(&mut self, name: &str, r: &crate::model::Reconcile) {
        if r.starting_balances.is_empty() {
            self.fail(
                "exchange.reconcile",
                format_args!("exchanges.{name}.reconcile.starting_balances"),
                "is empty (name at least one asset to reconcile)",
            );
        }
        for (key, map) in [
            ("starting_balances", &r.starting_balances),
            ("tolerance", &r.tolerance),
        ] {
            for (asset, value) in map {
                if *value < Fixed::ZERO {
                    self.fail(
                        "exchange.reconcile",
                        format_args!("exchanges.{name}.reconcile.{key}.{asset}"),
                        format_args!("{value} is negative (0 or more)"),
                    );
                }
            }
        }
        let balances: Vec<&String> = r.starting_balances.keys().collect();
        let tolerated: Vec<&String> = r.tolerance.keys().collect();
        if balances != tolerated {
            self.fail(
                "exchange.reconcile",
                format_args!("exchanges.{name}.reconcile.tolerance"),
                format_args!(
                    "names {tolerated:?} but starting_balances names {balances:?} (one \
                     tolerance per reconciled asset)"
                ),
            );
        }
        self.at_least(
            "exchange.reconcile",
            format_args!("exchanges.{name}.reconcile.interval_ms"),
            r.interval_ms,
            1000,
        );
    }

    /// A sim venue's settings: its replay speed and the BNB it pays commissions from.
    fn sim(&mut self, name: &str, sim: &SimVenue) {
        self.positive(
            "exchange.sim_speed",
            format_args!("exchanges.{name}.sim.speed"),
            sim.speed,
        );
        if sim.bnb_balance < Fixed::ZERO {
            self.fail(
                "exchange.sim_bnb",
                format_args!("exchanges.{name}.sim.bnb_balance"),
                format_args!("{} is negative (a balance is 0 or more)", sim.bnb_balance),
            );
        }
        if sim.commission_asset == SimCommission::Bnb && !sim.bnb_price.is_positive() {
            self.fail(
                "exchange.sim_bnb",
                format_args!("exchanges.{name}.sim.bnb_price"),
                format_args!(
                    "{} is not positive but commission_asset is bnb (commissions are converted \
                     at this price)",
                    sim.bnb_price
                ),
            );
        }
    }

    /// Rule 7, and the parameters of each kind.
    fn strategy(&mut self, name: &str, strategy: &Strategy, m: &Manifest) {
        let exchange = m.exchanges.get(&strategy.exchange);
        if let Some(exchange) = exchange {
            self.venue_strategy(name, strategy, exchange);
        }
        if exchange.is_none() {
            self.fail(
                "strategy.exchange_declared",
                format_args!("strategies.{name}.exchange"),
                format_args!(
                    "{} is not in exchanges {:?}",
                    strategy.exchange,
                    m.exchanges.keys().collect::<Vec<_>>()
                ),
            );
        }
        if strategy.instruments.is_empty() {
            self.fail(
                "strategy.has_instruments",
                format_args!("strategies.{name}.instruments"),
                "empty (a strategy trades at least one instrument)",
            );
        }
        // (exchange, symbol, instrument) of each symbol that resolves, for the multiple checks.
        let mut resolved = Vec::with_capacity(strategy.instruments.len());
        for (i, symbol) in strategy.instruments.iter().enumerate() {
            if let Some(exchange) = exchange {
                match exchange.instruments.get(symbol) {
                    Some(instrument) => resolved.push((symbol.as_str(), instrument)),
                    None => self.fail(
                        "strategy.instrument_listed",
                        format_args!("strategies.{name}.instruments[{i}]"),
                        format_args!(
                            "{symbol} is not an instrument of exchange {} {:?}",
                            strategy.exchange,
                            exchange.instruments.keys().collect::<Vec<_>>()
                        ),
                    ),
                }
            }
            match m.risk.instruments.get(symbol) {
                Some(limits) => self.within_risk(name, symbol, &strategy.params, limits),
                None => self.fail(
                    "strategy.risk_limits",
                    format_args!("strategies.{name}.instruments[{i}]"),
                    format_args!("{symbol} has no risk.instruments entry (no limits, no trading)"),
                ),
            }
        }
        let exchange_name = strategy.exchange.as_str();
        let lots: Vec<_> = resolved
            .iter()
            .map(|&(symbol, inst)| (exchange_name, symbol, inst.lot_size))
            .collect();
        let ticks: Vec<_> = resolved
            .iter()
            .map(|&(symbol, inst)| (exchange_name, symbol, inst.tick_size))
            .collect();
        match &strategy.params {
            StrategyParams::MarketMaker(p) => {
                if let Some(signal) = &p.signal {
                    self.signal(name, strategy, signal, m);
                }
                self.at_least(
                    "strategy.param_range",
                    format_args!("strategies.{name}.params.half_spread_ticks"),
                    p.half_spread_ticks.into(),
                    1,
                );
                self.multiple(
                    "strategy.lot_multiple",
                    format_args!("strategies.{name}.params.quote_qty"),
                    p.quote_qty,
                    "lot_size",
                    &lots,
                );
                self.multiple(
                    "strategy.lot_multiple",
                    format_args!("strategies.{name}.params.max_inventory"),
                    p.max_inventory,
                    "lot_size",
                    &lots,
                );
            }
            StrategyParams::ImbalanceTaker(p) => {
                self.within(
                    "strategy.param_range",
                    format_args!("strategies.{name}.params.levels"),
                    p.levels.into(),
                    1,
                    50,
                );
                if !(Fixed::ZERO < p.threshold && p.threshold < Fixed::ONE) {
                    self.fail(
                        "strategy.threshold_range",
                        format_args!("strategies.{name}.params.threshold"),
                        format_args!("{} is not strictly between 0 and 1", p.threshold),
                    );
                }
                self.taker_orders(name, p.order_qty, p.max_slippage, &lots, &ticks);
            }
            StrategyParams::ModelTaker(p) => {
                if strategy.instruments.len() > 1 {
                    self.fail(
                        "strategy.model_instruments",
                        format_args!("strategies.{name}.instruments"),
                        format_args!(
                            "{} instruments: a model_taker trades exactly one",
                            strategy.instruments.len()
                        ),
                    );
                }
                self.model(name, &p.model, p.features.features.len());
                for v in p.features.violations() {
                    self.fail(
                        v.rule,
                        format_args!("strategies.{name}.params.features.{}", v.path),
                        v.message,
                    );
                }
                if p.sell_below >= p.buy_above {
                    self.fail(
                        "strategy.model_thresholds",
                        format_args!("strategies.{name}.params.sell_below"),
                        format_args!(
                            "{} is not below buy_above {} (the no-trade band must not be empty)",
                            p.sell_below, p.buy_above
                        ),
                    );
                }
                self.taker_orders(name, p.order_qty, p.max_slippage, &lots, &ticks);
            }
        }
    }

    /// A strategy's orders fit the risk limits of `symbol`: risk would refuse every larger one.
    fn within_risk(
        &mut self,
        name: &str,
        symbol: &str,
        params: &StrategyParams,
        limits: &InstrumentLimits,
    ) {
        let (field, order) = match params {
            StrategyParams::MarketMaker(p) => ("quote_qty", p.quote_qty),
            StrategyParams::ImbalanceTaker(p) => ("order_qty", p.order_qty),
            StrategyParams::ModelTaker(p) => ("order_qty", p.order_qty),
        };
        if order > limits.max_order_qty {
            self.fail(
                "strategy.within_risk",
                format_args!("strategies.{name}.params.{field}"),
                format_args!(
                    "{order} exceeds risk.instruments.{symbol}.max_order_qty {} (risk would \
                     refuse every order)",
                    limits.max_order_qty
                ),
            );
        }
        if let StrategyParams::MarketMaker(p) = params {
            if p.max_inventory > limits.max_position {
                self.fail(
                    "strategy.within_risk",
                    format_args!("strategies.{name}.params.max_inventory"),
                    format_args!(
                        "{} exceeds risk.instruments.{symbol}.max_position {} (the inventory \
                         the strategy aims for is over the position limit)",
                        p.max_inventory, limits.max_position
                    ),
                );
            }
        }
    }

    /// The order size and slippage of a taker kind: whole lots and ticks of its instruments.
    fn taker_orders(
        &mut self,
        name: &str,
        order_qty: Fixed,
        max_slippage: Fixed,
        lots: &[(&str, &str, Fixed)],
        ticks: &[(&str, &str, Fixed)],
    ) {
        self.multiple(
            "strategy.lot_multiple",
            format_args!("strategies.{name}.params.order_qty"),
            order_qty,
            "lot_size",
            lots,
        );
        self.multiple(
            "strategy.tick_multiple",
            format_args!("strategies.{name}.params.max_slippage"),
            max_slippage,
            "tick_size",
            ticks,
        );
    }

    /// A model section's own rules (its file is checked at load, see `crate::files`).
    fn model(&mut self, name: &str, model: &ModelRef, features: usize) {
        let at = |field: &str| format!("strategies.{name}.params.model.{field}");
        if model.path.trim().is_empty() {
            self.fail(
                "strategy.model_path",
                at("path"),
                "empty (the model's .onnx file)",
            );
        }
        if !is_sha256(&model.sha256) {
            self.fail(
                "strategy.model_sha256",
                at("sha256"),
                format_args!(
                    "{:?} is not a lowercase hex SHA-256 (64 characters)",
                    model.sha256
                ),
            );
        }
        for (field, value) in [
            ("input_name", &model.input_name),
            ("output_name", &model.output_name),
        ] {
            if value.is_empty() {
                self.fail(
                    "strategy.model_tensor",
                    at(field),
                    "empty (the model's tensor name)",
                );
            }
        }
        if u64::from(model.input_width) != features as u64 {
            self.fail(
                "strategy.model_width",
                at("input_width"),
                format_args!(
                    "{} but params.features declares {features} features (the model reads one \
                     row of the declared features)",
                    model.input_width
                ),
            );
        }
        self.at_least(
            "strategy.model_range",
            format_args!("strategies.{name}.params.model.output_width"),
            model.output_width.into(),
            1,
        );
        self.within(
            "strategy.model_range",
            format_args!("strategies.{name}.params.model.opset"),
            model.opset.into(),
            1,
            MAX_OPSET,
        );
        self.within(
            "strategy.model_range",
            format_args!("strategies.{name}.params.model.intra_op_threads"),
            model.intra_op_threads.into(),
            1,
            MAX_INTRA_OP_THREADS,
        );
    }

    /// Rule 8, and the risk fields.
    fn risk(&mut self, m: &Manifest) {
        let risk = &m.risk;
        for (key, value) in [
            ("max_daily_loss", risk.max_daily_loss),
            ("max_drawdown", risk.max_drawdown),
            ("max_gross_exposure", risk.max_gross_exposure),
        ] {
            self.positive("risk.positive", format_args!("risk.{key}"), value);
        }
        self.within(
            "risk.range",
            format_args!("risk.reducing_at_pct"),
            risk.reducing_at_pct.into(),
            1,
            100,
        );
        self.at_least(
            "risk.range",
            format_args!("risk.max_open_orders"),
            risk.max_open_orders.into(),
            1,
        );
        if let Some(bps) = risk.min_liquidation_distance_bps {
            self.within(
                "risk.range",
                format_args!("risk.min_liquidation_distance_bps"),
                bps.into(),
                1,
                10_000,
            );
        }
        let rate = risk.order_rate;
        self.at_least(
            "risk.range",
            format_args!("risk.order_rate.per_second"),
            rate.per_second.into(),
            1,
        );
        self.at_least(
            "risk.range",
            format_args!("risk.order_rate.burst"),
            rate.burst.into(),
            1,
        );
        if rate.burst < rate.per_second {
            self.fail(
                "risk.burst_at_least_rate",
                "risk.order_rate.burst",
                format_args!(
                    "{} is below per_second {} (a burst allows at least one second's orders)",
                    rate.burst, rate.per_second
                ),
            );
        }
        self.at_least(
            "risk.range",
            format_args!("risk.feed_stale_ms"),
            risk.feed_stale_ms,
            1,
        );
        if risk.stale_exposure_halt_ms <= risk.feed_stale_ms {
            self.fail(
                "risk.stale_halt_after_stale",
                "risk.stale_exposure_halt_ms",
                format_args!(
                    "{} is not above feed_stale_ms {} (a stale book first moves the state to \
                     REDUCING, later to HALTED)",
                    risk.stale_exposure_halt_ms, risk.feed_stale_ms
                ),
            );
        }
        for (symbol, limits) in &risk.instruments {
            for (key, value) in [
                ("max_position", limits.max_position),
                ("max_order_qty", limits.max_order_qty),
                ("max_order_notional", limits.max_order_notional),
                ("max_position_notional", limits.max_position_notional),
            ] {
                self.positive(
                    "risk.positive",
                    format_args!("risk.instruments.{symbol}.{key}"),
                    value,
                );
            }
            self.within(
                "risk.range",
                format_args!("risk.instruments.{symbol}.price_band_bps"),
                limits.price_band_bps.into(),
                1,
                10_000,
            );
            if limits.max_order_qty > limits.max_position {
                self.fail(
                    "risk.order_within_position",
                    format_args!("risk.instruments.{symbol}.max_order_qty"),
                    format_args!(
                        "{} exceeds max_position {} (one order may not exceed the position limit)",
                        limits.max_order_qty, limits.max_position
                    ),
                );
            }
            if limits.max_order_notional > limits.max_position_notional {
                self.fail(
                    "risk.order_within_position",
                    format_args!("risk.instruments.{symbol}.max_order_notional"),
                    format_args!(
                        "{} exceeds max_position_notional {} (one order may not exceed the \
                         position limit)",
                        limits.max_order_notional, limits.max_position_notional
                    ),
                );
            }
        }
    }
}

/// `scheme://` followed by something.
fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}

/// `env:NAME` (NAME `[A-Z_][A-Z0-9_]*`) or `file:/absolute/path`.
pub(crate) fn is_secret_reference(value: &str) -> bool {
    if let Some(name) = value.strip_prefix("env:") {
        let mut chars = name.chars();
        return chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    }
    value
        .strip_prefix("file:/")
        .is_some_and(|rest| !rest.is_empty())
}

/// A malformed reference is shown; anything else may be a pasted secret and is not echoed.
fn shown_credential(value: &str) -> String {
    if value.starts_with("env:") || value.starts_with("file:") {
        format!("{value:?}")
    } else {
        format!(
            "a literal value ({} characters, not shown)",
            value.chars().count()
        )
    }
}

impl Checker {
    /// The order-entry transport: `websocket` needs the venue's WebSocket API, which only
    /// Binance Spot (and the sim, which speaks it) has here, and its URL.
    fn order_entry(&mut self, name: &str, exchange: &Exchange) {
        let endpoints = &exchange.endpoints;
        if let Some(url) = &endpoints.ws_api {
            if !has_scheme(url, &["ws://", "wss://"]) {
                self.fail(
                    "exchange.endpoint_scheme",
                    format_args!("exchanges.{name}.endpoints.ws_api"),
                    format_args!("{url:?} is not a ws:// or wss:// URL"),
                );
            }
        }
        if exchange.order_entry != crate::model::OrderEntry::Websocket {
            return;
        }
        let spot = exchange.market == crate::model::Market::Spot;
        if !matches!(exchange.venue, Venue::BinanceSpot | Venue::Sim) || !spot {
            self.fail(
                "exchange.order_entry",
                format_args!("exchanges.{name}.order_entry"),
                format_args!(
                    "websocket, but venue {} (market {}) has no WebSocket API order entry here \
                     (Binance Spot and the sim's spot venue only); use rest",
                    exchange.venue.as_str(),
                    exchange.market.as_str()
                ),
            );
        }
        match &endpoints.ws_api {
            None => self.fail(
                "exchange.order_entry",
                format_args!("exchanges.{name}.endpoints.ws_api"),
                "missing: order_entry websocket needs the venue's WebSocket API URL \
                 (wss://ws-api.binance.com:443/ws-api/v3)",
            ),
            // The sim serves it on its own ws address only: another URL would never connect
            // (orders over REST for good).
            Some(url) if exchange.venue == Venue::Sim => {
                let served = format!("{}/ws-api/v3", endpoints.ws.trim_end_matches('/'));
                if *url != served {
                    self.fail(
                        "exchange.order_entry",
                        format_args!("exchanges.{name}.endpoints.ws_api"),
                        format_args!(
                            "{url:?}, but the sim serves its WebSocket API on its ws address: \
                             {served:?}"
                        ),
                    );
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{json, Value};

    use super::*;

    const EXAMPLE: &str = include_str!("../../../tests/contract/example.manifest.json");

    fn example() -> Value {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    /// The violations of the example after `edit` (no hash involved: validation only).
    fn violations(edit: impl FnOnce(&mut Value)) -> Vec<Violation> {
        let mut value = example();
        edit(&mut value);
        let manifest: Manifest = serde_json::from_value(value).unwrap();
        validate(&manifest)
    }

    /// Asserts that exactly one violation is reported, at `path`, and its message has `words`.
    #[track_caller]
    fn refused(edit: impl FnOnce(&mut Value), path: &str, words: &[&str]) {
        let found = violations(edit);
        assert_eq!(
            found.len(),
            1,
            "expected one violation at {path}, got {found:#?}"
        );
        assert_eq!(found[0].path, path, "{found:#?}");
        for word in words {
            assert!(
                found[0].message.contains(word),
                "{word:?} not in {:?}",
                found[0].message
            );
        }
    }

    fn paper(v: &mut Value) {
        v["deployment"]["mode"] = json!("paper");
    }

    /// A second exchange, USD-M futures on the simulator, with its feed thread on core 5.
    fn add_sim_exchange(v: &mut Value) {
        v["exchanges"]["sim_usdm"] = json!({
            "credentials": null,
            "endpoints": {"rest": "http://127.0.0.1:9001", "ws": "ws://127.0.0.1:9000"},
            "instruments": {"ETHUSDT": {
                "lot_size": "0.001", "maker_fee_bps": "-1", "min_notional": "5",
                "taker_fee_bps": "4", "tick_size": "0.01"
            }},
            "market": "usdm",
            "on_gap": "halt",
            "rate_limits": {"orders_per_10s": 10, "orders_per_day": 1000,
                            "request_weight_per_minute": 100},
            "sim": {"capture": "data/capture.jsonl", "latency_us": 50, "speed": "1000000"},
            "venue": "sim",
            "reconcile": null
        });
        v["host"]["threads"]["feeds"]["sim_usdm"] = json!(5);
    }

    fn imbalance_taker(v: &mut Value) {
        v["strategies"]["mm_btcusdt_spot"]["kind"] = json!("imbalance_taker");
        v["strategies"]["mm_btcusdt_spot"]["params"] = json!({
            "cooldown_ms": 250, "levels": 5, "max_slippage": "0.05", "order_qty": "0.001",
            "threshold": "0.6"
        });
    }

    #[test]
    fn reconcile_and_stale_exposure_rules() {
        let with = |r: Value| {
            move |v: &mut Value| {
                v["exchanges"]["binance_spot"]["reconcile"] = r;
            }
        };
        assert_eq!(
            violations(with(
                json!({"starting_balances": {"BTC": "1", "USDT": "10"},
                "tolerance": {"BTC": "0", "USDT": "0.01"}, "interval_ms": 5000})
            )),
            []
        );
        refused(
            with(json!({"starting_balances": {"BTC": "1", "USDT": "10"},
                "tolerance": {"BTC": "0"}, "interval_ms": 5000})),
            "exchanges.binance_spot.reconcile.tolerance",
            &["one tolerance per reconciled asset"],
        );
        refused(
            with(json!({"starting_balances": {"BTC": "-1"},
                "tolerance": {"BTC": "0"}, "interval_ms": 5000})),
            "exchanges.binance_spot.reconcile.starting_balances.BTC",
            &["negative"],
        );
        refused(
            with(json!({"starting_balances": {"BTC": "1"},
                "tolerance": {"BTC": "0"}, "interval_ms": 10})),
            "exchanges.binance_spot.reconcile.interval_ms",
            &["1000"],
        );
        refused(
            |v| v["risk"]["stale_exposure_halt_ms"] = v["risk"]["feed_stale_ms"].clone(),
            "risk.stale_exposure_halt_ms",
            &["not above feed_stale_ms"],
        );
    }

    #[test]
    fn example_is_valid() {
        assert_eq!(violations(|_| {}), []);
        assert_eq!(violations(paper), []);
        assert_eq!(violations(imbalance_taker), []);
        assert_eq!(
            violations(|v| {
                paper(v);
                add_sim_exchange(v);
            }),
            []
        );
    }

    #[test]
    fn engine_host_is_host_name() {
        refused(
            |v| v["engine"]["host"] = json!("ny4_b"),
            "engine.host",
            &["ny4_b", "ny4_a"],
        );
    }

    #[test]
    fn engine_fields() {
        refused(
            |v| v["engine"]["bus"]["events"] = json!("udp://x"),
            "engine.bus.events",
            &["tcp://"],
        );
        refused(
            |v| v["engine"]["bus"]["hwm"] = json!(999),
            "engine.bus.hwm",
            &["999", "1000"],
        );
        refused(
            |v| v["engine"]["journal"]["fsync_interval_ms"] = json!(0),
            "engine.journal.fsync_interval_ms",
            &["0"],
        );
        refused(
            |v| v["engine"]["metrics"]["listen"] = json!("localhost"),
            "engine.metrics.listen",
            &["\"localhost\"", "address and port"],
        );
        refused(
            |v| {
                v["engine"]["flight_recorder"] =
                    json!({"dir": "state/flight", "file_mb": 8, "budget_mb": 4})
            },
            "engine.flight_recorder.budget_mb",
            &["4", "file_mb 8"],
        );
        let anomaly = |figures: serde_json::Value| {
            json!({
                "baseline": "baselines/e1.json",
                "baseline_sha256": "ab".repeat(32),
                "window_s": 60,
                "derivation": "a backtest",
                "figures": figures,
            })
        };
        refused(
            |v| {
                v["engine"]["anomaly"] =
                    anomaly(json!({"fill_rate": {"low": "0.1", "high": "0.5"}}))
            },
            "engine.anomaly.figures.fill_rate",
            &["not a figure this engine measures", "fill_ratio"],
        );
        refused(
            |v| {
                v["engine"]["anomaly"] =
                    anomaly(json!({"md_messages_per_s.nowhere": {"low": "1", "high": "5"}}))
            },
            "engine.anomaly.figures.md_messages_per_s.nowhere",
            &["not a figure this engine measures"],
        );
        refused(
            |v| {
                v["engine"]["anomaly"] =
                    anomaly(json!({"pnl_per_hour": {"low": "5", "high": "-5"}}))
            },
            "engine.anomaly.figures.pnl_per_hour",
            &["low 5 is above high -5"],
        );
        refused(
            |v| {
                v["engine"]["anomaly"] =
                    anomaly(json!({"fill_ratio": {"low": "0.1", "high": "0.5"}}));
                v["engine"]["anomaly"]["window_s"] = json!(1);
            },
            "engine.anomaly.window_s",
            &["1", "5..86400"],
        );
        refused(
            |v| v["engine"]["anomaly"] = anomaly(json!({})),
            "engine.anomaly.figures",
            &["is empty", "null"],
        );
        refused(
            |v| v["engine"]["metrics"]["tick_to_order_p99_alert_us"] = json!(0),
            "engine.metrics.tick_to_order_p99_alert_us",
            &["0", "1..10000000"],
        );
    }

    #[test]
    fn cpu_sets() {
        refused(
            |v| {
                v["host"]["cpu"]["isolated"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(16))
            },
            "host.cpu.isolated",
            &["16"],
        );
        refused(
            |v| v["host"]["cpu"]["housekeeping"] = json!([0, 1, 8, 9, 20]),
            "host.cpu.housekeeping",
            &["20", "cpu.cores"],
        );
        refused(
            |v| v["host"]["cpu"]["housekeeping"] = json!([0, 1, 8, 9, 7]),
            "host.cpu.housekeeping",
            &["7", "disjoint"],
        );
        refused(
            |v| v["host"]["cpu"]["smt_siblings"][1] = json!([1, 17]),
            "host.cpu.smt_siblings[1]",
            &["17"],
        );
        refused(
            |v| v["host"]["cpu"]["smt_siblings"][1] = json!([1, 1]),
            "host.cpu.smt_siblings[1]",
            &["twice"],
        );
        refused(
            |v| v["host"]["cpu"]["numa_nodes"] = json!([[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 99]]),
            "host.cpu.numa_nodes[1]",
            &["99"],
        );
        refused(
            |v| {
                v["host"]["cpu"]["cores"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(3))
            },
            "host.cpu.cores",
            &["3", "twice"],
        );
    }

    #[test]
    fn memory_fields() {
        refused(
            |v| v["host"]["memory"]["hugepage_kb"] = json!(4096),
            "host.memory.hugepage_kb",
            &["4096"],
        );
        refused(
            |v| v["host"]["memory"]["shm_budget_mb"] = json!(0),
            "host.memory.shm_budget_mb",
            &["0"],
        );
    }

    #[test]
    fn pinned_cores_exist() {
        refused(
            |v| v["host"]["threads"]["strategy"] = json!(99),
            "host.threads.strategy",
            &["core 99", "cpu.cores"],
        );
    }

    #[test]
    fn hot_threads_are_isolated() {
        refused(
            |v| v["host"]["threads"]["gateway"] = json!(9),
            "host.threads.gateway",
            &[
                "core 9 is not in cpu.isolated [2, 3, 4, 5, 6, 7]",
                "isolated cores",
            ],
        );
        refused(
            |v| v["host"]["threads"]["feeds"]["binance_spot"] = json!(13),
            "host.threads.feeds.binance_spot",
            &["core 13", "isolated"],
        );
    }

    #[test]
    fn fused_layout_runs_every_hot_stage_on_the_strategy_core() {
        // One thread: the feeds and the gateway name its core or nothing.
        let fused = |v: &mut Value| {
            v["host"]["threads"]["layout"] = json!("fused");
            v["host"]["threads"]["feeds"]["binance_spot"] = json!(3);
            v["host"]["threads"]["gateway"] = Value::Null;
        };
        assert_eq!(violations(fused), []);
        // Only the fused thread and housekeeping are placed (so no "one thread per core").
        let manifest: Manifest = serde_json::from_value({
            let mut v = example();
            fused(&mut v);
            v
        })
        .unwrap();
        let slots = manifest.host.threads.slots();
        let shown: Vec<String> = slots.iter().map(|s| format!("{s} {}", s.path())).collect();
        assert_eq!(
            shown,
            [
                "fused (feeds, strategy, gateway) host.threads.strategy",
                "housekeeping host.threads.housekeeping"
            ]
        );
        refused(
            |v| {
                fused(v);
                v["host"]["threads"]["gateway"] = json!(4);
            },
            "host.threads.gateway",
            &["core 4 is not the strategy's core 3", "layout fused"],
        );
        // The fused thread itself obeys the hot-thread rules.
        refused(
            |v| {
                fused(v);
                v["host"]["threads"]["strategy"] = json!(9);
                v["host"]["threads"]["feeds"]["binance_spot"] = Value::Null;
            },
            "host.threads.strategy",
            &["core 9 is not in cpu.isolated"],
        );
        // Written only when not the default: a pipeline manifest is unchanged.
        let text = serde_json::to_string(&manifest.host.threads).unwrap();
        assert!(text.contains(r#""layout":"fused""#), "{text}");
        let pipeline: Manifest = serde_json::from_value(example()).unwrap();
        let text = serde_json::to_string(&pipeline.host.threads).unwrap();
        assert!(!text.contains("layout"), "{text}");
    }

    #[test]
    fn layout_is_checked_against_the_host() {
        // Three hot threads, two isolated cores: the pipeline cannot be placed in live mode.
        let found = violations(|v| {
            v["host"]["cpu"]["isolated"] = json!([2, 3]);
            v["host"]["threads"]["gateway"] = json!(5);
        });
        let fits: Vec<_> = found
            .iter()
            .filter(|f| f.rule == "thread.layout_fits_host")
            .collect();
        assert_eq!(fits.len(), 1, "{found:#?}");
        assert_eq!(fits[0].path, "host.threads");
        assert!(
            fits[0].message.contains("3 hot threads")
                && fits[0].message.contains("isolates 2 core(s) [2, 3]")
                && fits[0].message.contains("layout: fused"),
            "{}",
            fits[0].message
        );
        // The same host takes the fused layout.
        assert_eq!(
            violations(|v| {
                v["host"]["cpu"]["isolated"] = json!([2, 3]);
                v["host"]["threads"]["layout"] = json!("fused");
                v["host"]["threads"]["feeds"]["binance_spot"] = json!(3);
                v["host"]["threads"]["gateway"] = json!(3);
            }),
            []
        );
    }

    #[test]
    fn housekeeping_thread_is_on_housekeeping_cores() {
        refused(
            |v| v["host"]["threads"]["housekeeping"] = json!(12),
            "host.threads.housekeeping",
            &["core 12", "cpu.housekeeping"],
        );
    }

    #[test]
    fn one_thread_per_core() {
        refused(
            |v| v["host"]["threads"]["gateway"] = json!(3),
            "host.threads.gateway",
            &["core 3", "host.threads.strategy"],
        );
    }

    #[test]
    fn hot_threads_avoid_smt_siblings() {
        refused(
            |v| {
                v["host"]["cpu"]["isolated"] = json!([2, 3, 4, 5, 6, 7, 10]);
                v["host"]["threads"]["strategy"] = json!(10);
            },
            "host.threads.strategy",
            &[
                "core 10",
                "SMT sibling of core 2",
                "host.threads.feeds.binance_spot",
            ],
        );
        // The housekeeping thread may share a physical core with anything.
        assert_eq!(
            violations(|v| {
                v["host"]["cpu"]["isolated"] = json!([2, 3, 4, 5, 6, 7, 8]);
                v["host"]["cpu"]["housekeeping"] = json!([0, 1, 9]);
                v["host"]["threads"]["strategy"] = json!(8);
            }),
            []
        );
    }

    #[test]
    fn live_mode_pins_every_thread() {
        refused(
            |v| v["host"]["threads"]["strategy"] = Value::Null,
            "host.threads.strategy",
            &["not pinned", "live"],
        );
        assert_eq!(
            violations(|v| {
                paper(v);
                v["host"]["threads"]["strategy"] = Value::Null;
                v["host"]["threads"]["feeds"]["binance_spot"] = Value::Null;
            }),
            []
        );
    }

    #[test]
    fn one_feed_per_exchange() {
        refused(
            |v| v["host"]["threads"]["feeds"] = json!({}),
            "host.threads.feeds",
            &["binance_spot"],
        );
        refused(
            |v| v["host"]["threads"]["feeds"]["kraken"] = json!(5),
            "host.threads.feeds.kraken",
            &["not an exchange"],
        );
    }

    #[test]
    fn ring_geometry() {
        refused(
            |v| v["host"]["rings"]["orders"]["slots"] = json!(3000),
            "host.rings.orders.slots",
            &["3000", "power of two"],
        );
        refused(
            |v| v["host"]["rings"]["orders"]["slots"] = json!(1),
            "host.rings.orders.slots",
            &["1 is not"],
        );
        refused(
            |v| {
                v["host"]["rings"]["fills"]["slots"] = json!(1 << 25);
                v["host"]["memory"]["hugepages"] = json!(4096);
            },
            "host.rings.fills.slots",
            &["33554432"],
        );
        refused(
            |v| v["host"]["rings"]["fills"]["slot_bytes"] = json!(100),
            "host.rings.fills.slot_bytes",
            &["100", "multiple of 64"],
        );
        refused(
            |v| v["host"]["rings"]["fills"]["slot_bytes"] = json!(131_072),
            "host.rings.fills.slot_bytes",
            &["131072"],
        );
    }

    #[test]
    fn rings_fit_the_budget() {
        // 65536*128 + 2*4096*128 + 3*4096 = 9449472 bytes; 4 hugepages of 2 MiB hold 8388608.
        refused(
            |v| v["host"]["memory"]["hugepages"] = json!(4),
            "host.rings",
            &["9449472", "budget is 8388608"],
        );
        refused(
            |v| {
                v["host"]["rings"]["backing"] = json!("shm");
                v["host"]["memory"]["shm_budget_mb"] = json!(8);
            },
            "host.rings",
            &["9449472", "shm budget is 8388608"],
        );
        // Exactly full is fine: 9 MiB of shm holds 9437184 bytes, 12288 short; 10 MiB is enough.
        assert_eq!(
            violations(|v| {
                v["host"]["rings"]["backing"] = json!("shm");
                v["host"]["memory"]["shm_budget_mb"] = json!(10);
            }),
            []
        );
    }

    #[test]
    fn venue_matches_market() {
        refused(
            |v| v["exchanges"]["binance_spot"]["market"] = json!("usdm"),
            "exchanges.binance_spot.market",
            &["usdm", "binance_spot"],
        );
    }

    #[test]
    fn sim_settings_iff_sim_venue() {
        refused(
            |v| {
                v["exchanges"]["binance_spot"]["sim"] =
                    json!({"capture": "x", "latency_us": 0, "speed": "1"});
            },
            "exchanges.binance_spot.sim",
            &["binance_spot"],
        );
        refused(
            |v| {
                paper(v);
                add_sim_exchange(v);
                v["exchanges"]["sim_usdm"]["sim"] = Value::Null;
            },
            "exchanges.sim_usdm.sim",
            &["null"],
        );
        refused(
            |v| {
                paper(v);
                add_sim_exchange(v);
                v["exchanges"]["sim_usdm"]["sim"]["speed"] = json!("0");
            },
            "exchanges.sim_usdm.sim.speed",
            &["positive"],
        );
    }

    #[test]
    fn leverage_and_margin_type_are_usdm_settings() {
        let usdm = |v: &mut Value| {
            paper(v);
            add_sim_exchange(v);
            v["exchanges"]["sim_usdm"]["instruments"]["ETHUSDT"]["leverage"] = json!(3);
            v["exchanges"]["sim_usdm"]["instruments"]["ETHUSDT"]["margin_type"] = json!("isolated");
        };
        assert_eq!(violations(usdm), vec![]);
        refused(
            |v| {
                usdm(v);
                v["exchanges"]["sim_usdm"]["instruments"]["ETHUSDT"]["leverage"] = json!(126);
            },
            "exchanges.sim_usdm.instruments.ETHUSDT.leverage",
            &["126", "1-125"],
        );
        refused(
            |v| {
                usdm(v);
                v["exchanges"]["sim_usdm"]["instruments"]["ETHUSDT"]["leverage"] = json!(0);
            },
            "exchanges.sim_usdm.instruments.ETHUSDT.leverage",
            &["0 is outside"],
        );
        refused(
            |v| v["exchanges"]["binance_spot"]["instruments"]["BTCUSDT"]["leverage"] = json!(2),
            "exchanges.binance_spot.instruments.BTCUSDT.leverage",
            &["spot instrument"],
        );
        refused(
            |v| {
                v["exchanges"]["binance_spot"]["instruments"]["BTCUSDT"]["margin_type"] =
                    json!("cross")
            },
            "exchanges.binance_spot.instruments.BTCUSDT.margin_type",
            &["cross on a spot instrument"],
        );
    }

    #[test]
    fn commission_prices_and_bnb() {
        refused(
            |v| {
                v["exchanges"]["binance_spot"]["commission_reference_prices"] = json!({"BNB": "0"});
            },
            "exchanges.binance_spot.commission_reference_prices.BNB",
            &["0 is not positive"],
        );
        let bnb = |balance: &'static str, price: &'static str| {
            move |v: &mut Value| {
                paper(v);
                add_sim_exchange(v);
                let sim = &mut v["exchanges"]["sim_usdm"]["sim"];
                sim["commission_asset"] = json!("bnb");
                sim["bnb_balance"] = json!(balance);
                sim["bnb_price"] = json!(price);
            }
        };
        assert_eq!(violations(bnb("0", "600")), []);
        refused(
            bnb("1", "0"),
            "exchanges.sim_usdm.sim.bnb_price",
            &["0 is not positive", "bnb"],
        );
        refused(
            bnb("-1", "600"),
            "exchanges.sim_usdm.sim.bnb_balance",
            &["-1 is negative"],
        );
    }

    #[test]
    fn credentials_are_references() {
        refused(
            |v| {
                v["exchanges"]["binance_spot"]["credentials"]["api_secret"] =
                    json!("hunter2hunter2");
            },
            "exchanges.binance_spot.credentials.api_secret",
            &["not a reference", "14 characters"],
        );
        let found = violations(|v| {
            v["exchanges"]["binance_spot"]["credentials"]["api_secret"] = json!("s3cr3t");
        });
        assert!(
            !found[0].message.contains("s3cr3t"),
            "a literal secret is echoed: {found:?}"
        );
        refused(
            |v| v["exchanges"]["binance_spot"]["credentials"]["api_key"] = json!("env:lower"),
            "exchanges.binance_spot.credentials.api_key",
            &["\"env:lower\""],
        );
        for good in ["env:_X", "env:KEY_2", "file:/etc/keys/k"] {
            assert!(is_secret_reference(good), "{good}");
        }
        for bad in [
            "env:",
            "env:2X",
            "env:A-B",
            "file:relative",
            "file:/",
            "FILE:/x",
            "",
        ] {
            assert!(!is_secret_reference(bad), "{bad}");
        }
    }

    #[test]
    fn live_mode_needs_credentials_and_real_venues() {
        refused(
            |v| v["exchanges"]["binance_spot"]["credentials"] = Value::Null,
            "exchanges.binance_spot.credentials",
            &["live"],
        );
        let found = violations(add_sim_exchange);
        let paths: Vec<_> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            ["exchanges.sim_usdm.credentials", "exchanges.sim_usdm.venue"]
        );
    }

    #[test]
    fn endpoints_and_rate_limits() {
        refused(
            |v| v["exchanges"]["binance_spot"]["endpoints"]["ws"] = json!("https://x"),
            "exchanges.binance_spot.endpoints.ws",
            &["wss://"],
        );
        refused(
            |v| v["exchanges"]["binance_spot"]["endpoints"]["rest"] = json!("wss://x"),
            "exchanges.binance_spot.endpoints.rest",
            &["https://"],
        );
        refused(
            |v| v["exchanges"]["binance_spot"]["rate_limits"]["orders_per_day"] = json!(0),
            "exchanges.binance_spot.rate_limits.orders_per_day",
            &["0"],
        );
    }

    #[test]
    fn order_entry_over_websocket() {
        let ws = |v: &mut Value| {
            v["exchanges"]["binance_spot"]["order_entry"] = json!("websocket");
            v["exchanges"]["binance_spot"]["endpoints"]["ws_api"] =
                json!("wss://ws-api.binance.com:443/ws-api/v3");
        };
        assert_eq!(violations(ws), []);
        refused(
            |v| v["exchanges"]["binance_spot"]["order_entry"] = json!("websocket"),
            "exchanges.binance_spot.endpoints.ws_api",
            &["missing", "order_entry websocket"],
        );
        refused(
            |v| {
                ws(v);
                v["exchanges"]["binance_spot"]["endpoints"]["ws_api"] = json!("https://x");
            },
            "exchanges.binance_spot.endpoints.ws_api",
            &["ws://"],
        );
        // The sim's own: on its ws address only (the example's second exchange, made spot).
        let on_sim = |url: &'static str| {
            violations(move |v| {
                paper(v);
                add_sim_exchange(v);
                let x = &mut v["exchanges"]["sim_usdm"];
                x["market"] = json!("spot");
                x["order_entry"] = json!("websocket");
                x["endpoints"]["ws_api"] = json!(url);
            })
        };
        assert_eq!(on_sim("ws://127.0.0.1:9000/ws-api/v3"), []);
        let found = on_sim("ws://127.0.0.1:9001/ws-api/v3");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].path, "exchanges.sim_usdm.endpoints.ws_api");
        assert!(
            found[0].message.contains("its ws address"),
            "{}",
            found[0].message
        );
        // USD-M (the sim's too): no WebSocket API order entry here.
        let found = violations(|v| {
            paper(v);
            add_sim_exchange(v);
            v["exchanges"]["sim_usdm"]["order_entry"] = json!("websocket");
            v["exchanges"]["sim_usdm"]["endpoints"]["ws_api"] =
                json!("ws://127.0.0.1:9000/ws-api/v3");
        });
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].path, "exchanges.sim_usdm.order_entry");
        assert!(
            found[0].message.contains("market usdm"),
            "{}",
            found[0].message
        );
        // OKX (among what else an OKX exchange must state): refused by this rule too.
        let found = violations(|v| {
            ws(v);
            v["exchanges"]["binance_spot"]["venue"] = json!("okx");
        });
        let rule: Vec<_> = found
            .iter()
            .filter(|f| f.rule == "exchange.order_entry")
            .collect();
        assert_eq!(rule.len(), 1, "{found:#?}");
        assert_eq!(rule[0].path, "exchanges.binance_spot.order_entry");
        assert!(rule[0].message.contains("venue okx"), "{}", rule[0].message);
    }

    #[test]
    fn instruments_are_positive() {
        refused(
            |v| {
                v["exchanges"]["binance_spot"]["instruments"]["BTCUSDT"]["min_notional"] =
                    json!("0")
            },
            "exchanges.binance_spot.instruments.BTCUSDT.min_notional",
            &["0 is not positive"],
        );
        // Fees may be negative (rebates).
        assert_eq!(
            violations(|v| {
                v["exchanges"]["binance_spot"]["instruments"]["BTCUSDT"]["maker_fee_bps"] =
                    json!("-1.5");
            }),
            []
        );
    }

    #[test]
    fn exchange_has_instruments() {
        let found = violations(|v| v["exchanges"]["binance_spot"]["instruments"] = json!({}));
        assert_eq!(found[0].path, "exchanges.binance_spot.instruments");
        // ... and the strategy's instrument is then missing from it.
        assert_eq!(found[1].path, "strategies.mm_btcusdt_spot.instruments[0]");
    }

    #[test]
    fn market_maker_signal_is_an_instrument_of_the_engine() {
        fn signal(v: &mut Value, exchange: &str, instrument: &str) {
            v["strategies"]["mm_btcusdt_spot"]["params"]["signal"] =
                json!({"exchange": exchange, "instrument": instrument, "basis_updates": 100});
        }
        refused(
            |v| signal(v, "okx", "BTCUSDT"),
            "strategies.mm_btcusdt_spot.params.signal.exchange",
            &["okx", "binance_spot"],
        );
        refused(
            |v| signal(v, "binance_spot", "ETHUSDT"),
            "strategies.mm_btcusdt_spot.params.signal.instrument",
            &["ETHUSDT", "binance_spot", "BTCUSDT"],
        );
        refused(
            |v| signal(v, "binance_spot", "BTCUSDT"),
            "strategies.mm_btcusdt_spot.params.signal.instrument",
            &["the quoted instrument itself"],
        );
        refused(
            |v| {
                paper(v);
                add_sim_exchange(v);
                signal(v, "sim_usdm", "ETHUSDT");
                v["strategies"]["mm_btcusdt_spot"]["params"]["signal"]["basis_updates"] = json!(0);
            },
            "strategies.mm_btcusdt_spot.params.signal.basis_updates",
            &["0"],
        );
        // Another exchange's instrument is a signal.
        assert_eq!(
            violations(|v| {
                paper(v);
                add_sim_exchange(v);
                signal(v, "sim_usdm", "ETHUSDT");
            }),
            []
        );
    }

    #[test]
    fn asset_limits_name_limited_instruments_once() {
        refused(
            |v| {
                v["risk"]["assets"] =
                    json!({"BTC": {"max_position": "0", "instruments": ["BTCUSDT"]}})
            },
            "risk.assets.BTC.max_position",
            &["not positive"],
        );
        refused(
            |v| {
                v["risk"]["assets"] =
                    json!({"BTC": {"max_position": "1", "instruments": ["BTCUSDT", "XBTUSD"]}})
            },
            "risk.assets.BTC.instruments[1]",
            &["XBTUSD", "risk.instruments"],
        );
        refused(
            |v| {
                v["risk"]["assets"] = json!({
                    "BTC": {"max_position": "1", "instruments": ["BTCUSDT"]},
                    "XBT": {"max_position": "1", "instruments": ["BTCUSDT"]},
                })
            },
            "risk.assets.XBT.instruments[0]",
            &["already counted in risk.assets.BTC"],
        );
        assert_eq!(
            violations(|v| {
                v["risk"]["assets"] =
                    json!({"BTC": {"max_position": "0.5", "instruments": ["BTCUSDT"]}})
            }),
            []
        );
    }

    #[test]
    fn strategy_exchange_exists() {
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("kraken"),
            "strategies.mm_btcusdt_spot.exchange",
            &["kraken", "binance_spot"],
        );
    }

    #[test]
    fn strategy_instruments_exist_and_have_limits() {
        refused(
            |v| {
                v["strategies"]["mm_btcusdt_spot"]["instruments"] = json!(["BTCUSDT", "ETHUSDT"]);
                v["risk"]["instruments"]["ETHUSDT"] = v["risk"]["instruments"]["BTCUSDT"].clone();
            },
            "strategies.mm_btcusdt_spot.instruments[1]",
            &["ETHUSDT", "binance_spot"],
        );
        refused(
            |v| v["risk"]["instruments"] = json!({}),
            "strategies.mm_btcusdt_spot.instruments[0]",
            &["BTCUSDT", "risk.instruments"],
        );
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["instruments"] = json!([]),
            "strategies.mm_btcusdt_spot.instruments",
            &["empty"],
        );
    }

    #[test]
    fn market_maker_params() {
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["params"]["quote_qty"] = json!("0.000015"),
            "strategies.mm_btcusdt_spot.params.quote_qty",
            &["0.000015", "lot_size 0.00001", "binance_spot:BTCUSDT"],
        );
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["params"]["max_inventory"] = json!("-0.05"),
            "strategies.mm_btcusdt_spot.params.max_inventory",
            &["-0.05 is not positive"],
        );
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["params"]["half_spread_ticks"] = json!(0),
            "strategies.mm_btcusdt_spot.params.half_spread_ticks",
            &["0"],
        );
    }

    #[test]
    fn imbalance_taker_params() {
        let with = |key: &'static str, value: Value| {
            move |v: &mut Value| {
                imbalance_taker(v);
                v["strategies"]["mm_btcusdt_spot"]["params"][key] = value;
            }
        };
        let at = |key: &str| format!("strategies.mm_btcusdt_spot.params.{key}");
        refused(
            with("max_slippage", json!("0.015")),
            &at("max_slippage"),
            &["tick_size 0.01"],
        );
        refused(
            with("order_qty", json!("0.0000101")),
            &at("order_qty"),
            &["lot_size"],
        );
        refused(with("levels", json!(0)), &at("levels"), &["1..50"]);
        refused(with("levels", json!(51)), &at("levels"), &["51"]);
        refused(
            with("threshold", json!("1")),
            &at("threshold"),
            &["between 0 and 1"],
        );
        refused(
            with("threshold", json!("0")),
            &at("threshold"),
            &["between 0 and 1"],
        );
    }

    fn model_taker(v: &mut Value) {
        v["strategies"]["mm_btcusdt_spot"] = json!({
            "kind": "model_taker", "exchange": "binance_spot", "instruments": ["BTCUSDT"],
            "params": {
                "model": {"path": "m.onnx", "sha256": "ab".repeat(32), "input_name": "features",
                          "input_width": 2, "output_name": "signal", "output_width": 1,
                          "opset": 15, "intra_op_threads": 1, "optimization": "basic"},
                "features": {"features": [{"name": "book_imbalance", "levels": 1},
                                          {"name": "inventory"}]},
                "buy_above": "0.6", "sell_below": "0.4", "order_qty": "0.001",
                "max_slippage": "0.5", "cooldown_ms": 100
            }
        });
    }

    #[test]
    fn model_taker_params() {
        assert_eq!(violations(model_taker), []);
        let with = |path: &'static [&'static str], value: Value| {
            move |v: &mut Value| {
                model_taker(v);
                let mut node = &mut v["strategies"]["mm_btcusdt_spot"]["params"];
                for key in path {
                    node = &mut node[*key];
                }
                *node = value;
            }
        };
        let at = |key: &str| format!("strategies.mm_btcusdt_spot.params.{key}");
        refused(
            with(&["model", "input_width"], json!(3)),
            &at("model.input_width"),
            &["3", "declares 2 features"],
        );
        refused(
            with(&["sell_below"], json!("0.6")),
            &at("sell_below"),
            &["0.6 is not below buy_above 0.6"],
        );
        // A regression signal in bps: any range, only the order matters.
        assert_eq!(
            violations(|v| {
                with(&["buy_above"], json!("-2"))(v);
                v["strategies"]["mm_btcusdt_spot"]["params"]["sell_below"] = json!("-7.5");
            }),
            []
        );
        refused(
            with(&["model", "sha256"], json!("AB".repeat(32))),
            &at("model.sha256"),
            &["lowercase hex"],
        );
        refused(
            with(&["model", "opset"], json!(22)),
            &at("model.opset"),
            &["1..21"],
        );
        refused(
            with(&["model", "intra_op_threads"], json!(0)),
            &at("model.intra_op_threads"),
            &["1..64"],
        );
        refused(
            with(&["model", "output_width"], json!(0)),
            &at("model.output_width"),
            &["minimum 1"],
        );
        refused(
            with(&["model", "path"], json!(" ")),
            &at("model.path"),
            &["empty"],
        );
        refused(
            with(&["max_slippage"], json!("0.005")),
            &at("max_slippage"),
            &["tick_size 0.01"],
        );
        refused(
            with(&["order_qty"], json!("0")),
            &at("order_qty"),
            &["not positive"],
        );
        refused(
            with(
                &["features"],
                json!({"features": [{"name": "book_imbalance", "levels": 0},
                                    {"name": "inventory"}]}),
            ),
            &at("features.features[0].levels"),
            &["1..50"],
        );
        refused(
            |v: &mut Value| {
                model_taker(v);
                v["strategies"]["mm_btcusdt_spot"]["instruments"] = json!(["BTCUSDT", "BTCUSDT"]);
            },
            "strategies.mm_btcusdt_spot.instruments",
            &["exactly one"],
        );
    }

    #[test]
    fn risk_fields() {
        refused(
            |v| v["risk"]["max_drawdown"] = json!("0"),
            "risk.max_drawdown",
            &["positive"],
        );
        refused(
            |v| v["risk"]["reducing_at_pct"] = json!(101),
            "risk.reducing_at_pct",
            &["101"],
        );
        refused(
            |v| v["risk"]["max_open_orders"] = json!(0),
            "risk.max_open_orders",
            &["0"],
        );
        refused(
            |v| v["risk"]["feed_stale_ms"] = json!(0),
            "risk.feed_stale_ms",
            &["0"],
        );
        refused(
            |v| v["risk"]["instruments"]["BTCUSDT"]["price_band_bps"] = json!(0),
            "risk.instruments.BTCUSDT.price_band_bps",
            &["0"],
        );
        // A negative position limit is also below the order limit and the strategy's inventory
        // target: all three are reported.
        let found =
            violations(|v| v["risk"]["instruments"]["BTCUSDT"]["max_position"] = json!("-1"));
        let rules: Vec<_> = found.iter().map(|v| (v.path.as_str(), v.rule)).collect();
        assert_eq!(
            rules,
            [
                (
                    "strategies.mm_btcusdt_spot.params.max_inventory",
                    "strategy.within_risk"
                ),
                ("risk.instruments.BTCUSDT.max_position", "risk.positive"),
                (
                    "risk.instruments.BTCUSDT.max_order_qty",
                    "risk.order_within_position"
                ),
            ]
        );
        assert_eq!(
            found[1].to_string(),
            "risk.instruments.BTCUSDT.max_position: -1 is not positive (must be > 0)"
        );
    }

    #[test]
    fn burst_covers_a_second() {
        refused(
            |v| v["risk"]["order_rate"]["burst"] = json!(5),
            "risk.order_rate.burst",
            &["5 is below per_second 10"],
        );
    }

    #[test]
    fn order_limits_within_position_limits() {
        refused(
            |v| v["risk"]["instruments"]["BTCUSDT"]["max_order_qty"] = json!("0.2"),
            "risk.instruments.BTCUSDT.max_order_qty",
            &["0.2 exceeds max_position 0.1"],
        );
        refused(
            |v| v["risk"]["instruments"]["BTCUSDT"]["max_order_notional"] = json!("8000.01"),
            "risk.instruments.BTCUSDT.max_order_notional",
            &["8000.01 exceeds max_position_notional 8000"],
        );
    }

    #[test]
    fn orders_fit_the_risk_limits() {
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["params"]["quote_qty"] = json!("0.02"),
            "strategies.mm_btcusdt_spot.params.quote_qty",
            &["0.02 exceeds risk.instruments.BTCUSDT.max_order_qty 0.01"],
        );
        refused(
            |v| v["strategies"]["mm_btcusdt_spot"]["params"]["max_inventory"] = json!("0.2"),
            "strategies.mm_btcusdt_spot.params.max_inventory",
            &["0.2 exceeds risk.instruments.BTCUSDT.max_position 0.1"],
        );
        refused(
            |v| {
                imbalance_taker(v);
                v["strategies"]["mm_btcusdt_spot"]["params"]["order_qty"] = json!("0.011");
            },
            "strategies.mm_btcusdt_spot.params.order_qty",
            &["0.011 exceeds", "max_order_qty 0.01"],
        );
    }

    #[test]
    fn nic_is_on_a_numa_node_of_the_host() {
        refused(
            |v| v["host"]["nic"]["numa_node"] = json!(1),
            "host.nic.numa_node",
            &["NUMA node 1", "lists 1"],
        );
    }

    /// Each fault gives exactly one violation, at `path`, of `rule`.
    #[test]
    fn every_violation_names_its_rule() {
        type Edit = fn(&mut Value);
        let cases: &[(Edit, &str, &str)] = &[
            (
                |v| v["engine"]["host"] = json!("x"),
                "engine.host",
                "engine.host_is_host",
            ),
            (
                |v| {
                    v["host"]["cpu"]["cores"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!(3))
                },
                "host.cpu.cores",
                "cpu.no_duplicates",
            ),
            (
                |v| {
                    v["host"]["cpu"]["isolated"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!(16))
                },
                "host.cpu.isolated",
                "cpu.subset_of_cores",
            ),
            (
                |v| v["host"]["cpu"]["housekeeping"] = json!([0, 1, 8, 9, 7]),
                "host.cpu.housekeeping",
                "cpu.isolated_not_housekeeping",
            ),
            (
                |v| v["host"]["cpu"]["smt_siblings"][1] = json!([1, 1]),
                "host.cpu.smt_siblings[1]",
                "cpu.smt_pair",
            ),
            (
                |v| v["host"]["threads"]["strategy"] = json!(99),
                "host.threads.strategy",
                "thread.core_exists",
            ),
            (
                |v| v["host"]["threads"]["gateway"] = json!(9),
                "host.threads.gateway",
                "thread.hot_core_isolated",
            ),
            (
                |v| v["host"]["threads"]["housekeeping"] = json!(12),
                "host.threads.housekeeping",
                "thread.housekeeping_core",
            ),
            (
                |v| v["host"]["threads"]["gateway"] = json!(3),
                "host.threads.gateway",
                "thread.core_used_once",
            ),
            (
                |v| v["host"]["threads"]["strategy"] = Value::Null,
                "host.threads.strategy",
                "thread.pinned_in_live",
            ),
            (
                |v| v["host"]["threads"]["feeds"] = json!({}),
                "host.threads.feeds",
                "thread.feed_per_exchange",
            ),
            (
                |v| v["host"]["rings"]["orders"]["slots"] = json!(3000),
                "host.rings.orders.slots",
                "ring.power_of_two",
            ),
            (
                |v| v["host"]["rings"]["fills"]["slot_bytes"] = json!(100),
                "host.rings.fills.slot_bytes",
                "ring.slot_bytes",
            ),
            (
                |v| v["host"]["memory"]["hugepages"] = json!(4),
                "host.rings",
                "ring.fits_budget",
            ),
            (
                |v| v["exchanges"]["binance_spot"]["market"] = json!("usdm"),
                "exchanges.binance_spot.market",
                "exchange.venue_market",
            ),
            (
                |v| v["exchanges"]["binance_spot"]["credentials"] = Value::Null,
                "exchanges.binance_spot.credentials",
                "live.credentials",
            ),
            (
                |v| v["strategies"]["mm_btcusdt_spot"]["params"]["quote_qty"] = json!("0.000015"),
                "strategies.mm_btcusdt_spot.params.quote_qty",
                "strategy.lot_multiple",
            ),
            (
                |v| v["strategies"]["mm_btcusdt_spot"]["exchange"] = json!("kraken"),
                "strategies.mm_btcusdt_spot.exchange",
                "strategy.exchange_declared",
            ),
            (
                |v| v["risk"]["order_rate"]["burst"] = json!(5),
                "risk.order_rate.burst",
                "risk.burst_at_least_rate",
            ),
            (
                |v| v["risk"]["instruments"]["BTCUSDT"]["max_order_notional"] = json!("9000"),
                "risk.instruments.BTCUSDT.max_order_notional",
                "risk.order_within_position",
            ),
        ];
        for (edit, path, rule) in cases {
            let found = violations(edit);
            let got: Vec<_> = found.iter().map(|v| (v.path.as_str(), v.rule)).collect();
            assert_eq!(got, [(*path, *rule)], "{found:#?}");
        }
    }

    #[test]
    fn two_faults_on_one_host_are_both_reported() {
        // A hot thread off the isolated cores and rings over the hugepage budget: two rules of
        // the same host section, neither hiding the other.
        let found = violations(|v| {
            v["host"]["threads"]["gateway"] = json!(9);
            v["host"]["memory"]["hugepages"] = json!(4);
        });
        let got: Vec<_> = found.iter().map(|v| (v.path.as_str(), v.rule)).collect();
        assert_eq!(
            got,
            [
                ("host.threads.gateway", "thread.hot_core_isolated"),
                ("host.rings", "ring.fits_budget"),
            ]
        );
    }

    #[test]
    fn every_violation_is_reported() {
        let found = violations(|v| {
            v["engine"]["host"] = json!("elsewhere");
            v["host"]["threads"]["gateway"] = json!(9);
            v["host"]["rings"]["orders"]["slots"] = json!(1000);
            v["exchanges"]["binance_spot"]["credentials"] = Value::Null;
            v["risk"]["order_rate"]["burst"] = json!(1);
            v["risk"]["instruments"]["BTCUSDT"]["max_order_qty"] = json!("1");
        });
        let paths: Vec<_> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "engine.host",
                "host.threads.gateway",
                "host.rings.orders.slots",
                "exchanges.binance_spot.credentials",
                "risk.order_rate.burst",
                "risk.instruments.BTCUSDT.max_order_qty",
            ]
        );
    }
}
