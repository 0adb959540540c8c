"""``/api/v1``: the JSON API over a workspace, served by the process that holds it.

Accounts (filters, sort, keyset pages), one account whole, people, every report, CSV
imports, rescore jobs, and ``/cli`` (what the CLI sends when a server owns the workspace).
Every route needs an API token (:mod:`.tokens`) of the scope it names; a write key is
refused here whatever it is sent as. The schema is published at ``/api/v1/openapi.json``
and browsable at ``/api/v1/docs``. Errors have the collector's one shape,
``{"success": false, "error": {"code", "message"}}``.

Reads run on cursors of their own in a thread pool, beside the loader: they never wait for
ingestion, and ingestion never waits for them. Heavy reports are computed once per state of
the data (see :class:`ReportCache`).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_origin
from urllib.parse import quote

import orjson
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, FiniteFloat
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from demandloop.collect.crm import parse_mapping
from demandloop.config import Settings
from demandloop.domains import canonical_domain
from demandloop.errors import DemandloopError
from demandloop.measure.names import ALL_MODELS, DIMENSIONS
from demandloop.score.fit import BANDS
from demandloop.score.stages import stage_names
from demandloop.serve import api_schema as schema
from demandloop.serve import forward, reports
from demandloop.serve.envelope import (
    Reject,
    internal_error,
    no_endpoint,
    not_allowed,
    write_key,
)
from demandloop.serve.jobs import Jobs
from demandloop.serve.keys import KeyRing
from demandloop.serve.quiesce import Gate
from demandloop.serve.report_cache import ReportCache
from demandloop.serve.tokens import PREFIX as TOKEN_PREFIX
from demandloop.serve.tokens import TokenRing, allows
from demandloop.store import account_pages as pages
from demandloop.store.person_pages import PERSON_SORTS

if TYPE_CHECKING:
    from demandloop.workspace import Workspace

log = logging.getLogger("demandloop.loader")
T = TypeVar("T")
IMPORT_KINDS = ("accounts", "contacts", "opportunities", "spend", "ip-ranges", "suppressions")
#: the imports whose columns a map may name (the CRM's objects)
CRM_KINDS = ("accounts", "contacts", "opportunities")
#: ``?models=``: a comma-separated list of names (each checked against the models)
_MODELS = r"^ *[a-z0-9_]+ *(, *[a-z0-9_]+ *)*,? *$"
#: largest CSV an import accepts (bigger files: the CLI, which reads them from disk)
MAX_UPLOAD_BYTES = 256 << 20


class CliRequest(BaseModel):
    argv: list[str] = Field(max_length=200)
    cwd: str = Field(max_length=4096)
    width: int = Field(200, ge=20, le=1000)
    color_system: str | None = Field(None, pattern="^(standard|256|truecolor|windows)$")
    terminal: bool = False


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str, option=orjson.OPT_SERIALIZE_NUMPY
                                 | orjson.OPT_NON_STR_KEYS),
                    status_code=status, media_type="application/json")


def _reject(r: Reject) -> Response:
    body, headers = r.payload()
    return Response(body, status_code=r.status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in headers
                             if k != b"www-authenticate"}
                    | ({"WWW-Authenticate": 'Bearer realm="demandloop"'}
                       if r.status == 401 else {}))


def _known_parameters(request: Request) -> None:
    """Refuse a query parameter the route does not take: ``?intent=2`` (the filter is
    ``intent_min``) or ``?after=`` (the cursor is ``cursor``) would otherwise answer the
    unfiltered first page, which looks like a result. Refuse one given twice that takes
    one value (``?q=a&q=b``): which one counts would be a guess."""
    route = request.scope.get("route")
    if getattr(route, "dependant", None) is None:
        return
    known, lists = _query_names(route)
    twice = sorted({k for k in request.query_params
                    if k in known and k not in lists
                    and len(request.query_params.getlist(k)) > 1})
    if twice:
        raise Reject(400, "repeated_parameter",
                     f"query parameter {', '.join(repr(k) for k in twice)} given more than "
                     "once; it takes one value")
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise Reject(400, "unknown_parameter",
                     f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(repr(u[:40]) for u in unknown[:5])} (this endpoint takes "
                     f"{', '.join(sorted(known)) or 'none'}; see /api/v1/docs)")


def _query_names(route: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameters *route* and its dependencies take, and those of them that take
    a list; found once per route and kept on it (walked here rather than with FastAPI's
    private helper, whose name changes between versions; a route is unhashable, so it
    cannot key a cache)."""
    names: tuple[frozenset[str], frozenset[str]] | None = getattr(route, "_dl_query_names",
                                                                   None)
    if names is None:
        found: set[str] = set()
        lists: set[str] = set()
        todo = [route.dependant]
        while todo:
            d = todo.pop()
            for p in d.query_params:
                found.add(p.alias)
                if get_origin(p.field_info.annotation) in (list, tuple, set):
                    lists.add(p.alias)
            todo.extend(d.dependencies)
        names = frozenset(found), frozenset(lists)
        route._dl_query_names = names
    return names


def create_api(ws: Workspace, tokens: TokenRing, keys: KeyRing, jobs: Jobs,
               loop_lock: threading.RLock, gate: Gate) -> FastAPI:
    """The API over *ws* (the server's workspace); reads pass through *gate* (an erasure
    rewriting the database file closes it meanwhile)."""
    api = FastAPI(title="demandloop API", version="1", openapi_url="/openapi.json",
                  docs_url="/docs", redoc_url=None, servers=[{"url": "/api/v1"}],
                  # every route's errors, in their one shape (FastAPI's own 422 model is
                  # not what the API answers)
                  responses=schema.errors(400, 401, 403, 422, 503),
                  description="Accounts, people, reports, imports and jobs of one "
                  "demandloop workspace. Send an API token as 'Authorization: Bearer "
                  "<token>' (demandloop tokens create --scope read|write|admin).")
    cache = ReportCache(ws)
    api.state.report_cache = cache  # the dashboard reads the same current accounts
    jobs.on_done = cache.changed

    def shared(fn: Callable[..., T], *args: Any) -> T:
        with gate.shared():
            return fn(*args)

    async def reading(fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(shared, fn, *args)

    bearer = HTTPBearer(auto_error=False, description="An API token: demandloop tokens "
                        "create --scope read|write|admin")

    def scope(needed: str) -> Any:
        def check(request: Request,
                  creds: HTTPAuthorizationCredentials | None = Depends(bearer)  # noqa: B008
                  ) -> str:
            token = creds.credentials.strip() if creds is not None else ""
            if not token:
                # Segment's SDKs send the write key as Basic auth: say why it cannot read
                # (an API token sent that way is only in the wrong header)
                auth = request.headers.get("authorization", "")
                if auth.lower().startswith("basic"):
                    if (write_key(auth, {}) or "").startswith(TOKEN_PREFIX):
                        raise Reject(401, "missing_token", "send the API token as "
                                     "'Authorization: Bearer <token>', not as HTTP Basic")
                    raise Reject(401, "write_key_refused",
                                 "a write key can only send events; use an API token")
                raise Reject(401, "missing_token",
                             "send an API token as 'Authorization: Bearer <token>'")
            granted, expired = tokens.check(token)
            if granted is not None and expired is not None:
                raise Reject(401, "token_expired", f"this API token expired at "
                             f"{expired.isoformat(timespec='seconds')}; create another: "
                             "demandloop tokens create")
            if granted is None:
                if keys.workspace(token, use=False) is not None:
                    raise Reject(401, "write_key_refused",
                                 "a write key can only send events; use an API token")
                raise Reject(401, "invalid_token", "unknown or revoked API token")
            if not allows(granted, needed):
                raise Reject(403, "insufficient_scope",
                             f"this token's scope is '{granted}'; this needs '{needed}'")
            _known_parameters(request)
            return granted
        return Depends(check)

    read, write, admin = scope("read"), scope("write"), scope("admin")

    @api.exception_handler(Reject)
    async def rejected(request: Request, exc: Reject) -> Response:
        return _reject(exc)

    @api.exception_handler(DemandloopError)
    async def failed(request: Request, exc: DemandloopError) -> Response:
        # the class's own code (errors.py), the one the docs list: not one made from
        # its name ("notfound" where the account detail says "not_found")
        return _reject(Reject(exc.http_status, exc.code, str(exc)))

    @api.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        return _reject(internal_error(log, request.method, request.url.path, exc))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _reject(no_endpoint(request.url.path))
        if exc.status_code == 405:
            return _reject(not_allowed(request.method, request.url.path))
        return _reject(Reject(exc.status_code, "error", str(exc.detail)[:200]))

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in exc.errors()[:20]]
        return _reject(Reject(422, "invalid_request", "the request's parameters are not "
                              "valid", problems))

    stages = stage_names(ws.settings.score.stages)

    @api.get("/accounts", dependencies=[read], summary="Accounts, filtered, sorted, paged",
             responses=schema.ok(schema.AccountsPage))
    async def accounts(
        # (the workspace's own stages: a default, as an annotation cannot name a local)
        stage: list[str] = Query([], max_length=20, json_schema_extra={  # noqa: B008
            "items": {"type": "string", "enum": list(stages)}}),
        band: Annotated[list[str], Query(max_length=20, json_schema_extra={
            "items": {"type": "string", "enum": list(BANDS)}})] = [],  # noqa: B006
        intent_min: Annotated[FiniteFloat | None, Query(ge=0, le=1e9)] = None,
        surging: bool | None = None, target: bool | None = None,
        owner: Annotated[str | None, Query(max_length=200)] = None,
        industry: Annotated[str | None, Query(max_length=200)] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        employees_min: Annotated[int | None, Query(ge=0, le=10**9)] = None,
        employees_max: Annotated[int | None, Query(ge=0, le=10**9)] = None,
        country: Annotated[str | None, Query(max_length=80)] = None,
        topic: Annotated[str | None, Query(max_length=200)] = None,
        sort: Annotated[str, Query(pattern=r"^-?[a-z_]{1,30}$", json_schema_extra={
            "enum": [f"{d}{f}" for f in pages.ACCOUNT_SORTS for d in ("", "-")]})
        ] = "-priority",
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        # a stage or band no account can have is a typo, not an empty page
        where = pages.AccountFilter(tuple(pages.check_choices("stage", stage, stages)),
                                    tuple(pages.check_choices("band", band, BANDS)),
                                    intent_min, surging, target, owner, industry, q,
                                    employees_min, employees_max, country, topic)

        def page() -> tuple[list[dict[str, Any]], str | None]:
            return pages.account_page(ws.store, where, sort, limit, cursor, cache.accounts())
        rows, nxt = await reading(page)
        return _json({"data": rows, "next": nxt})

    @api.get("/accounts/{account_id:path}", dependencies=[read],
             summary="One account: scores, explanation, people, timeline, history, jobs",
             responses=schema.ok(schema.AccountDetail) | schema.errors(404)
             | {301: {"model": schema.Moved, "description": "The account has another id "
                      "now (an import gave it one, or merged it), or the id asked for is its "
                      "domain written another way (ACME.COM): Location names it"}})
    async def account(account_id: str,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        found = await reading(ws.account_page, account_id, limit)
        if found is None:
            moved = await reading(ws.account_moved, account_id)
            if moved is not None:  # a link sent before an import re-keyed it (GitHub's way)
                why = ("its domain, written as account ids are" if moved == canonical_domain(
                    account_id) else "an import gave it that id, or merged it")
                raise Reject(301, "moved", f"account '{account_id[:80]}' is '{moved}' now "
                             f"({why})",
                             location=f"/api/v1/accounts/{quote(moved, safe='')}",
                             extra={"account_id": moved})
            raise Reject(404, "not_found", f"no account '{account_id[:80]}'")
        return _json(found)

    @api.get("/content/search", dependencies=[read],
             summary="Your own pages' passages that best answer a question",
             responses=schema.ok(schema.Passages))
    async def content_search(q: Annotated[str, Query(min_length=1, max_length=1000)],
                             limit: Annotated[int, Query(ge=1, le=50)] = 5) -> Response:
        hits = await run_in_threadpool(ws.search_content, q, limit)
        return _json({"data": hits, "min_relevance": ws.settings.chat.min_relevance})

    @api.get("/people", dependencies=[read],
             summary="People with their latest scores: of one account, MQLs, by engagement",
             responses=schema.ok(schema.PeoplePage))
    async def people(account: Annotated[str | None, Query(max_length=200)] = None,
                     q: Annotated[str | None, Query(max_length=200)] = None,
                     mql: Annotated[bool | None, Query(
                         description="Only MQLs (true) or only people who are not "
                         "(false), by the latest score")] = None,
                     sort: Annotated[str, Query(max_length=20, json_schema_extra={
                         "enum": list(PERSON_SORTS)})] = "person_id",
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                     cursor: Annotated[str | None, Query(max_length=2000)] = None
                     ) -> Response:
        rows, nxt = await reading(ws.people, account, q, mql, sort, limit, cursor)
        return _json({"data": rows, "next": nxt})

    @api.get("/people/{key:path}", dependencies=[read],
             summary="One person: scores, identifiers and merges, touches, enrolments",
             responses=schema.ok(schema.PersonDetail) | schema.errors(404))
    async def person(key: Annotated[str, Path_(max_length=320, description="A person id, "
                                               "email, user id or anonymous id")],
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        # (no such person: the NotFoundError's 404, in the one shape, by the handler above)
        return _json(await reading(ws.person_page, key, limit))

    @api.get("/reports/{name}", dependencies=[read],
             summary="A report: funnel, health, attribution, pipeline, scorecard, sla, "
                     "personalization or aeo",
             responses=schema.ok(schema.Report, "The report, as 'demandloop report NAME "
                                 "--json' prints it") | schema.errors(404))
    async def report(request: Request,
                     name: Annotated[str, Path_(json_schema_extra={
                         "enum": list(reports.REPORTS)})],
                     by: Annotated[str | None, Query(max_length=40, json_schema_extra={
                         "enum": list(DIMENSIONS)})] = None,
                     level: Annotated[str, Query(max_length=20, json_schema_extra={
                         "enum": ["account", "person"]})] = "account",
                     outcome: Annotated[str | None, Query(
                         max_length=20, json_schema_extra={"enum": ["opportunity", "won"]},
                         description="Account level only: opportunity (the default) or "
                                     "won")] = None,
                     models: Annotated[str | None, Query(
                         max_length=300, pattern=_MODELS,
                         description="Comma-separated: " + ", ".join(ALL_MODELS))] = None,
                     measure: Annotated[str, Query(max_length=20, json_schema_extra={
                         "enum": ["conversions", "value"]})] = "conversions",
                     days: Annotated[int, Query(ge=1, le=3650)] = 28
                     ) -> Response:
        if name not in reports.REPORTS:
            raise Reject(404, "not_found", f"no report '{name[:40]}'; the reports are "
                         f"{', '.join(reports.REPORTS)}")
        choices: dict[str, dict[str, Any]] = {
            "funnel": {"by": by}, "attribution": {"level": level, "outcome": outcome,
                                                  "models": models, "measure": measure},
            "aeo": {"days": days},
        }
        params = choices.get(name, {})
        # a parameter of another report is a mistake, not a no-op (?by= on health would
        # answer the unbroken report, which looks like a result)
        stray = sorted(k for k in request.query_params if k not in params)
        if stray:
            raise Reject(400, "unknown_parameter",
                         f"the {name} report does not take {', '.join(map(repr, stray))} "
                         f"(it takes {', '.join(params) or 'no parameter'})")
        return _json(await reading(cache.get, name, params))

    @api.post("/imports/{kind}", dependencies=[write], summary="Import a CSV (multipart)",
              responses=schema.ok(schema.ImportResult) | schema.errors(404, 413))
    async def import_csv(request: Request,
                         kind: Annotated[str, Path_(json_schema_extra={
                             "enum": list(IMPORT_KINDS)})],
                         file: Annotated[UploadFile, File()],
                         map_: Annotated[list[str], Form(
                             alias="map", max_length=100, description="COLUMN=FIELD for a "
                             "header demandloop does not recognise (accounts, contacts, "
                             "opportunities; one form field per column), as the CLI's --map")
                         ] = []) -> Response:  # noqa: B006
        if kind not in IMPORT_KINDS:
            raise Reject(404, "not_found", f"no import '{kind[:40]}'; use one of "
                         f"{', '.join(IMPORT_KINDS)}")
        # (the form FastAPI read is kept on the request) two files: the last was imported
        # and the first dropped in silence, as a query parameter given twice would be
        if len((await request.form()).getlist("file")) > 1:
            raise Reject(400, "repeated_parameter", "form field 'file' given more than once; "
                         "an import reads one file (send one request per file)")
        if map_ and kind not in CRM_KINDS:
            raise Reject(400, "usage", f"a map is for the CRM imports ({', '.join(CRM_KINDS)})"
                         f": {kind} reads its own columns")
        try:
            mapping = parse_mapping(map_, kind) if kind in CRM_KINDS else None
        except DemandloopError as exc:
            raise Reject(exc.http_status, exc.code, _as_api(str(exc))) from None
        with tempfile.TemporaryDirectory(prefix="dl-import-") as tmp:
            path = Path(tmp) / Path(file.filename or f"{kind}.csv").name
            size = 0
            with path.open("wb") as fh:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_UPLOAD_BYTES:
                        raise Reject(413, "too_large", f"the file is over "
                                     f"{MAX_UPLOAD_BYTES >> 20} MB; import it with the CLI")
                    fh.write(chunk)
            try:
                result = await run_in_threadpool(jobs.run_now,
                                                 lambda: _import(ws, kind, path, mapping))
            except DemandloopError as exc:  # name the upload, not the temporary copy
                # with each bad row (FILE:LINE: reason), which the CLI prints under its
                # one line and a client would otherwise never see
                raise Reject(exc.http_status, "invalid_file",
                             _as_api(str(exc).replace(f"{tmp}/", "")),
                             problems=[p.replace(f"{tmp}/", "") for p in
                                       getattr(exc, "problems", [])]) from None
            for listed in ("unlinked", "skipped"):  # (named by the upload's name)
                if listed in result:
                    result[listed] = [u.replace(f"{tmp}/", "") for u in result[listed]]
        cache.changed()
        return _json(result)

    @api.post("/rescore", dependencies=[write], status_code=202,
              summary="Resolve, score and run workflows now (a job)",
              responses={202: {"model": schema.Job, "description": "The job, queued"}})
    async def rescore() -> Response:
        def work() -> dict[str, Any]:
            r = ws.resolve(engine="duckdb")
            s = ws.score(engine="duckdb")  # (as the live loop does: see serve.run)
            w = ws.run_workflows()
            return {"resolve": r.mode, "touches_written": r.touches_written,
                    "as_of": s.as_of, "accounts": s.accounts, "stage_changes": s.stage_changes,
                    "workflows_fired": w.fired, "workflow_steps_done": w.done}
        return _json(jobs.submit("rescore", work), status=202)

    @api.get("/jobs/{job_id}", dependencies=[read], summary="A job's status",
             responses=schema.ok(schema.Job) | schema.errors(404))
    async def job(job_id: str) -> Response:
        found = jobs.get(job_id)
        if found is None:
            raise Reject(404, "not_found", f"no job '{job_id[:40]}' (jobs are kept in memory "
                         "for the server's run)")
        return _json(found)

    started_with = Settings.file_data(ws.directory)

    @api.post("/cli", dependencies=[admin], summary="Run a CLI command (what the CLI sends)",
              responses=schema.ok(schema.CliAnswer))
    async def cli(body: CliRequest) -> Response:
        answer = await run_in_threadpool(
            forward.run_here, ws, body.argv, body.cwd, body.width, body.color_system,
            body.terminal, loop_lock, started_with)
        cache.changed()
        return _json(answer)

    return api


def _as_api(message: str) -> str:
    """A message of the CRM import as an API client reads it: the CLI's ``--map`` is the
    form's ``map`` field here."""
    return message.replace("--map", "map")


def _import(ws: Workspace, kind: str, path: Path, mapping: dict[str, str] | None
            ) -> dict[str, Any]:
    if kind in CRM_KINDS:
        ignored: list[str] = []
        unlinked: list[str] = []
        skipped: list[str] = []
        rows = ws.import_crm(kind, path, mapping, ignored=ignored, unlinked=unlinked,
                             skipped=skipped)
        return {"kind": kind, "rows": rows, "ignored_columns": ignored,
                **({"unlinked": unlinked, "skipped": skipped} if kind == "contacts"
                   else {})}
    if kind == "spend":
        warnings: list[str] = []
        return {"kind": kind, "rows": ws.import_spend(path, warnings), "warnings": warnings}
    if kind == "ip-ranges":
        return {"kind": kind, "rows": ws.import_ip_ranges(path)}
    from demandloop.activate.suppression_csv import read_emails

    emails = read_emails(path)
    return {"kind": kind, "rows": len(emails),
            "new": ws.suppress(emails, reason="imported", source=f"api:{path.name}")}
