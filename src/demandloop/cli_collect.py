"""``demandloop serve`` and ``demandloop keys create|list|revoke`` (registered on the CLI)."""

from __future__ import annotations

from pathlib import Path

import typer

from demandloop.cli import JsonOpt, _json, _open, _say, _table, app, out
from demandloop.errors import NotFoundError, UsageError
from demandloop.store import keys as keystore

keys_app = typer.Typer(no_args_is_help=True, help="Write keys for SDKs and dl.js.")
app.add_typer(keys_app, name="keys")


def _dir() -> Path:
    from demandloop.cli import _workspace_dir

    return _workspace_dir()


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address (collector.host)."),
    port: int | None = typer.Option(None, "--port", help="Port (collector.port)."),
    workers: int | None = typer.Option(None, "--workers", help="HTTP worker processes."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                    help="One JSON line per request on stderr."),
) -> None:
    """Run the Segment-compatible collector: /v1/batch, /v1/track, ..., /dl.js, /metrics."""
    from demandloop.serve.run import serve as run

    run(_dir(), host=host, port=port, workers=workers, access_log=access_log)


@keys_app.command("create")
def keys_create(
    name: str = typer.Option("", "--name", help="What the key is for (e.g. 'website')."),
    workspace_id: str | None = typer.Option(None, "--workspace-id",
                                            help="Workspace the key writes to."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a write key; it is shown once, store it in your SDK's configuration."""
    from demandloop.config import Settings

    directory = _dir()
    ws_id = workspace_id or Settings.load(directory).workspace.id
    key, info = keystore.create(directory, ws_id, name)
    if as_json:
        _json({"key": key, **info.__dict__})
        return
    out.print(f"write key for workspace '{ws_id}' (shown once): [bold]{key}[/bold]")


@keys_app.command("list")
def keys_list(as_json: bool = JsonOpt) -> None:
    """Write keys: id (the key's first characters), workspace, name, created, revoked."""
    rows = [k.__dict__ for k in keystore.list_keys(_dir())]
    if as_json:
        _json(rows)
        return
    import pandas as pd

    out.print(_table(pd.DataFrame(rows, columns=["id", "workspace", "name", "created_at",
                                                 "revoked_at"]), "write keys"))


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key, or its id from 'keys list'."),
                as_json: bool = JsonOpt) -> None:
    """Revoke a write key: the collector refuses it within a second (401)."""
    info = keystore.revoke(_dir(), key)
    _say(as_json, info.__dict__, f"revoked {info.id} (workspace '{info.workspace}')")


privacy_app = typer.Typer(no_args_is_help=True,
                          help="Data-subject requests (export, erase) and raw-event retention.")
app.add_typer(privacy_app, name="privacy")


def _nobody(person: str) -> NotFoundError:
    return NotFoundError(f"nothing is stored about '{person}'",
                         hint="give an email, user id or anonymous id as sent to demandloop")


@privacy_app.command("export")
def privacy_export(
    person: str = typer.Argument(..., help="An email, user id or anonymous id."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the JSON here (else "
                                         "standard output)."),
    as_json: bool = typer.Option(False, "--json", help="Accepted for symmetry: the export "
                                 "is JSON either way."),
) -> None:
    """Everything stored about one person, as JSON (a data-subject access request)."""
    with _open() as ws:
        data = ws.export_person(person)
    if not data["found"]:
        raise _nobody(person)
    if out_file is None:
        _json(data)
        return
    import orjson

    out_file.write_bytes(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2))
    rows = sum(len(v) for v in data["tables"].values())
    out.print(f"wrote {rows:,} rows from {len(data['tables'])} tables to {out_file}")


@privacy_app.command("erase")
def privacy_erase(
    person: str = typer.Argument(..., help="An email, user id or anonymous id."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: erasing cannot be undone."),
    as_json: bool = JsonOpt,
) -> None:
    """Remove one person from every table, the collector's log and dead letters and the
    Parquet exports this workspace wrote; their address stays suppressed (as a hash)."""
    if not yes:
        raise UsageError(f"erasing '{person}' cannot be undone",
                         hint="run 'demandloop privacy export' first if you need a copy, "
                         "then pass --yes")
    with _open() as ws:
        result = ws.erase_person(person)
    if not result["found"]:
        raise _nobody(person)
    if as_json:
        _json(result)
        return
    rows = result["rows"]
    out.print(f"erased {sum(rows.values()):,} rows ("
              + ", ".join(f"{t}: {n:,}" for t, n in rows.items()) + "); "
              f"{result['suppressed_hashes']} address(es) suppressed as a hash; "
              f"{len(result['exports_rewritten'])} export(s) rewritten")


@privacy_app.command("retention")
def privacy_retention(as_json: bool = JsonOpt) -> None:
    """Delete raw events older than collect.retention_days (the server does it itself)."""
    with _open() as ws:
        days = ws.settings.collect.retention_days
        if days <= 0:
            raise UsageError("collect.retention_days is 0: raw events are kept forever",
                             hint="set [collect] retention_days in demandloop.toml")
        n = ws.apply_retention()
    if as_json:
        _json({"deleted": n, "retention_days": days})
        return
    out.print(f"deleted {n:,} raw events received more than {days} days ago")
