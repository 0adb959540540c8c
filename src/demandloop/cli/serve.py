"""``demandloop serve``, ``demandloop keys create|list|revoke`` (write keys) and
``demandloop tokens create|list|revoke`` (API tokens) and ``demandloop users
create|list|disable`` (dashboard users)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from demandloop.cli.base import (
    JsonOpt,
    _json,
    _say,
    _table,
    _workspace_dir,
    app,
    out,
)
from demandloop.errors import UsageError
from demandloop.lazy import LazyModule

if TYPE_CHECKING:
    import pandas as pd

    from demandloop.serve import keys as keystore
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")
    keystore = LazyModule("demandloop.serve.keys")


keys_app = typer.Typer(no_args_is_help=True, help="Write keys for SDKs and dl.js.")


app.add_typer(keys_app, name="keys")


def _dir() -> Path:
    return _workspace_dir()


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address (collector.host)."),
    # the bounds of collector.port and collector.workers: a port over 65535 was taken
    # modulo 65536 (--port 70000 listened on 4464)
    port: int | None = typer.Option(None, "--port", min=1, max=65535,
                                    help="Port (collector.port)."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=64,
                                       help="HTTP worker processes (collector.workers)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                    help="One JSON line per request on stderr."),
) -> None:
    """Run the Segment-compatible collector: /v1/batch, /v1/track, ..., /dl.js, /metrics."""
    from demandloop.errors import StoreLockedError
    from demandloop.serve import owner
    from demandloop.serve.run import serve as run

    directory = _dir()
    running = owner.find(directory)
    if running is not None:  # (said before DuckDB's "in use" would say it less helpfully)
        raise StoreLockedError(
            f"a server already runs this workspace at {running.url} (process {running.pid})",
            hint=f"other commands run through it; stop it (Ctrl-C, or kill {running.pid}) "
            "to serve again")
    run(directory, host=host, port=port, workers=workers, access_log=access_log)


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
    """Write keys: id (the key's first characters), workspace, name, created, revoked, last
    used (when it last sent events, to the minute)."""
    rows = [k.__dict__ for k in keystore.list_keys(_dir())]
    if as_json:
        _json(rows)
        return
    import pandas as pd

    out.print(_table(pd.DataFrame(rows, columns=["id", "workspace", "name", "created_at",
                                                 "revoked_at", "last_used_at"]), "write keys"))


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key, or its id from 'keys list'."),
                as_json: bool = JsonOpt) -> None:
    """Revoke a write key: the collector refuses it within a second (401)."""
    info, newly = keystore.revoke(_dir(), key)
    _say(as_json, info.__dict__, f"revoked {info.id} (workspace '{info.workspace}')"
         if newly else
         f"{info.id} was already revoked (at {info.revoked_at}); nothing changed")


tokens_app = typer.Typer(no_args_is_help=True,
                         help="API tokens for /api/v1 (scopes: read, write, admin).")


app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    scope: str = typer.Option("read", "--scope", help="read (GET), write (imports, "
                              "rescore) or admin (every command, as the CLI)."),
    name: str = typer.Option("", "--name", help="What the token is for (e.g. 'dashboard')."),
    expires_in: int | None = typer.Option(None, "--expires-in", help="Days until the API "
                                          "refuses it (default: no end)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create an API token; it is shown once, store it where the client keeps secrets."""
    from demandloop.serve import tokens

    token, info = tokens.create(_dir(), scope, name, expires_in)
    if as_json:
        _json({"token": token, **info.__dict__})
        return
    out.print(f"API token with scope '{info.scope}' (shown once): [bold]{token}[/bold]"
              + (f" (expires {info.expires_at})" if info.expires_at else ""))


@tokens_app.command("list")
def tokens_list(as_json: bool = JsonOpt) -> None:
    """API tokens: id, name, scope, created, revoked, expires, last used (to the minute;
    never the token)."""
    from demandloop.serve import tokens

    rows = [t.__dict__ for t in tokens.list_tokens(_dir())]
    if as_json:
        _json(rows)
        return
    import pandas as pd

    out.print(_table(pd.DataFrame(rows, columns=["id", "name", "scope", "created_at",
                                                 "revoked_at", "expires_at",
                                                 "last_used_at"]), "API tokens"))


@tokens_app.command("revoke")
def tokens_revoke(token: str = typer.Argument(..., help="The token, or its id from "
                                              "'tokens list'."),
                  as_json: bool = JsonOpt) -> None:
    """Revoke an API token: the API refuses it within a second (401)."""
    from demandloop.serve import tokens

    info, newly = tokens.revoke(_dir(), token)
    _say(as_json, info.__dict__, f"revoked API token {info.id} ('{info.name}')"
         if newly else
         f"API token {info.id} was already revoked (at {info.revoked_at}); nothing changed")



users_app = typer.Typer(no_args_is_help=True,
                        help="Dashboard users (roles: rep, marketer, admin).")


app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create(
    email: str = typer.Option(..., "--email", help="The user's email (their login)."),
    role: str = typer.Option("rep", "--role", help="rep (reads), marketer (also acts) or "
                             "admin (also settings)."),
    name: str = typer.Option("", "--name", help="The user's name."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input "
                                        "(else it is asked for, twice, unechoed)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a dashboard user; the password is never echoed or stored (argon2 hash)."""
    import sys

    from demandloop.serve import users

    # (what is wrong with the email or role is said before a password is typed for it)
    users.check(_dir(), email, role)
    if password_stdin:
        try:
            password = sys.stdin.readline().rstrip("\n")
        except OSError as exc:
            raise UsageError(f"cannot read the password from standard input: {exc}",
                             hint="pipe it in: echo \"$PASSWORD\" | demandloop users create "
                             "... --password-stdin") from None
    elif not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on",
                         hint="pass --password-stdin and send the password on standard input")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = users.create(_dir(), email, role, password, name)
    _say(as_json, user.__dict__, f"created {user.role} {user.email}: log in at "
         "/app/login on the running 'demandloop serve'")


@users_app.command("list")
def users_list(as_json: bool = JsonOpt) -> None:
    """Dashboard users: email, name, role, created, disabled (never a hash)."""
    from demandloop.serve import users

    rows = [u.__dict__ for u in users.list_users(_dir())]
    if as_json:
        _json(rows)
        return
    import pandas as pd

    out.print(_table(pd.DataFrame(rows, columns=["email", "name", "role", "created_at",
                                                 "disabled_at"]), "dashboard users"))


@users_app.command("disable")
def users_disable(email: str = typer.Argument(..., help="The user's email."),
                  as_json: bool = JsonOpt) -> None:
    """Disable a user: their sessions stop working within a second."""
    from demandloop.serve import users

    user, newly = users.disable(_dir(), email)
    _say(as_json, user.__dict__, f"disabled {user.email}" if newly else
         f"{user.email} was already disabled (at {user.disabled_at}); nothing changed")
