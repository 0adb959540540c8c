"""The accounts list (filters, keyset pages, capped count, bulk actions, CSV export), the
account page, and Settings."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from demandloop.activate import sequence_queries
from demandloop.config.personalize import tried_order
from demandloop.csvfiles import cell
from demandloop.errors import ConfigError
from demandloop.score.fit import BANDS
from demandloop.score.stages import stage_names
from demandloop.serve import keys as keystore
from demandloop.serve import tokens as tokenstore
from demandloop.serve.users import list_users
from demandloop.serve.web import charts
from demandloop.serve.web import people as people_pages
from demandloop.serve.web.site import Site
from demandloop.store import account_pages as pages

PAGE = 50
#: the size filter's bands (employees)
SIZES = {"1-49": (1, 49), "50-199": (50, 199), "200-999": (200, 999),
         "1000-4999": (1000, 4999), "5000+": (5000, None)}
#: what the CSV export writes per account
CSV_FIELDS = ("account_id", "name", "domain", "industry", "employees", "country", "owner",
              "target", "stage", "fit", "band", "engagement", "intent", "surging", "priority")
#: the most accounts one CSV export writes
CSV_LIMIT = 100_000


def _filter(q: dict[str, str], stages: list[str]) -> pages.AccountFilter:
    """The accounts list's filter from its query *q*, a value no account can have refused
    as the API refuses it (an address edited, or bookmarked before a stage was renamed,
    showed "0 accounts" under a form that said "any"). A choice typed in another case
    is written back into *q* as the form spells it, so the form shows it chosen."""
    for field, known in (("stage", stages), ("band", list(BANDS)), ("size", list(SIZES)),
                         ("target", ["yes", "no"])):
        if q.get(field):
            q[field] = pages.check_choices(field, [q[field]], known)[0]
    low, high = SIZES.get(q.get("size", ""), (None, None))
    return pages.AccountFilter(
        (q["stage"],) if q.get("stage") else (), (q["band"],) if q.get("band") else (),
        None, None, {"yes": True, "no": False}.get(q.get("target", "")),
        q.get("owner") or None, q.get("industry") or None, q.get("q") or None, low, high,
        q.get("country") or None, q.get("topic") or None)


def register(web: FastAPI, site: Site) -> None:
    """Add the accounts pages and Settings to *web*."""
    ws = site.ws

    @web.get("/accounts")
    async def accounts(request: Request, sort: str = "-priority", cursor: str = "") -> Response:
        user, session = site.who(request)
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        where = _filter(params, stage_names(ws.settings.score.stages))

        def read() -> tuple[list[dict[str, Any]], str | None, int, dict[str, list[str]]]:
            with site.gate.shared():
                rows = site.cache.accounts()
                found, nxt = pages.account_page(ws.store, where, sort, PAGE, cursor or None,
                                                rows)
                total = pages.count_capped(ws.store, where, rows)
                choices = site.cache.get("_choices", {},
                                         lambda: pages.choices(ws.store, rows))
            return found, nxt, total, choices
        found, nxt, total, choices = await run_in_threadpool(read)
        return site.page(request, "accounts.html", user, session, rows=found, total=total,
                         cap=pages.COUNT_CAP,
                         next_url=("?" + urlencode({**params, "cursor": nxt})) if nxt else None,
                         f=params, sorts=list(pages.ACCOUNT_SORTS), choices=choices,
                         sizes=list(SIZES), query=urlencode(params),
                         done=request.query_params.get("done"))

    @web.get("/accounts.csv")
    async def accounts_csv(request: Request, sort: str = "-priority") -> Response:
        site.who(request, "marketer")
        params = dict(request.query_params)
        where = _filter(params, stage_names(ws.settings.score.stages))

        def read() -> str:
            with site.gate.shared():
                found, _ = pages.account_page(ws.store, where, sort, CSV_LIMIT, None,
                                              site.cache.accounts())
            buf = io.StringIO()
            out = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore")
            out.writeheader()
            out.writerows({k: cell(v) for k, v in r.items()} for r in found)
            return buf.getvalue()
        text = await run_in_threadpool(read)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
        return Response(text, media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="accounts-{stamp}.csv"',
            "Cache-Control": "no-store"})

    @web.post("/accounts/audience")
    async def add_to_audience(request: Request) -> Response:
        user, session = site.who(request, "marketer")
        form = await request.form()
        if not site.signer.csrf_ok(session, str(form.get("csrf", ""))):
            return site.page(request, "error.html", user, session, 403,
                             message="the form expired or came from elsewhere: reload the page")
        audience = str(form.get("audience", "")).strip()
        chosen = [str(a) for a in form.getlist("account")][:1000]
        back = str(form.get("back", ""))
        if not audience or len(audience) > 80 or not chosen:
            return site.page(request, "error.html", user, session, 400,
                             message="choose accounts and name the audience to add them to")

        def run() -> int:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            with site.lock:
                for account in chosen:
                    sequence_queries.add_to_audience(ws.store, audience, account,
                                                     f"dashboard:{user.email}", now)
            return len(chosen)
        n = await run_in_threadpool(run)
        site.cache.changed()
        done = urlencode({"done": f"added {n} account(s) to the audience '{audience}'"})
        query = back if back.startswith("?") or not back else ""
        return RedirectResponse(f"/app/accounts{query}{'&' if query else '?'}{done}",
                                status_code=303)

    @web.get("/accounts/{account_id:path}")
    async def account(request: Request, account_id: str, who: str = "them") -> Response:
        user, session = site.who(request)

        def read() -> tuple[dict[str, Any] | None, str | None]:
            with site.gate.shared():
                found = ws.account_page(account_id, 200)
                return found, ws.account_moved(account_id) if found is None else None
        found, moved = await run_in_threadpool(read)
        if found is None:
            if moved is not None:  # a link sent before an import gave it another id
                return RedirectResponse(f"/app/accounts/{quote(moved, safe='')}",
                                        status_code=302)
            return site.page(request, "error.html", user, session, 404,
                             message=f"no account '{account_id}'")
        levels = [st.name for st in reversed(ws.settings.score.stages)]
        moments = [(str(h["changed_at"])[:10], h["to_stage"])
                   for h in reversed(found["stage_history"])]
        return site.page(request, "account.html", user, session, a=found["account"],
                         d=found, days=people_pages.days_of(found["touches"]),
                         x=found["explanation"], poll=people_pages.POLL_SECONDS,
                         who="us" if who == "us" else "them",
                         history=charts.steps("Stage history", moments, levels))

    @web.get("/settings")
    async def settings(request: Request) -> Response:
        user, session = site.who(request, "admin")
        public = ws.settings.public_dict()["activate"]  # secrets masked
        # a file edited while serving that cannot be read: the server keeps what is in
        # force (workflows, experiences) and the page says why, where it was a 400
        try:
            experiences, broken = ws.experiences(), None
        except ConfigError as exc:
            experiences, broken = [], str(exc)
        try:
            flows, flows_broken = ws.workflows(), None
        except ConfigError as exc:
            flows, flows_broken = [], str(exc)
        return site.page(request, "settings.html", user, session,
                         experiences=tried_order(experiences),
                         experiences_broken=broken, workflows_broken=flows_broken,
                         keys=keystore.list_keys(ws.directory),
                         tokens=tokenstore.list_tokens(ws.directory),
                         people=list_users(ws.directory), workflows=flows,
                         segments=ws.segments(), sequences=public.get("sequences", []),
                         mailboxes=public.get("mailboxes", []),
                         audiences=ws.audience_lists())
