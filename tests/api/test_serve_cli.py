"""`voxwarden admin create-key` and `voxwarden serve` start-up (without binding a socket)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from voxwarden.commands import serve as serve_mod
from voxwarden.store import Store, audit, keys


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_mod.serve_cmd)
    app.add_typer(serve_mod.keys_app, name="admin")
    return app


def test_create_key_prints_a_working_token_once(tmp_path: Path) -> None:
    r = CliRunner().invoke(_cli(), ["admin", "create-key", "--tenant", "acme", "--scopes", "scan,mark",
                                    "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("vw_")
    store = Store(data_dir=tmp_path)
    try:
        with store.session() as s:
            key = keys.authenticate_key(s, token, scope="mark")
            assert keys.key_scopes(key) == {"scan", "mark"}
            assert token not in key.secret_hash
            [entry] = audit.entries(s, key.tenant_id, action="api_key.create")
            assert entry.actor.startswith("cli:")
    finally:
        store.dispose()
    again = CliRunner().invoke(_cli(), ["admin", "create-key", "--tenant", "acme", "--scopes", "admin",
                                        "--data-dir", str(tmp_path)])
    assert again.exit_code == 0 and again.stdout.strip().splitlines()[-1] != token  # same tenant, new key


def test_create_key_refuses_unknown_scope(tmp_path: Path) -> None:
    r = CliRunner().invoke(_cli(), ["admin", "create-key", "--tenant", "acme", "--scopes", "root",
                                    "--data-dir", str(tmp_path)])
    assert r.exit_code == 3
    assert "vw_" not in r.stdout


def test_serve_with_defaults_prints_first_key_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: dict[str, Any] = {}

    def fake_run(app: Any, host: str, port: int, **_: Any) -> None:  # stands in for binding a socket
        started.update(app=app, host=host, port=port)

    monkeypatch.setattr("uvicorn.run", fake_run)
    r = CliRunner().invoke(_cli(), ["serve", "--data-dir", str(tmp_path / "d"), "--port", "8099"])
    assert r.exit_code == 0, r.output
    assert started["port"] == 8099 and started["host"] == "127.0.0.1"
    assert "admin create-key" in r.output and "No API key" in r.output
    assert (tmp_path / "d" / "voxwarden.db").exists()
    started["app"].state.store.dispose()


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("colour = 'blue'\n")
    r = CliRunner().invoke(_cli(), ["serve", "--config", str(cfg)])
    assert r.exit_code == 3 and "unknown setting" in r.output
