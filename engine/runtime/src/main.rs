//! rt-engine: the py_rt engine binary.
//!
//! `rt-engine check --manifest FILE` loads a manifest exactly as the engine will at start-up and
//! prints what it would run (threads and cores, rings, venues, strategies, risk), or every reason
//! the manifest is refused. `rt-engine schema` prints the manifest's JSON Schema.
//!
//! Exit codes: 0 accepted, 1 the file could not be read (or output failed), 2 refused (or a usage
//! error, as clap reports it).

mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "rt-engine", version, about = "The py_rt trading engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and validate a manifest; print what the engine would run, or why it is refused.
    Check {
        /// The manifest JSON file (build/<deployment>/<host>.manifest.json).
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema (draft 2020-12) of the manifest.
    Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// A refused manifest.
const EXIT_REFUSED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Check { manifest, format } => check(&manifest, format, &mut stdout),
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&rt_manifest::schema())?;
            writeln!(stdout, "{schema}").context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(path: &Path, format: Format, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let start = Instant::now();
    let loaded = rt_manifest::load(&text);
    let load_time = start.elapsed();

    let manifest = match loaded {
        Ok(manifest) => manifest,
        Err(err) => {
            let problems = err.violations();
            // stderr always gets the human form; --format json adds a machine form on stdout.
            let mut report = format!("error: {}: refused:\n", path.display());
            for problem in &problems {
                report.push_str(&format!("  - {problem}\n"));
            }
            eprint!("{report}");
            if format == Format::Json {
                let json = summary::refusal_json(path, &problems);
                writeln!(out, "{json}").context("cannot write to stdout")?;
            }
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };
    let shown = match format {
        Format::Text => summary::text(path, &manifest, load_time),
        Format::Json => summary::json(path, &manifest, load_time).to_string(),
    };
    writeln!(out, "{}", shown.trim_end()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
