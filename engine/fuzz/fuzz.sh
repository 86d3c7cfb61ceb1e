#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders (`make fuzz`, see engine/fuzz/README.md): AFL++ through
# cargo-afl on the stable toolchain. cargo-afl instruments with rustc's own SanitizerCoverage
# pass, so no AFL++ LLVM plugin is needed (the system's LLVM differs from rustc's).
#
# Installs what it needs under target/fuzz-tools (once; idempotent), builds the targets into
# target/fuzz, then runs each target named in FUZZ_TARGETS, one after another (never two fuzzers
# at once: the machine is shared), from its seed corpus engine/fuzz/corpus/<t>, until it has made
# FUZZ_EXECS executions or FUZZ_SECONDS have passed, whichever comes first.
# Prints executions, time, crashes and hangs per target; exits 1 if any target crashed or hung
# (the inputs are under target/fuzz/out/<target>/default/{crashes,hangs}).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_EXECS=${FUZZ_EXECS:-1000000}
FUZZ_TARGETS=${FUZZ_TARGETS:-binance_market binance_user_stream binance_rest okx okx_orders kraken manifest journal}
CARGO_AFL_VERSION=0.18.2
TOOLS=$ROOT/target/fuzz-tools
OUT=$ROOT/target/fuzz/out
# cargo-afl keeps AFL++ (its source, then the built afl-fuzz and runtime) under XDG_DATA_HOME.
export XDG_DATA_HOME=$TOOLS/share
export PATH=$TOOLS/bin:$HOME/.cargo/bin:$PATH

if ! [[ -x $TOOLS/bin/cargo-afl ]] || ! grep -q "^\"cargo-afl $CARGO_AFL_VERSION " "$TOOLS/.crates.toml"; then
    echo "fuzz: installing cargo-afl $CARGO_AFL_VERSION into target/fuzz-tools"
    cargo install --quiet --locked --force --root "$TOOLS" cargo-afl --version "$CARGO_AFL_VERSION"
fi
if ! compgen -G "$XDG_DATA_HOME/afl.rs/rustc-$(rustc --version | cut -d' ' -f2)-*/afl.rs-$CARGO_AFL_VERSION/afl/bin/afl-fuzz" >/dev/null; then
    echo "fuzz: building AFL++ (no LLVM plugins) into target/fuzz-tools"
    cargo afl config --build --force
fi

# Not the shared target/debug: cargo-afl's RUSTFLAGS would rebuild everything there.
CARGO_TARGET_DIR=$ROOT/target/fuzz cargo afl build --quiet -p rt-fuzz --features afl --bins

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
summary=()
failed=0
for target in $FUZZ_TARGETS; do
    out=$OUT/$target
    rm -rf "$out"
    mkdir -p "$out"
    # The journal target's scratch files: in memory where there is a tmpfs (its fsyncs are then
    # free), removed after the run.
    scratch=$(mktemp -d /dev/shm/rt-fuzz.XXXXXX 2>/dev/null || mktemp -d "$ROOT/target/fuzz/tmp.XXXXXX")
    echo "fuzz: $target: up to $FUZZ_EXECS executions or ${FUZZ_SECONDS}s"
    TMPDIR=$scratch cargo afl fuzz -V "$FUZZ_SECONDS" -E "$FUZZ_EXECS" \
        -i "$ROOT/engine/fuzz/corpus/$target" -o "$out" \
        -- "$ROOT/target/fuzz/debug/$target" >"$out/afl.log" 2>&1 || {
        tail -n 30 "$out/afl.log" >&2
        echo "fuzz: afl-fuzz failed on $target (log: target/fuzz/out/$target/afl.log)" >&2
        rm -rf "$scratch"
        exit 2
    }
    rm -rf "$scratch"
    stats=$out/default/fuzzer_stats
    stat() { sed -n "s/^$1 *: *//p" "$stats"; }
    crashes=$(stat saved_crashes)
    hangs=$(stat saved_hangs)
    line=$(printf '%-20s executions %10s  time %5ss  execs/s %8s  corpus %5s  crashes %s  hangs %s' \
        "$target" "$(stat execs_done)" "$(stat run_time)" "$(stat execs_per_sec)" \
        "$(stat corpus_count)" "$crashes" "$hangs")
    echo "fuzz: $line"
    summary+=("$line")
    if [[ "$crashes" != 0 || "$hangs" != 0 ]]; then
        failed=1
        ls "$out"/default/crashes "$out"/default/hangs 2>/dev/null | sed 's/^/    /'
    fi
done

echo "fuzz: summary ($(uname -m), $(nproc) cores, FUZZ_EXECS=$FUZZ_EXECS, FUZZ_SECONDS=$FUZZ_SECONDS)"
printf '  %s\n' "${summary[@]}"
exit "$failed"
