"""`appliance optimize`: studies as config, trials on the Rust core, walk-forward, the overlay.

Studies run in a copy of the project (conf/ and the bundled capture) so that overlays, the
study storage and the native-file cache land in a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from appliance.config.compose import Composed
from appliance.config.diagnostics import ConfigError
from appliance.research import data, optimize
from appliance.research.study import StudyPlan, load_study
from tests.conftest import ROOT

STUDIES = sorted(p.stem for p in (ROOT / "conf" / "study").glob("*.yaml"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("tuned"))
    (tmp_path / "data" / "binance").mkdir(parents=True)
    shutil.copy(ROOT / "data/binance/spot_btcusdt_20240808.gz", tmp_path / "data/binance")
    return tmp_path


def appliance(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=root,
    )


def _load(name: str, study: list[str] | None = None) -> tuple[StudyPlan, Composed]:
    return load_study(
        ROOT, name, study or [], [], time_range=data.time_range, parse_time=data.parse_utc_ns
    )


@pytest.mark.parametrize("name", STUDIES)
def test_every_shipped_study_is_valid(name: str) -> None:
    plan, base = _load(name)
    assert plan.folds, "a shipped study has at least one fold on the bundled data"
    for fold in plan.folds:
        assert fold.train[1] == fold.test[0] and fold.test[1] <= plan.data_range[1]
    assert {p.key.split(".")[0] for p in plan.params} <= set(base.data)


def test_the_search_space_is_read_with_hydras_sweep_syntax() -> None:
    plan, _ = _load("taker_paper_taker")
    by_key = {p.key.rsplit(".", 1)[1]: p for p in plan.params}
    assert (by_key["levels"].kind, by_key["levels"].low, by_key["levels"].high) == ("int", 1, 10)
    assert by_key["threshold"].kind == "float" and by_key["threshold"].decimal
    assert by_key["cooldown_ms"].grid() == list(range(100, 3100, 250))
    assert by_key["threshold"].override(0.123456789) == (
        "strategies.imb_btcusdt.params.threshold='0.12345679'"
    )


BAD = [
    (
        ["study.search_space=['strategies.mm_btcusdt.params.no_such=range(1,3)']"],
        "search_space[0]",
        "study.search_space.unknown_key",
    ),
    (
        ["study.search_space=['strategies.mm_btcusdt.params.half_spread_ticks=range(5,5)']"],
        "search_space[0]",
        "study.search_space.empty",
    ),
    (
        ["study.objectives=[{metric:alpha,direction:maximize}]"],
        "objectives[0].metric",
        "study.metric.unknown",
    ),
    (["study.walk_forward.train=1h"], "walk_forward", "study.folds.fit_data"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "--storage", "study.storage.reachable"),
]


@pytest.mark.parametrize(("args", "path", "rule"), BAD, ids=[b[2] for b in BAD])
def test_bad_input_is_a_diagnostic_and_nothing_is_written(
    project: Path, args: list[str], path: str, rule: str
) -> None:
    run = appliance(project, "optimize", "study=mm_paper_local", *args, "--format", "json")
    assert run.returncode == 2, run.stderr
    out = json.loads(run.stdout)
    found = [d for d in out["diagnostics"] if d["rule"] == rule]
    assert found, out
    assert found[0]["path"] == path
    assert found[0]["source"], "every diagnostic names its file or the command line"
    assert not (project / "conf" / "tuned").exists()
    assert not (project / "state" / "studies").exists()


def test_an_unknown_study_lists_the_studies(project: Path) -> None:
    run = appliance(project, "optimize", "study=nope")
    assert run.returncode == 2
    assert "no study 'nope' in conf/study/" in run.stderr and "mm_paper_local" in run.stderr


def _values(db: Path) -> list[tuple[int, str, float | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.number, t.state, v.value from trials t left join trial_values v "
            "on v.trial_id = t.trial_id order by t.number"
        ).fetchall()
    return [(int(n), str(s), v) for n, s, v in rows]


def test_same_seed_same_trials_and_overlay(project: Path) -> None:
    """Determinism: one worker, the same study, seed and data, twice."""
    args = ["optimize", "study=mm_paper_local", "--trials", "6", "--no-report", "--seed", "3"]
    first = appliance(project, *args, "--storage", f"sqlite:///{project}/one.db")
    assert first.returncode == 0, first.stderr
    overlay = (project / "conf/tuned/mm_paper_local.yaml").read_bytes()
    second = appliance(project, *args, "--storage", f"sqlite:///{project}/two.db")
    assert second.returncode == 0, second.stderr
    assert (project / "conf/tuned/mm_paper_local.yaml").read_bytes() == overlay
    one, two = _values(project / "one.db"), _values(project / "two.db")
    assert one == two and len(one) == 6
    assert "walk-forward" in first.stdout and "overlay: conf/tuned/mm_paper_local.yaml" in (
        first.stdout
    )


def test_overlay_goes_through_plan_with_exactly_the_tuned_keys(project: Path) -> None:
    run = appliance(
        project, "optimize", "study=mm_paper_local", "--trials", "5", "--format", "json"
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    tuned = {o.split("=", 1)[0] for o in out["overlay"]["overrides"]}
    text = (project / "conf/tuned/mm_paper_local.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert "sha256:" in text and "out-of-sample:" in text and "scored manifest:" in text
    header = yaml.safe_load(text)
    assert set(_leaves(header)) == tuned
    assert (project / "reports/studies/mm_paper_local/study.html").stat().st_size > 10_000
    assert (project / "reports/studies/mm_paper_local/study.png").is_file()
    assert out["folds"] and all(f["choices"] for f in out["folds"])
    # Review: against the deployment without the overlay, the plan lists the tuned keys that
    # differ from it, and nothing else.
    assert appliance(project, "compile").returncode == 0
    plan = appliance(
        project, "plan", "+tuned=mm_paper_local", "--against", "build/paper_local", "-f", "json"
    )
    assert plan.returncode == 0, plan.stderr
    changes = json.loads(plan.stdout)["changes"]
    base = yaml.safe_load((ROOT / "conf/strategy/mm_btcusdt_sim.yaml").read_text())["params"]
    changed = {k for k in tuned if str(_get(header, k)) != str(base[k.rsplit(".", 1)[1]])}
    assert {c["path"] for c in changes} == changed
    assert all(c["source_after"] == "conf/tuned/mm_paper_local.yaml" for c in changes)


def _leaves(tree: dict[str, object], prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out += _leaves(v, key + ".") if isinstance(v, dict) else [key]
    return out


def _get(tree: dict[str, object], key: str) -> object:
    node: object = tree
    for part in key.split("."):
        assert isinstance(node, dict)
        node = node[part]
    return node


def test_an_invalid_combination_is_a_failed_trial_with_its_diagnostic(project: Path) -> None:
    # 0.000001 BTC is below the sim venue's lot size: the compiler refuses that trial.
    run = appliance(
        project,
        "optimize",
        "study=mm_paper_local",
        "study.search_space=[\"strategies.mm_btcusdt.params.quote_qty=choice('0.001','0.000001')\"]",
        "study.sampler.kind=grid",
        "--trials",
        "2",
        "--no-report",
        "--format",
        "json",
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["trials"] == {"complete": 1, "pruned": 0, "fail": 1}
    import optuna

    study = optuna.load_study(
        study_name=out["optuna_study"],
        storage=f"sqlite:///{project}/state/studies/mm_paper_local.db",
    )
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed[0].params["strategies.mm_btcusdt.params.quote_qty"] == "0.000001"
    diags = failed[0].user_attrs["diagnostics"]
    assert diags and diags[0]["path"].startswith("strategies.mm_btcusdt.params.quote_qty")


def test_storage_errors_never_echo_a_password() -> None:
    assert optimize.shown_storage("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    with pytest.raises(ConfigError) as err:
        optimize.open_storage("postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in str(err.value.diagnostics)


TUNED = sorted((ROOT / "conf" / "tuned").glob("*.yaml"))


@pytest.mark.parametrize("path", TUNED, ids=[p.stem for p in TUNED])
def test_every_shipped_overlay_compiles_with_its_deployment(path: Path) -> None:
    from appliance.config.compiler import compile_config

    text = path.read_text()
    deployment = text.split("# tunes:    deployment ", 1)[1].split(",", 1)[0].split()[0]
    compiled = compile_config(ROOT, [f"deployment={deployment}", f"+tuned={path.stem}"])
    manifest = json.loads(compiled.manifests[0].text)
    for key in _leaves(yaml.safe_load(text)):
        assert str(_get(manifest, key)) == str(_get(yaml.safe_load(text), key))


def test_ctrl_c_stops_the_workers_and_the_study_resumes(project: Path) -> None:
    """Ctrl-C (a real SIGINT): exit 130, no worker left; the same command resumes the study,
    and a trial the interruption left running is failed by its heartbeat and retried."""
    import signal
    import time

    import optuna

    db = project / "state" / "studies" / "mm_paper_local.db"
    cmd = [sys.executable, "-m", "appliance.cli", "optimize", "study=mm_paper_local"]
    cmd += ["--trials", "5000", "--workers", "2", "--no-report", "--root", str(project)]
    proc = subprocess.Popen(
        cmd,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background shell (as CI may be) ignores SIGINT: restore the default in the child.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # The file exists a moment before Optuna has created its tables.
        with contextlib.suppress(sqlite3.OperationalError):
            if db.is_file() and sum(1 for r in _values(db) if r[1] == "COMPLETE") >= 4:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the study did not get going")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: workers stopped; the study resumes" in err
    assert "Traceback" not in err
    left = subprocess.run(
        ["pgrep", "-f", f"appliance.research.optimize.*{project}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert left.stdout.strip() == "", "a worker outlived the interrupted command"
    before = _values(db)
    resumed = appliance(project, "optimize", "study=mm_paper_local", "--trials", "3", "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    after = optuna.load_study(
        study_name=optuna.get_all_study_names(f"sqlite:///{db}")[0], storage=f"sqlite:///{db}"
    ).trials
    assert len(after) >= len(before) + 3
    assert not [t for t in after if t.state.name in ("RUNNING", "WAITING")]
    interrupted = [t.number for t in after if t.state.name == "FAIL"]
    retried = [t.system_attrs.get("failed_trial") for t in after]
    assert all(n in retried for n in interrupted), (interrupted, retried)
