"""Versioned schema migrations for the DuckDB store.

Each migration is applied once, in order, inside a transaction, and recorded in
``schema_migrations``. Never edit a released migration: append a new one. Every table carries
``workspace_id`` so one file can hold several isolated workspaces.

Timestamps are stored as ``TIMESTAMP`` in UTC (the connection's time zone is pinned to UTC),
which keeps Parquet exports and the Spark path free of time-zone surprises.
"""

from __future__ import annotations

from dataclasses import dataclass

from demandloop.store.schema_later import (
    V2,
    V3,
    V5,
    V6,
    V7,
    V8,
    V10,
    V11,
    V13,
    V14,
    V15,
    V17,
    V18,
    V19,
    V21,
)
from demandloop.store.schema_v1 import V1


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables: events, identities, persons, accounts, ...", V1),
    Migration(2, "identity resolution: person_identifiers, account_matches, touch sources", V2),
    Migration(3, "predictive scoring: predictions", V3),
    Migration(4, "touches.seq: one integer order (time, then touch id) for windowed scoring",
              "ALTER TABLE touches ADD COLUMN seq BIGINT;"),
    Migration(5, "workflows: jobs (durable, idempotent actions), tasks, cursors", V5),
    Migration(6, "sequences: enrolments, mail_messages, suppressions, audience_members", V6),
    Migration(7, "events: context keys kept once in columns (view events_full), load_id", V7),
    Migration(8, "privacy: erasures (no personal data), ip_matches (IP policy)", V8),
    # since when a range was known, for point-in-time scores; ranges imported before this
    # column existed count as known from the upgrade (the latest they can have been known)
    Migration(9, "ip_ranges.known_at: since when each range was known",
              "ALTER TABLE ip_ranges ADD COLUMN known_at TIMESTAMP;"
              "UPDATE ip_ranges SET known_at = now()::TIMESTAMP;"),
    Migration(10, "account_view: every account with its latest scores, queried in one place",
              V10),
    Migration(11, "incremental resolve: resolve_state, ip_lookups, touches.user_id", V11),
    # the page a touch happened on, for the account timeline (resolve's VERSION moved with
    # it, so the next resolve rebuilds and fills it in)
    Migration(12, "touches.path: the page of each touch",
              "ALTER TABLE touches ADD COLUMN path VARCHAR;"),
    Migration(13, "chat and meetings: chat_sessions, chat_messages, meetings, meeting_slots",
              V13),
    Migration(14, "AEO: access_log (web server and CDN requests, AI crawlers named)", V14),
    Migration(15, "touch_changes: what each resolve changed in touches (live rescore)", V15),
    # the order stage changes were written in, for the workflows' cursor: their time is the
    # rescore's newest touch, which does not always move forward (changes already stored
    # get 0, older than any new one)
    Migration(16, "stage_changes.seq: the order stage changes were written in",
              "CREATE SEQUENCE stage_change_seq START 1;"
              "ALTER TABLE stage_changes ADD COLUMN seq BIGINT;"),
    # snapshots stop storing it: the live loop keeps the rows whose engagement only decayed
    Migration(17, "account_view: priority computed from fit and engagement", V17),
    Migration(18, "meeting_invites: each invite's outcome, deferred ones sent again", V18),
    # resolve's VERSION moved with it: the next resolve rebuilds and fills it in
    Migration(19, "described_calls: identify and group calls' titles and companies", V19),
    # resolve's VERSION moved with it: the next resolve rebuilds and fills it in
    Migration(20, "described_calls.domain: the account each group call names",
              "ALTER TABLE described_calls ADD COLUMN domain VARCHAR;"),
    Migration(21, "account_aliases: the ids accounts had before an import re-keyed them", V21),
)

#: sequences and the column each numbers: an import moves each past the numbers it brings
#: (else the next load or stage change would get a number already read by a cursor)
SEQUENCES: tuple[tuple[str, str, str], ...] = (
    ("event_loads", "events", "load_id"),
    ("stage_change_seq", "stage_changes", "seq"),
)

#: tables exported/imported as Parquet, in dependency-free order
DATA_TABLES: tuple[str, ...] = (
    "events",
    "identities",
    "persons",
    "accounts",
    "ip_ranges",
    "touches",
    "leads",
    "opportunities",
    "campaigns",
    "spend",
    "scores",
    "stage_changes",
    "person_identifiers",
    "account_matches",
    "predictions",
    "jobs",
    "tasks",
    "workflow_cursors",
    "enrolments",
    "mail_messages",
    "suppressions",
    "audience_members",
    "erasures",
    "ip_matches",
    "chat_sessions",
    "chat_messages",
    "meetings",
    "meeting_slots",
    "meeting_invites",
    "access_log",
    "account_aliases",
)

#: tables no analytics read, added after lakes were first written: a lake written before
#: one existed is still read (Spark registers it only when the lake has it), not refused
#: until a large lake is written again for a table nothing on Spark looks at
NOT_ANALYSED: tuple[str, ...] = ("meeting_invites", "account_aliases")

SCHEMA_VERSION = MIGRATIONS[-1].version
