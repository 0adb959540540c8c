"""What the dashboard's person and activity pages list, newest first, at most *limit* each."""

from __future__ import annotations

from typing import Any

from demandloop.store.db import Store

PERSON_QUERIES = {
    "touches": "SELECT ts, channel, motion, activity, topic, account_id, message_id "
               "FROM touches WHERE workspace_id = $ws AND person_id = $id "
               "ORDER BY ts DESC, touch_id LIMIT $limit",
    "enrolments": "SELECT sequence, mailbox, step, status, stop_reason, next_at, enrolled_at "
                  "FROM enrolments WHERE workspace_id = $ws AND person_id = $id "
                  "ORDER BY enrolled_at DESC LIMIT $limit",
    "suppressions": "SELECT s.email, s.reason, s.source, s.added_at FROM suppressions s "
                    "JOIN persons p ON p.workspace_id = s.workspace_id AND "
                    "(list_contains(coalesce(p.emails, [p.email]), s.email) OR "
                    "(starts_with(s.email, '@') AND list_contains(list_transform("
                    "coalesce(p.emails, [p.email]), x -> '@' || lower(split_part(x, '@', -1))),"
                    " s.email))) "
                    "WHERE s.workspace_id = $ws AND p.person_id = $id LIMIT $limit",
}

ACTIVITY_QUERIES = {
    "jobs": "SELECT job_id, workflow, step, action, account_id, trigger, status, attempts, "
            "last_error, created_at, done_at FROM jobs WHERE workspace_id = $ws "
            "ORDER BY created_at DESC, job_id LIMIT $limit",
    "dead": "SELECT job_id, workflow, step, action, account_id, attempts, last_error, done_at "
            "FROM jobs WHERE workspace_id = $ws AND status = 'dead' "
            "ORDER BY done_at DESC, job_id LIMIT $limit",
    "sends": "SELECT m.claimed_at, m.sent_at, e.sequence, m.step, m.mailbox, m.to_email, "
             "m.subject, m.status, m.error FROM mail_messages m JOIN enrolments e "
             "USING (workspace_id, enrolment_id) WHERE m.workspace_id = $ws "
             "ORDER BY m.claimed_at DESC LIMIT $limit",
    "mailboxes": "SELECT mailbox, count(*) FILTER (WHERE sent_at >= now()::TIMESTAMP - "
                 "INTERVAL 1 DAY) AS sent_24h, count(*) FILTER (WHERE status = 'bounced') "
                 "AS bounced, count(*) AS claimed, min(sent_at) AS first_sent "
                 "FROM mail_messages WHERE workspace_id = $ws "
                 "GROUP BY mailbox ORDER BY mailbox LIMIT $limit",
    "suppressions": "SELECT email, reason, source, added_at FROM suppressions "
                    "WHERE workspace_id = $ws ORDER BY added_at DESC LIMIT $limit",
    # with what became of each recipient's invite: one a mail server keeps deferring is
    # the operator's to see before the meeting starts
    "meetings": "SELECT meeting_id, rep, starts_at, account_id, email, name, route_reason, "
                "status, (SELECT string_agg(i.recipient || ': ' || i.status || CASE WHEN "
                "i.attempts > 1 THEN ' (' || i.attempts || ' attempts)' ELSE '' END, ', ' "
                "ORDER BY i.recipient) FROM meeting_invites i WHERE i.workspace_id = "
                "m.workspace_id AND i.meeting_id = m.meeting_id) AS invites "
                "FROM meetings m WHERE workspace_id = $ws "
                "ORDER BY starts_at DESC, meeting_id LIMIT $limit",
    "conversations": "SELECT s.session_id, s.started_at, s.account_id, s.playbook, s.url, "
                     "count(m.seq) FILTER (WHERE m.role = 'visitor') AS questions, "
                     "count(m.seq) FILTER (WHERE m.role = 'bot' AND m.relevance IS NOT NULL "
                     "AND json_array_length(m.citations) = 0) AS unanswered "
                     "FROM chat_sessions s LEFT JOIN chat_messages m USING (workspace_id, "
                     "session_id) WHERE s.workspace_id = $ws GROUP BY ALL "
                     "ORDER BY s.started_at DESC, s.session_id LIMIT $limit",
}


def _lists(store: Store, queries: dict[str, str], params: dict[str, Any]
           ) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with store.reader() as cur:
        for name, sql in queries.items():
            rel = cur.execute(sql, params)
            cols = [d[0] for d in rel.description]
            out[name] = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
    return out


def person_lists(store: Store, person_id: str, limit: int = 200
                 ) -> dict[str, list[dict[str, Any]]]:
    """A person's touches, enrolments and suppressions."""
    return _lists(store, PERSON_QUERIES, {"ws": store.workspace_id, "id": person_id,
                                          "limit": limit})


def activity_lists(store: Store, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
    """Workflow jobs, dead ones, sequence sends, mailboxes, bounces and unsubscribes,
    meetings and chat conversations."""
    return _lists(store, ACTIVITY_QUERIES, {"ws": store.workspace_id, "limit": limit})
