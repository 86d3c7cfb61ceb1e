//! Runs the sim venue of a manifest until Ctrl-C / SIGTERM (or `--secs N`), then prints the
//! counters: `cargo run -p rt-sim --example serve -- MANIFEST EXCHANGE [--speed X]
//! [--fault FRAME:QUERY]... [--exit-at-end] [--secs N]`. The engine's `rt-engine sim` is the
//! supported front end; this is for trying the sim alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rt_sim::{SimOptions, Speed};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(manifest), Some(exchange)) = (args.next(), args.next()) else {
        bail!("usage: serve MANIFEST EXCHANGE [--speed X] [--fault FRAME:QUERY]... [--exit-at-end] [--secs N]");
    };
    let mut opts = SimOptions::default();
    let mut secs = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--speed" => opts.speed = Some(value()?.parse::<Speed>()?),
            "--fault" => opts.faults.push(value()?.parse()?),
            "--exit-at-end" => opts.exit_at_end = true,
            "--secs" => secs = Some(value()?.parse::<u64>()?),
            other => bail!("unknown option {other}"),
        }
    }
    let manifest = rt_sim::load_manifest(std::path::Path::new(&manifest))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the signal handler");
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            let timer = async {
                match secs {
                    Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = timer => {}
            }
        });
        flag.store(true, Ordering::Relaxed);
    });
    let report = rt_sim::run_blocking(&manifest, &exchange, opts, stop)?;
    println!("{report:?}");
    Ok(())
}
