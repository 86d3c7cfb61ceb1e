"""Plans: semantic diffs, risk classes, output formats, exit codes, saved plans."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.plan.diff import ABSENT, ChangeClass, classify, entity_of
from tests.conftest import Run

REVIEW_CHANGE = [
    "deployment=prod_example",
    "risk.instruments.ETHUSDT.max_position=2.5",
    "hosts.ny4_a.threads.strategy=5",
    "strategies.mm_spot_btc.params.half_spread_ticks=4",
]


@pytest.fixture
def built(project: Path, cli: Callable[..., Run]) -> Path:
    assert cli("compile", "deployment=prod_example", root=project).exit_code == 0
    return project / "build" / "prod_example"


def test_no_change_exits_zero(built: Path, project: Path, cli: Callable[..., Run]) -> None:
    run = cli(
        "plan",
        "deployment=prod_example",
        "--against",
        str(built),
        "--detailed-exitcode",
        root=project,
    )
    assert run.exit_code == 0, run.stderr
    assert "no changes" in run.stdout


def test_review_change_is_classified_and_exits_3(
    built: Path, project: Path, cli: Callable[..., Run], snapshot: Callable[[str, str], None]
) -> None:
    run = cli(
        "plan",
        *REVIEW_CHANGE,
        "--against",
        str(built),
        "--format",
        "json",
        "--detailed-exitcode",
        root=project,
    )
    assert run.exit_code == 3
    plan = json.loads(run.stdout)
    assert plan["plan_version"] == 1
    by_path = {(c["host"], c["path"]): c for c in plan["changes"]}
    limit = by_path[("ny4_a", "risk.instruments.ETHUSDT.max_position")]
    assert (limit["change_class"], limit["before"], limit["after"]) == ("LOOSEN", "2", "2.5")
    assert limit["source_before"] == "conf/risk/prod.yaml"
    assert by_path[("ny4_a", "host.threads.strategy")]["change_class"] == "TOPOLOGY"
    spread = by_path[("ny4_a", "strategies.mm_spot_btc.params.half_spread_ticks")]
    assert spread["change_class"] == "TIGHTEN"  # quotes further from the touch
    assert spread["reason"].startswith("a wider half spread")
    assert ("ny4_b", "risk.instruments.ETHUSDT.max_position") not in by_path  # ETH not on ny4_b
    assert plan["summary"]["hosts"] == ["ny4_a"]
    markdown = cli(
        "plan", *REVIEW_CHANGE, "--against", str(built), "--format", "markdown", root=project
    )
    snapshot("plan_review_markdown", markdown.snapshot_text())


def test_tighten_only_exits_2(built: Path, project: Path, cli: Callable[..., Run]) -> None:
    run = cli(
        "plan",
        "deployment=prod_example",
        "risk.max_daily_loss=1000",
        "--against",
        str(built),
        "--detailed-exitcode",
        root=project,
    )
    assert run.exit_code == 2
    assert "TIGHTEN" in run.stdout and "LOOSEN" not in run.stdout
    assert "why: the loss at which trading stops (lower is tighter)" in run.stdout


def test_saved_plan_records_the_reviewed_hashes(
    built: Path, project: Path, cli: Callable[..., Run], tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    run = cli("plan", *REVIEW_CHANGE, "--against", str(built), "--out", str(out), root=project)
    assert run.exit_code == 0
    saved = json.loads(out.read_text())
    before = json.loads((built / "index.json").read_text())["manifests"]
    assert saved["manifests"]["before"] == {h: e["content_sha256"] for h, e in before.items()}
    assert saved["manifests"]["after"]["ny4_a"] != saved["manifests"]["before"]["ny4_a"]


def test_nothing_deployed_means_hosts_are_added(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("plan", "--format", "json", root=project)
    plan = json.loads(run.stdout)
    # Read from the host (a local prefix root, read directly), not from a record.
    assert plan["against"] == "nothing deployed (read from the hosts: local)"
    assert [(c["path"], c["change_class"]) for c in plan["changes"]] == [("host", "TOPOLOGY")]


def test_diff_of_two_git_refs(project: Path, cli: Callable[..., Run]) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "conf")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    risk = project / "conf/risk/conservative.yaml"
    risk.write_text(risk.read_text().replace("enabled: true", "enabled: false"))
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "disarm")
    run = cli("diff", "HEAD~1", "HEAD", "--format", "json", "--detailed-exitcode", root=project)
    assert run.exit_code == 3, run.stderr
    (change,) = json.loads(run.stdout)["changes"]
    assert change["path"] == "risk.kill_switch.enabled"
    assert (change["change_class"], change["critical"]) == ("LOOSEN", True)
    assert change["source_after"] == "conf/risk/conservative.yaml"


def test_a_bad_ref_is_a_diagnostic(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("diff", "no-such-ref", "HEAD", root=project)
    assert run.exit_code == 1  # 2 is "changes" under --detailed-exitcode
    assert "no-such-ref" in run.stderr


@pytest.mark.parametrize(
    ("path", "before", "after", "expected"),
    [
        ("deployment.mode", "paper", "live", (ChangeClass.LOOSEN, True)),
        ("deployment.mode", "live", "paper", (ChangeClass.TIGHTEN, False)),
        ("risk.kill_switch.enabled", True, False, (ChangeClass.LOOSEN, True)),
        ("risk.max_daily_loss", "200", "300", (ChangeClass.LOOSEN, True)),
        ("risk.instruments.BTCUSDT.price_band_bps", 50, 60, (ChangeClass.LOOSEN, False)),
        ("risk.instruments.BTCUSDT.price_band_bps", 50, 40, (ChangeClass.TIGHTEN, False)),
        ("risk.instruments.BTCUSDT", {"max_position": "1"}, ABSENT, (ChangeClass.TIGHTEN, False)),
        ("risk.instruments.BTCUSDT.max_position", "0.1", "0.3", (ChangeClass.LOOSEN, True)),
        ("exchanges.x.venue", "sim", "binance_spot", (ChangeClass.LOOSEN, True)),
        ("host.rings.orders.slots", 1024, 2048, (ChangeClass.TOPOLOGY, False)),
        ("strategies.s", ABSENT, {"kind": "market_maker"}, (ChangeClass.LOOSEN, False)),
        ("strategies.s.params.quote_qty", "0.001", "0.0015", (ChangeClass.LOOSEN, False)),
        ("strategies.s.params.quote_qty", "0.001", "0.002", (ChangeClass.LOOSEN, True)),
        ("exchanges.x.endpoints.ws", "wss://a", "wss://b", (ChangeClass.SECURITY, False)),
        # Books verified less often are looser; every 2nd message instead of every one is a
        # doubling (critical).
        ("exchanges.x.book_checksum_every", 1, 2, (ChangeClass.LOOSEN, True)),
        ("exchanges.x.book_checksum_every", 4, 5, (ChangeClass.LOOSEN, False)),
        ("exchanges.x.book_checksum_every", 10, 1, (ChangeClass.TIGHTEN, False)),
        # Orders over another transport (REST is the default, absent from the manifest): a
        # change reviewers must see, as an endpoint's.
        ("exchanges.x.order_entry", ABSENT, "websocket", (ChangeClass.SECURITY, True)),
        ("exchanges.x.order_entry", "websocket", ABSENT, (ChangeClass.SECURITY, True)),
        ("exchanges.x.endpoints.ws_api", ABSENT, "wss://a", (ChangeClass.SECURITY, False)),
    ],
)
def test_classification(
    path: str, before: object, after: object, expected: tuple[ChangeClass, bool]
) -> None:
    verdict = classify(path, before, after)
    assert (verdict.change_class, verdict.critical) == expected
    assert verdict.reason


def test_entities_are_named_by_identity() -> None:
    assert (
        entity_of("exchanges.binance_spot.instruments.BTCUSDT.tick_size")
        == "instrument binance_spot:BTCUSDT"
    )
    assert entity_of("host.threads.feeds.binance_spot") == "thread feeds.binance_spot"
    assert entity_of("risk.instruments.ETHUSDT.max_position") == "risk limit ETHUSDT"


@pytest.mark.parametrize(
    ("args", "detailed", "plain"),
    [
        ([], 0, 0),  # no change
        (["risk.max_daily_loss=1000"], 2, 0),  # tightens only
        (["risk.max_daily_loss=3000"], 3, 0),  # loosens
        (["exchanges.binance_usdm.credentials.api_key=env:OTHER_KEY"], 3, 0),  # SECURITY
        (["risk.max_daily_loss=-5"], 1, 1),  # invalid config
        (["--against", "no-such-ref"], 1, 1),  # bad git ref
        (["--against", "README.md"], 1, 1),  # not a build, not a ref
    ],
)
def test_plan_exit_codes(
    built: Path,
    project: Path,
    cli: Callable[..., Run],
    args: list[str],
    detailed: int,
    plain: int,
) -> None:
    against = [] if "--against" in args else ["--against", str(built)]
    argv = ["plan", "deployment=prod_example", *args, *against]
    run = cli(*argv, "--detailed-exitcode", root=project)
    assert run.exit_code == detailed, run.stdout + run.stderr
    assert cli(*argv, root=project).exit_code == plain
    if detailed == 1:
        assert "Traceback" not in run.stderr and run.stderr.strip()
