//! What `rt-engine check` prints about an accepted manifest: the facts an operator checks before
//! a rollout (where each thread runs, how much ring memory, which venues, strategies and limits).

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use rt_manifest::model::Mode;
use rt_manifest::{Manifest, Violation};
use serde_json::{json, Map, Value};

/// The human summary, one section per concern.
pub fn text(path: &Path, m: &Manifest, load_time: Duration) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut out, path, m, load_time);
    out
}

fn write_text(
    out: &mut String,
    path: &Path,
    m: &Manifest,
    load_time: Duration,
) -> std::fmt::Result {
    let host = &m.host;
    writeln!(out, "manifest   {}: accepted", path.display())?;
    writeln!(
        out,
        "engine     {} on host {} ({})",
        m.engine.id, host.name, host.address
    )?;
    writeln!(out, "deployment {}, mode {}", m.deployment.name, mode(m))?;
    writeln!(out, "hash       {} (verified)", m.content_sha256)?;
    writeln!(
        out,
        "load time  {} µs (parse, hash, types, rules)",
        load_time.as_micros()
    )?;
    let provenance = &m.provenance;
    writeln!(
        out,
        "compiler   {}, git commit {}{}",
        provenance.compiler,
        provenance.git_commit.as_deref().unwrap_or("unknown"),
        match provenance.git_dirty {
            Some(true) => " (dirty)",
            Some(false) => "",
            None => " (dirty: unknown)",
        }
    )?;

    writeln!(out, "\nthreads")?;
    for slot in host.threads.slots() {
        let core = match slot.core {
            Some(core) => format!("core {core}"),
            None => "unpinned".to_owned(),
        };
        let role = slot.role.as_str();
        writeln!(out, "  {:<24} {core:<10} {role}", slot.to_string())?;
    }

    let rings = &host.rings;
    writeln!(out, "\nrings ({})", rings.backing.as_str())?;
    for (name, ring) in rings.named() {
        writeln!(
            out,
            "  {name:<12} {:>9} slots x {:>5} B  {:>12} B",
            ring.slots,
            ring.slot_bytes,
            ring.bytes()
        )?;
    }
    let (total, budget) = (rings.total_bytes(), host.ring_budget_bytes());
    writeln!(
        out,
        "  total {total} B ({}, with a 4096 B header per ring) of a {budget} B budget ({}), \
         {:.1}% used",
        human_bytes(total),
        human_bytes(budget),
        percent(total, budget)
    )?;

    writeln!(out, "\nexchanges")?;
    for (name, exchange) in &m.exchanges {
        let credentials = match &exchange.credentials {
            Some(c) => format!("{} / {}", c.api_key, c.api_secret),
            None => "none".to_owned(),
        };
        writeln!(
            out,
            "  {name}  venue {}, market {}, on gap {}, credentials {credentials}",
            exchange.venue.as_str(),
            exchange.market.as_str(),
            exchange.on_gap.as_str(),
        )?;
        if let Some(sim) = &exchange.sim {
            writeln!(
                out,
                "    sim: capture {}, speed {}, latency {} µs",
                sim.capture, sim.speed, sim.latency_us
            )?;
        }
        for (symbol, i) in &exchange.instruments {
            writeln!(
                out,
                "    {symbol:<12} tick {}  lot {}  min notional {}  fees maker {} / taker {} bps",
                i.tick_size, i.lot_size, i.min_notional, i.maker_fee_bps, i.taker_fee_bps
            )?;
        }
    }

    writeln!(out, "\nstrategies")?;
    for (name, strategy) in &m.strategies {
        writeln!(
            out,
            "  {name}  {} on {} [{}]",
            strategy.params.kind().as_str(),
            strategy.exchange,
            strategy.instruments.join(", ")
        )?;
        writeln!(out, "    {}", params_line(strategy))?;
    }

    let risk = &m.risk;
    let kill = &risk.kill_switch;
    writeln!(out, "\nrisk")?;
    writeln!(
        out,
        "  kill switch  {}, {}",
        if kill.enabled { "armed" } else { "DISARMED" },
        if kill.cancel_on_trigger {
            "cancels orders on trigger"
        } else {
            "keeps orders on trigger"
        }
    )?;
    writeln!(
        out,
        "  loss limits  daily {}, drawdown {}, gross exposure {}, REDUCING at {}%",
        risk.max_daily_loss, risk.max_drawdown, risk.max_gross_exposure, risk.reducing_at_pct
    )?;
    writeln!(
        out,
        "  orders       max open {}, rate {}/s burst {}, feed stale after {} ms",
        risk.max_open_orders, risk.order_rate.per_second, risk.order_rate.burst, risk.feed_stale_ms
    )?;
    for (symbol, l) in &risk.instruments {
        writeln!(
            out,
            "  {symbol:<12} max position {}, max order {}, max order notional {}, max position \
             notional {}, price band {} bps",
            l.max_position,
            l.max_order_qty,
            l.max_order_notional,
            l.max_position_notional,
            l.price_band_bps
        )?;
    }
    Ok(())
}

/// The same facts as [`text`], as one JSON object.
pub fn json(path: &Path, m: &Manifest, load_time: Duration) -> Value {
    let host = &m.host;
    let threads: Vec<Value> = host
        .threads
        .slots()
        .iter()
        .map(|slot| {
            json!({
                "thread": slot.to_string(),
                "path": slot.path(),
                "core": slot.core,
                "role": slot.role.as_str(),
            })
        })
        .collect();
    let rings: Vec<Value> = host
        .rings
        .named()
        .iter()
        .map(|(name, ring)| {
            json!({
                "name": name,
                "slots": ring.slots,
                "slot_bytes": ring.slot_bytes,
                "bytes": ring.bytes(),
            })
        })
        .collect();
    let exchanges: Map<String, Value> = m
        .exchanges
        .iter()
        .map(|(name, e)| {
            let value = json!({
                "venue": e.venue,
                "market": e.market,
                "on_gap": e.on_gap,
                "credentials": e.credentials,
                "sim": e.sim,
                "instruments": e.instruments,
            });
            (name.clone(), value)
        })
        .collect();
    let strategies: Map<String, Value> = m
        .strategies
        .iter()
        .map(|(name, s)| (name.clone(), json!(s)))
        .collect();
    json!({
        "manifest": path.display().to_string(),
        "accepted": true,
        "engine_id": m.engine.id,
        "host": host.name,
        "address": host.address,
        "deployment": m.deployment.name,
        "mode": m.deployment.mode,
        "content_sha256": m.content_sha256,
        "hash_verified": true,
        "load_us": u64::try_from(load_time.as_micros()).unwrap_or(u64::MAX),
        "provenance": m.provenance,
        "threads": threads,
        "rings": {
            "backing": host.rings.backing,
            "rings": rings,
            "total_bytes": host.rings.total_bytes(),
            "budget_bytes": host.ring_budget_bytes(),
        },
        "exchanges": exchanges,
        "strategies": strategies,
        "risk": m.risk,
    })
}

/// `--format json` on a refused manifest: the problems, for tools (stderr has the same in text).
pub fn refusal_json(path: &Path, problems: &[Violation]) -> Value {
    let problems: Vec<Value> = problems
        .iter()
        .map(|p| json!({"path": p.path, "message": p.message}))
        .collect();
    json!({
        "manifest": path.display().to_string(),
        "accepted": false,
        "problems": problems,
    })
}

fn params_line(strategy: &rt_manifest::model::Strategy) -> String {
    use rt_manifest::model::StrategyParams;
    match &strategy.params {
        StrategyParams::MarketMaker(p) => format!(
            "reference {}, half spread {} ticks, quote qty {}, max inventory {}, skew {} ticks, \
             requote at {} ticks",
            p.reference.as_str(),
            p.half_spread_ticks,
            p.quote_qty,
            p.max_inventory,
            p.inventory_skew_ticks,
            p.requote_threshold_ticks
        ),
        StrategyParams::ImbalanceTaker(p) => format!(
            "levels {}, threshold {}, order qty {}, max slippage {}, cooldown {} ms",
            p.levels, p.threshold, p.order_qty, p.max_slippage, p.cooldown_ms
        ),
        StrategyParams::ModelTaker(p) => format!(
            "model {} (sha256 {} verified, {} features in, {} out, opset {}, {} intra-op \
             threads, optimization {}), buy above {}, sell below {}, order qty {}, max slippage \
             {}, cooldown {} ms",
            p.model.path,
            &p.model.sha256[..p.model.sha256.len().min(12)],
            p.model.input_width,
            p.model.output_width,
            p.model.opset,
            p.model.intra_op_threads,
            p.model.optimization.as_str(),
            p.buy_above,
            p.sell_below,
            p.order_qty,
            p.max_slippage,
            p.cooldown_ms
        ),
    }
}

/// Live mode is shouted: it is the one that trades real money.
fn mode(m: &Manifest) -> &'static str {
    match m.deployment.mode {
        Mode::Paper => "paper",
        Mode::Live => "LIVE",
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        f64::INFINITY
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(9_449_472), "9.0 MiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
