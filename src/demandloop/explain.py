"""``demandloop explain``: the signals behind a person (merges) or an account (scores).

Reads only; every number shown can be traced to stored rows.
"""

from __future__ import annotations

from typing import Any

import orjson

from demandloop.errors import NotFoundError
from demandloop.store.db import Store


def person(store: Store, key: str) -> dict[str, Any]:
    """Explain the person found by *key*: a person id, email, user id or anonymous id."""
    ws = store.workspace_id
    k = key.strip()
    with store.reader() as cur:
        row = cur.execute(
            "SELECT person_id FROM person_identifiers WHERE workspace_id = $ws AND "
            "(person_id = $k OR identifier IN ('email:' || lower($k), 'user:' || $k, "
            "'anon:' || $k)) LIMIT 1", {"ws": ws, "k": k}).fetchone()
        if row is None:
            raise NotFoundError(
                f"no person known by '{k}'",
                hint="give a person id, email, user id or anonymous id; run "
                     "'demandloop resolve' after ingesting")
        pid = row[0]
        info = cur.execute(
            "SELECT person_id, email, emails, title, seniority, job_function, account_id, "
            "source FROM persons WHERE workspace_id = ? AND person_id = ?", [ws, pid]).fetchone()
        identifiers = [r[0] for r in cur.execute(
            "SELECT identifier FROM person_identifiers WHERE workspace_id = ? AND person_id = ? "
            "ORDER BY identifier", [ws, pid]).fetchall()]
        links = cur.execute(
            "SELECT kind_a || ':' || id_a, kind_b || ':' || id_b, source, message_id, "
            "first_seen FROM identities WHERE workspace_id = $ws AND "
            "(kind_a || ':' || id_a) IN (SELECT identifier FROM person_identifiers "
            " WHERE workspace_id = $ws AND person_id = $p) ORDER BY first_seen",
            {"ws": ws, "p": pid}).fetchall()
        match = cur.execute(
            "SELECT account_id, source, confidence FROM account_matches WHERE workspace_id = ? "
            "AND subject_kind = 'person' AND subject = ?", [ws, pid]).fetchone()
        touches = cur.execute(
            "SELECT channel, motion, count(*), min(ts), max(ts) FROM touches "
            "WHERE workspace_id = ? AND person_id = ? GROUP BY ALL ORDER BY 3 DESC",
            [ws, pid]).fetchall()
        before = cur.execute(
            "SELECT count(*) FROM touches t JOIN events e ON e.workspace_id = t.workspace_id "
            "AND e.message_id = t.message_id WHERE t.workspace_id = $ws AND t.person_id = $p "
            "AND e.user_id IS NULL", {"ws": ws, "p": pid}).fetchone()
    cols = ("person_id", "email", "emails", "title", "seniority", "function", "account_id",
            "source")
    return {
        "person": dict(zip(cols, info, strict=True)) if info else {"person_id": pid},
        "identifiers": identifiers,
        "merged_by": [{"from": a, "to": b, "message_type": s, "message_id": m,
                       "first_seen": str(t)} for a, b, s, m, t in links],
        "account": {"account_id": match[0], "source": match[1], "confidence": match[2]}
        if match else None,
        "anonymous_touches_attributed": int(before[0]) if before else 0,
        "touches_by_channel": [{"channel": c, "motion": m, "touches": n, "first": str(f),
                                "last": str(last)} for c, m, n, f, last in touches],
    }


def account(store: Store, settings: Any, key: str) -> dict[str, Any]:
    """Explain an account's latest scores: fit criteria met, the touches behind engagement
    (each with its decayed contribution), surge topics, stage history and committee gaps."""
    from demandloop.domains import canonical_domain
    from demandloop.store.accounts import moved_to

    ws = store.workspace_id
    account_id = canonical_domain(key) or key.strip()
    with store.reader() as cur:
        snap = cur.execute(
            "SELECT as_of, fit, engagement, intent, stage, details FROM scores "
            "WHERE workspace_id = ? AND entity = 'account' AND entity_id = ? "
            "ORDER BY as_of DESC LIMIT 1", [ws, account_id]).fetchone()
        if snap is None:
            moved = moved_to(store, account_id)
            if moved is not None:
                raise NotFoundError(f"account '{key}' is '{moved}' now (an import gave it "
                                    "that id, or merged it)",
                                    hint=f"demandloop explain account {moved}")
            raise NotFoundError(f"no scores for account '{key}'",
                                hint="check the domain; run 'demandloop score' first")
        as_of, fit, engagement, intent, stage, details = snap
        half_life = settings.score.half_life_days * 86400.0
        signals = cur.execute(
            "SELECT ts, activity, channel, topic, weight, person_id, "
            "weight * pow(2, -(epoch(?::TIMESTAMP) - epoch(ts)) / ?) AS contribution "
            "FROM touches WHERE workspace_id = ? AND account_id = ? AND ts <= ? "
            "ORDER BY contribution DESC LIMIT 10",
            [as_of, half_life, ws, account_id, as_of]).fetchall()
        history = cur.execute(
            "SELECT changed_at, from_stage, to_stage, reasons FROM stage_changes "
            "WHERE workspace_id = ? AND entity = 'account' AND entity_id = ? "
            "ORDER BY changed_at", [ws, account_id]).fetchall()
    d = orjson.loads(details) if details else {}
    return {
        "account_id": account_id, "as_of": str(as_of), "stage": stage,
        "fit": {"score": fit, "band": d.get("fit_band"), "criteria": d.get("fit_criteria")},
        "engagement": {"score": engagement, "people": d.get("people"),
                       "touches": d.get("touches"),
                       "top_signals": [{"ts": str(t), "activity": a, "channel": c, "topic": tp,
                                        "weight": w, "person_id": p,
                                        "decayed": round(float(x), 3)}
                                       for t, a, c, tp, w, p, x in signals]},
        "intent": {"surge": intent, "surging": d.get("surging"),
                   "topics": d.get("surge_topics")},
        "stage_reasons": d.get("stage_reasons"),
        "committee": {"coverage": d.get("committee_coverage"),
                      "missing_roles": d.get("missing_roles")},
        "stage_history": [{"at": str(t), "from": f, "to": to,
                           "reasons": orjson.loads(r) if r else []}
                          for t, f, to, r in history],
    }
