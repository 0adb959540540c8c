"""``demandloop explain``: the signals and merges behind a person (accounts come with scoring).

Reads only; every number shown can be traced to stored rows.
"""

from __future__ import annotations

from typing import Any

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
