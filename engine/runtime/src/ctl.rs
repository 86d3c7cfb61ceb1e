//! `rt-engine ctl`: the control client (the health gate of a roll-out uses `status` with
//! expectations). One REQ per attempt; a timed-out socket is dropped, never reused.

use std::time::{Duration, Instant};

use prost::Message as _;

use crate::bus::pb;

/// What to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Status,
    Pause,
    Resume,
    Flatten,
    Kill,
    Tighten { limit: String, value: String },
}

/// Expectations of a status (the health gate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    pub hash: Option<String>,
    /// active | reducing | halted
    pub state: Option<String>,
}

/// The exit codes of `ctl`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_UNREACHABLE: u8 = 1;
pub const EXIT_REFUSED: u8 = 2;
pub const EXIT_UNHEALTHY: u8 = 3;

fn request(ask: &Ask) -> pb::ControlRequest {
    use pb::control_request::Command as C;
    pb::ControlRequest {
        command: Some(match ask {
            Ask::Status => C::Status(pb::StatusRequest {}),
            Ask::Pause => C::Pause(pb::PauseRequest {}),
            Ask::Resume => C::Resume(pb::ResumeRequest {}),
            Ask::Flatten => C::Flatten(pb::FlattenRequest {}),
            Ask::Kill => C::Kill(pb::KillRequest {}),
            Ask::Tighten { limit, value } => C::Tighten(pb::TightenRequest {
                limit: limit.clone(),
                value: value.clone(),
            }),
        }),
    }
}

/// One request/reply with a timeout; `Err` when the engine cannot be reached in time.
pub fn call(endpoint: &str, ask: &Ask, timeout: Duration) -> Result<pb::ControlReply, String> {
    let ctx = zmq::Context::new();
    let socket = ctx
        .socket(zmq::REQ)
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let ms = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    socket.set_linger(0).map_err(|e| e.to_string())?;
    socket.set_rcvtimeo(ms).map_err(|e| e.to_string())?;
    socket.set_sndtimeo(ms).map_err(|e| e.to_string())?;
    socket
        .connect(endpoint)
        .map_err(|e| format!("{endpoint}: cannot connect: {e}"))?;
    socket
        .send(request(ask).encode_to_vec(), 0)
        .map_err(|e| format!("{endpoint}: cannot send: {e}"))?;
    let bytes = socket.recv_bytes(0).map_err(|e| match e {
        zmq::Error::EAGAIN => format!("{endpoint}: no answer within {} ms", timeout.as_millis()),
        e => format!("{endpoint}: {e}"),
    })?;
    pb::ControlReply::decode(bytes.as_slice()).map_err(|e| format!("{endpoint}: a bad reply: {e}"))
}

fn state_name(kind: i32) -> &'static str {
    match pb::RiskStateKind::try_from(kind) {
        Ok(pb::RiskStateKind::Active) => "active",
        Ok(pb::RiskStateKind::Reducing) => "reducing",
        Ok(pb::RiskStateKind::Halted) => "halted",
        _ => "unknown",
    }
}

/// Why a status does not meet the expectations (`None`: it does).
pub fn unmet(status: &pb::Status, expect: &Expect) -> Option<String> {
    if let Some(h) = &expect.hash {
        if &status.manifest_sha256 != h {
            return Some(format!(
                "manifest {} is running, {} expected",
                status.manifest_sha256, h
            ));
        }
    }
    if let Some(s) = &expect.state {
        let got = state_name(status.risk_state);
        if got != s {
            return Some(format!("risk state is {got}, {s} expected"));
        }
    }
    None
}

/// The reply as JSON (decimal strings stay strings).
pub fn to_json(reply: &pb::ControlReply) -> serde_json::Value {
    let s = reply.status.clone().unwrap_or_default();
    serde_json::json!({
        "ok": reply.ok,
        "error": reply.error,
        "status": {
            "engine_id": s.engine_id,
            "host": s.host,
            "deployment": s.deployment,
            "mode": s.mode,
            "manifest_sha256": s.manifest_sha256,
            "risk_state": state_name(s.risk_state),
            "paused": s.paused,
            "uptime_ms": s.uptime_ms,
            "open_orders": s.open_orders,
            "equity": s.equity,
            "positions": s.positions.iter().map(|p| serde_json::json!({
                "exchange": p.exchange, "symbol": p.symbol, "qty": p.qty,
                "avg_entry_price": p.avg_entry_price, "realised_pnl": p.realised_pnl,
                "unrealised_pnl": p.unrealised_pnl, "fees": p.fees,
            })).collect::<Vec<_>>(),
            "feeds": s.feeds.iter().map(|f| serde_json::json!({
                "exchange": f.exchange,
                "state": pb::FeedStateKind::try_from(f.state).map(|k| k.as_str_name()).unwrap_or("unknown"),
                "reconnects": f.reconnects, "gaps": f.gaps, "malformed": f.malformed,
                "ring_overflows": f.ring_overflows, "snapshots": f.snapshots,
            })).collect::<Vec<_>>(),
            "last_event_seq": s.last_event_seq,
            "pid": s.pid,
        }
    })
}

/// Runs `ctl`: prints the reply as JSON; with `wait`, status is retried until the engine is
/// reachable and meets `expect`, or the deadline passes. The exit code.
pub fn run(endpoint: &str, ask: &Ask, expect: &Expect, timeout: Duration, wait: Duration) -> u8 {
    let deadline = Instant::now() + wait;
    let mut last_problem;
    loop {
        match call(endpoint, ask, timeout) {
            Ok(reply) => {
                println!("{}", to_json(&reply));
                if !reply.ok {
                    eprintln!("refused: {}", reply.error);
                    return EXIT_REFUSED;
                }
                let status = reply.status.unwrap_or_default();
                match unmet(&status, expect) {
                    None => return EXIT_OK,
                    Some(p) => last_problem = (EXIT_UNHEALTHY, p),
                }
            }
            Err(e) => last_problem = (EXIT_UNREACHABLE, e),
        }
        if *ask != Ask::Status || Instant::now() >= deadline {
            eprintln!("{}", last_problem.1);
            return last_problem.0;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
