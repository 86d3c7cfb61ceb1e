"""An Ed25519 API key end to end: the real engine against the sim over the WebSocket API.

The key is generated at test time into the test's temp directory (never a committed key) and
referenced by the manifest as `file:`; the sim derives the public key from the same file. The
engine logs the connection on once (`session.logon`) and sends its orders unsigned; the sim
counts the logons it verified and the requests it took without a signature.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.harness import Live, live, wait_for
from tests.e2e.test_live import assert_transport, wait_live


def new_key(path: Path) -> Path:
    """A fresh Ed25519 private key in PKCS#8 PEM (what `openssl genpkey` writes)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def sim_status(env: Live) -> dict[str, Any]:
    with urllib.request.urlopen(f"{env.rest}/sim/status", timeout=5) as r:
        status: dict[str, Any] = json.loads(r.read())
        return status


def ed25519_credentials(tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """A fresh key file, the API key's environment, and the override that references both."""
    key_file = new_key(tmp_path / "ed25519.pem")
    venue = {"PYRT_E2E_API_KEY": os.urandom(16).hex()}
    credentials = (
        "exchanges.sim_binance.credentials={api_key:env:PYRT_E2E_API_KEY,"
        f"api_secret:'file:{key_file}',key_type:ed25519}}"
    )
    return key_file, venue, credentials


def test_an_ed25519_key_logs_on_once_and_orders_go_unsigned(tmp_path: Path) -> None:
    key_file, venue, credentials = ed25519_credentials(tmp_path)
    with live(tmp_path, credentials, speed="8", order_entry="websocket") as env:
        creds = env.manifest["exchanges"]["sim_binance"]["credentials"]
        assert creds == {
            "api_key": "env:PYRT_E2E_API_KEY",
            "api_secret": f"file:{key_file}",
            "key_type": "ed25519",
        }, "the manifest holds the references and the key type only"
        env.start_sim(env=venue)
        engine = env.start_engine(env=venue)
        wait_live(env)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a fill")
        assert_transport(env, "websocket")
        wait_for(lambda: sim_status(env)["ws_api_unsigned"] > 0, 30, "an unsigned order")
        status = sim_status(env)
        # One logon verified; every WebSocket API request after it unsigned (REST, signed with
        # the same key, carried the reconciliation and queries).
        assert status["ws_api_logons"] == 1, status
        assert status["ws_api_signed"] == 0, status
        wait_for(lambda: "session logged on (orders unsigned)" in engine.text(), 10, "the log")
        # A new connection logs on again before its first order (REST meanwhile).
        env.fault("kind=drop_ws_api")
        wait_for(lambda: "WebSocket API connection lost" in engine.text(), 10, "the loss")
        env.fault("kind=clear")
        wait_for(lambda: sim_status(env)["ws_api_logons"] == 2, 30, "the second logon")
        unsigned = sim_status(env)["ws_api_unsigned"]
        wait_for(lambda: sim_status(env)["ws_api_unsigned"] > unsigned, 60, "unsigned orders again")
        assert sim_status(env)["ws_api_signed"] == 0
        assert env.stop("engine") == 0
        pem = key_file.read_text()
        body = pem.splitlines()[1]
        assert body not in engine.text()

        # Another key under the same API key: the venue refuses its signatures and the
        # engine stops before it trades, saying so.
        other = new_key(tmp_path / "other.pem")
        key_file.write_bytes(other.read_bytes())
        proc = env._spawn("engine_other", ["run", "--manifest", str(env.manifest_path)], venue)
        assert proc.popen.wait(30) == 2, proc.text()
        assert "the venue refused our credentials" in proc.text(), proc.text()
        assert "(-1022" in proc.text(), proc.text()

        # A file that is no PEM key: refused at start, naming the exchange and the reference,
        # never the content.
        key_file.write_text("not-a-key-0123456789abcdef\n")
        proc = env._spawn("engine_garbage", ["run", "--manifest", str(env.manifest_path)], venue)
        assert proc.popen.wait(30) != 0, proc.text()
        text = proc.text()
        assert "exchanges.sim_binance" in text, text
        assert f"credentials.api_secret (file:{key_file})" in text, text
        assert "not an Ed25519 private key in PKCS#8 PEM" in text, text
        assert "not-a-key-0123456789abcdef" not in text, text


def test_a_refused_logon_is_retried_or_stops_the_engine_by_its_cause(tmp_path: Path) -> None:
    _, venue, credentials = ed25519_credentials(tmp_path)
    with live(tmp_path, credentials, speed="8", order_entry="websocket") as env:
        env.start_sim(env=venue)
        # The venue busy for two logons: the connection is made again (REST meanwhile) and
        # logs on at the third.
        env.fault("kind=reject_logon&count=2&code=-1007")
        engine = env.start_engine(env=venue)
        wait_live(env)
        wait_for(lambda: sim_status(env)["ws_api_logons"] == 1, 30, "the third logon")
        wait_for(
            lambda: engine.text().count("session.logon failed (status 503") == 2,
            10,
            "both refusals logged",
        )
        wait_for(lambda: sim_status(env)["ws_api_unsigned"] > 0, 60, "an unsigned order")
        assert engine.alive()
        assert env.stop("engine") == 0

        # The key refused at logon: every logon would be, so the engine stops, saying why.
        env.fault("kind=reject_logon&code=-2015")
        proc = env._spawn("engine_refused", ["run", "--manifest", str(env.manifest_path)], venue)
        assert proc.popen.wait(60) == 2, proc.text()
        assert "the venue refused our credentials at session.logon (-2015" in proc.text()
        assert sim_status(env)["ws_api_logons"] == 1
