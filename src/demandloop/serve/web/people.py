"""The person page, the activity page (with a retry for dead workflow steps), the search of
your own pages (the content index chat answers from), and the account timeline as a
fragment the account page polls, so new events show within seconds without a reload."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from demandloop.activate import job_queries, sequences
from demandloop.errors import NotFoundError
from demandloop.serve.web.site import Site
from demandloop.store import account_pages as pages
from demandloop.store import activity_pages

#: how often an open account page asks for its timeline (seconds)
POLL_SECONDS = 3


def days_of(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Touches (or our side's actions) grouped by their day, newest first (as they come)."""
    days: dict[str, list[dict[str, Any]]] = {}
    for t in items:
        days.setdefault(str(t["ts"])[:10], []).append(t)
    return days


def _warmup(site: Site, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each configured mailbox: its day on the warm-up ramp and today's limit (what the
    sequence sender allows), beside what it sent in the last 24 hours."""
    by_box = {r["mailbox"]: r for r in sent}
    today = dt.datetime.now(dt.UTC).date()
    out = []
    for m in site.ws.settings.activate.mailboxes:
        row = by_box.get(m.name, {})
        first = m.warmup_start or (row["first_sent"].date() if row.get("first_sent") else None)
        day = (today - first).days + 1 if first else 1
        out.append({"mailbox": m.name, "address": m.address, "day": day,
                    "limit": sequences.daily_limit(m.warmup, m.daily_cap, max(day, 1)),
                    "warm": day > len(m.warmup), "sent_24h": row.get("sent_24h", 0),
                    "bounced": row.get("bounced", 0)})
    return out


def register(web: FastAPI, site: Site) -> None:
    """Add the person and activity pages and the timeline fragment to *web*."""

    @web.get("/people/{key:path}")
    async def person(request: Request, key: str) -> Response:
        user, session = site.who(request)

        def read() -> dict[str, Any]:
            with site.gate.shared():
                found = site.ws.explain_person(key)
                found.update(activity_pages.person_lists(
                    site.ws.store, found["person"]["person_id"]))
            return found
        try:
            found = await run_in_threadpool(read)
        except NotFoundError as exc:
            return site.page(request, "error.html", user, session, 404, message=str(exc))
        return site.page(request, "person.html", user, session, p=found,
                         days=days_of(found["touches"]))

    @web.get("/activity")
    async def activity(request: Request) -> Response:
        user, session = site.who(request)

        def read() -> dict[str, list[dict[str, Any]]]:
            with site.gate.shared():
                return activity_pages.activity_lists(site.ws.store)
        lists = await run_in_threadpool(read)
        return site.page(request, "activity.html", user, session, a=lists,
                         retried=request.query_params.get("retried"),
                         warmup=_warmup(site, lists["mailboxes"]))

    @web.post("/activity/retry")
    async def retry(request: Request, job_id: str = Form(""),  # noqa: B008
                    csrf: str = Form("")) -> Response:  # noqa: B008
        user, session = site.who(request, "marketer")
        if not site.signer.csrf_ok(session, csrf):
            return site.page(request, "error.html", user, session, 403,
                             message="the form expired or came from elsewhere: reload the page")

        def run() -> bool:
            with site.lock:
                return job_queries.retry(site.ws.store, job_id,
                                         dt.datetime.now(dt.UTC).replace(tzinfo=None))
        done = await run_in_threadpool(run)
        if not done:
            return site.page(request, "error.html", user, session, 404,
                             message=f"no dead workflow step '{job_id[:40]}' to retry")
        site.cache.changed()
        return RedirectResponse(f"/app/activity?retried={job_id}", status_code=303)

    @web.get("/search")
    async def search(request: Request, q: str = "") -> Response:
        """Your own pages, searched as chat searches them (the content index)."""
        user, session = site.who(request)
        q = q.strip()[:300]
        index = await run_in_threadpool(site.ws.content_index)
        hits = await run_in_threadpool(index.search, q, 10) if index and q else []
        return site.page(request, "search.html", user, session, q=q, hits=hits,
                         indexed=index is not None,
                         threshold=site.ws.settings.chat.min_relevance)

    @web.get("/accounts/{account_id:path}/timeline")
    async def timeline(request: Request, account_id: str, who: str = "them") -> Response:
        site.who(request)

        def read() -> dict[str, Any] | None:
            with site.gate.shared():
                return pages.account_detail(site.ws.store, account_id, 200)
        found = await run_in_threadpool(read)
        who = "us" if who == "us" else "them"
        d = found or {"touches": [], "ours": []}
        return site.render(request, "timeline.html", account_id=account_id,
                           days=days_of(d["touches"]), poll=POLL_SECONDS, who=who, d=d)
