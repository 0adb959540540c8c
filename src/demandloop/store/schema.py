"""Versioned schema migrations for the DuckDB store.

Each migration is applied once, in order, inside a transaction, and recorded in
``schema_migrations``. Never edit a released migration: append a new one. Every table carries
``workspace_id`` so one file can hold several isolated workspaces.

Timestamps are stored as ``TIMESTAMP`` in UTC (the connection's time zone is pinned to UTC),
which keeps Parquet exports and the Spark path free of time-zone surprises.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


_V1 = """
CREATE TABLE events (
    workspace_id VARCHAR NOT NULL,
    message_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    event VARCHAR,
    anonymous_id VARCHAR,
    user_id VARCHAR,
    group_id VARCHAR,
    previous_id VARCHAR,
    properties JSON,
    traits JSON,
    context JSON,
    ip VARCHAR,
    user_agent VARCHAR,
    url VARCHAR,
    path VARCHAR,
    referrer VARCHAR,
    title VARCHAR,
    utm_source VARCHAR,
    utm_medium VARCHAR,
    utm_campaign VARCHAR,
    utm_term VARCHAR,
    utm_content VARCHAR,
    timestamp TIMESTAMP NOT NULL,
    original_timestamp TIMESTAMP,
    sent_at TIMESTAMP,
    received_at TIMESTAMP NOT NULL,
    source VARCHAR
);

CREATE TABLE identities (
    workspace_id VARCHAR NOT NULL,
    kind_a VARCHAR NOT NULL,
    id_a VARCHAR NOT NULL,
    kind_b VARCHAR NOT NULL,
    id_b VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    message_id VARCHAR,
    first_seen TIMESTAMP
);

CREATE TABLE persons (
    workspace_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    email VARCHAR,
    emails VARCHAR[],
    first_name VARCHAR,
    last_name VARCHAR,
    title VARCHAR,
    seniority VARCHAR,
    job_function VARCHAR,
    account_id VARCHAR,
    crm_id VARCHAR,
    traits JSON,
    source VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    PRIMARY KEY (workspace_id, person_id)
);

CREATE TABLE accounts (
    workspace_id VARCHAR NOT NULL,
    account_id VARCHAR NOT NULL,
    domain VARCHAR,
    name VARCHAR,
    industry VARCHAR,
    employees BIGINT,
    revenue DOUBLE,
    country VARCHAR,
    technologies VARCHAR[],
    owner VARCHAR,
    target BOOLEAN NOT NULL DEFAULT FALSE,
    tier VARCHAR,
    crm_id VARCHAR,
    source VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    PRIMARY KEY (workspace_id, account_id)
);

CREATE TABLE ip_ranges (
    workspace_id VARCHAR NOT NULL,
    start_ip BIGINT NOT NULL,
    end_ip BIGINT NOT NULL,
    account_id VARCHAR,
    organisation VARCHAR,
    kind VARCHAR NOT NULL DEFAULT 'company',
    source VARCHAR NOT NULL
);

CREATE TABLE touches (
    workspace_id VARCHAR NOT NULL,
    touch_id VARCHAR NOT NULL,
    message_id VARCHAR,
    account_id VARCHAR,
    person_id VARCHAR,
    anonymous_id VARCHAR,
    ts TIMESTAMP NOT NULL,
    channel VARCHAR NOT NULL,
    motion VARCHAR NOT NULL,
    activity VARCHAR,
    weight DOUBLE NOT NULL DEFAULT 1.0,
    topic VARCHAR
);

CREATE TABLE leads (
    workspace_id VARCHAR NOT NULL,
    lead_id VARCHAR NOT NULL,
    person_id VARCHAR,
    account_id VARCHAR,
    origin VARCHAR,
    channel VARCHAR,
    landing_page VARCHAR,
    status VARCHAR NOT NULL DEFAULT 'mql',
    created_at TIMESTAMP,
    source VARCHAR,
    PRIMARY KEY (workspace_id, lead_id)
);

CREATE TABLE opportunities (
    workspace_id VARCHAR NOT NULL,
    opportunity_id VARCHAR NOT NULL,
    account_id VARCHAR,
    lead_id VARCHAR,
    name VARCHAR,
    amount DOUBLE,
    stage VARCHAR,
    is_closed BOOLEAN NOT NULL DEFAULT FALSE,
    won BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP,
    closed_at TIMESTAMP,
    owner VARCHAR,
    sdr VARCHAR,
    segment VARCHAR,
    crm_id VARCHAR,
    source VARCHAR,
    PRIMARY KEY (workspace_id, opportunity_id)
);

CREATE TABLE campaigns (
    workspace_id VARCHAR NOT NULL,
    campaign_id VARCHAR NOT NULL,
    name VARCHAR,
    channel VARCHAR,
    motion VARCHAR,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    PRIMARY KEY (workspace_id, campaign_id)
);

CREATE TABLE spend (
    workspace_id VARCHAR NOT NULL,
    date DATE NOT NULL,
    channel VARCHAR NOT NULL,
    campaign VARCHAR,
    spend DOUBLE NOT NULL,
    impressions BIGINT,
    clicks BIGINT
);

CREATE TABLE scores (
    workspace_id VARCHAR NOT NULL,
    as_of TIMESTAMP NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    fit DOUBLE,
    engagement DOUBLE,
    intent DOUBLE,
    stage VARCHAR,
    details JSON
);

CREATE TABLE stage_changes (
    workspace_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    from_stage VARCHAR,
    to_stage VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    reasons JSON
);
"""

_V2 = """
CREATE TABLE person_identifiers (
    workspace_id VARCHAR NOT NULL,
    identifier VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL
);

CREATE TABLE account_matches (
    workspace_id VARCHAR NOT NULL,
    subject_kind VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    account_id VARCHAR,
    source VARCHAR NOT NULL,
    confidence DOUBLE NOT NULL,
    detail VARCHAR
);

ALTER TABLE touches ADD COLUMN match_source VARCHAR;
ALTER TABLE touches ADD COLUMN confidence DOUBLE;
ALTER TABLE touches ADD COLUMN ip VARCHAR;
"""

_V3 = """
CREATE TABLE predictions (
    workspace_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    contributions JSON,
    trained_at TIMESTAMP NOT NULL
);
"""

_V5 = """
CREATE TABLE jobs (
    workspace_id VARCHAR NOT NULL,
    job_id VARCHAR NOT NULL,
    workflow VARCHAR NOT NULL,
    firing VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    action VARCHAR NOT NULL,
    account_id VARCHAR,
    trigger VARCHAR,
    payload JSON,
    status VARCHAR NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    last_error VARCHAR,
    result VARCHAR,
    created_at TIMESTAMP NOT NULL,
    done_at TIMESTAMP,
    PRIMARY KEY (workspace_id, job_id)
);
CREATE TABLE tasks (
    workspace_id VARCHAR NOT NULL,
    task_id VARCHAR NOT NULL,
    account_id VARCHAR,
    title VARCHAR NOT NULL,
    owner VARCHAR,
    due_at TIMESTAMP,
    workflow VARCHAR,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, task_id)
);
CREATE TABLE workflow_cursors (
    workspace_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    value TIMESTAMP,
    counter BIGINT,
    PRIMARY KEY (workspace_id, name)
);
"""

_V6 = """
CREATE TABLE enrolments (
    workspace_id VARCHAR NOT NULL,
    enrolment_id VARCHAR NOT NULL,
    sequence VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    account_id VARCHAR,
    email VARCHAR NOT NULL,
    mailbox VARCHAR NOT NULL,
    timezone VARCHAR NOT NULL,
    stage_at_enrolment VARCHAR,
    step INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    stop_reason VARCHAR,
    next_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    workflow VARCHAR,
    enrolled_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, enrolment_id)
);
CREATE TABLE mail_messages (
    workspace_id VARCHAR NOT NULL,
    enrolment_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    message_id VARCHAR NOT NULL,
    mailbox VARCHAR NOT NULL,
    to_email VARCHAR NOT NULL,
    subject VARCHAR,
    status VARCHAR NOT NULL,
    error VARCHAR,
    claimed_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    PRIMARY KEY (workspace_id, enrolment_id, step)
);
CREATE TABLE suppressions (
    workspace_id VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    source VARCHAR,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, email)
);
CREATE TABLE audience_members (
    workspace_id VARCHAR NOT NULL,
    audience VARCHAR NOT NULL,
    account_id VARCHAR NOT NULL,
    workflow VARCHAR,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, audience, account_id)
);
"""

# The page fields, IP and user agent of ``context`` live in their own columns only (see
# demandloop.collect.segment.MOVED); ``context_moved`` says which, so this view can rebuild each
# message's context exactly (key order aside). ``load_id`` numbers each ingestion.
_V7 = """
ALTER TABLE events ADD COLUMN context_moved UTINYINT;
ALTER TABLE events ADD COLUMN load_id BIGINT;
CREATE SEQUENCE event_loads START 1;
CREATE VIEW events_full AS
SELECT * EXCLUDE (context_moved) REPLACE (
    CASE WHEN coalesce(context_moved, 0) = 0 THEN context ELSE json_merge_patch(context,
        CASE WHEN context_moved & 1 <> 0 THEN json_object('ip', ip) ELSE '{}' END,
        CASE WHEN context_moved & 2 <> 0 THEN json_object('userAgent', user_agent) ELSE '{}' END,
        CASE WHEN context_moved & 4 <> 0
             THEN json_object('page', json_object('url', url)) ELSE '{}' END,
        CASE WHEN context_moved & 8 <> 0
             THEN json_object('page', json_object('path', path)) ELSE '{}' END,
        CASE WHEN context_moved & 16 <> 0
             THEN json_object('page', json_object('referrer', referrer)) ELSE '{}' END,
        CASE WHEN context_moved & 32 <> 0
             THEN json_object('page', json_object('title', title)) ELSE '{}' END
    ) END AS context
) FROM events;
"""

# an erasure is recorded without the personal data: when, and how many rows of each table
_V8 = """
CREATE TABLE erasures (
    workspace_id VARCHAR NOT NULL,
    erasure_id VARCHAR NOT NULL,
    erased_at TIMESTAMP NOT NULL,
    rows JSON,
    PRIMARY KEY (workspace_id, erasure_id)
);
-- collect.ip = truncate|drop: the account an event's address matched while it was whole
CREATE TABLE ip_matches (
    workspace_id VARCHAR NOT NULL,
    message_id VARCHAR NOT NULL,
    account_id VARCHAR,
    source VARCHAR NOT NULL,
    confidence DOUBLE,
    detail VARCHAR
);
"""

# The account as every stage after scoring sees it: CRM fields and the latest snapshot's
# scores, with the details JSON unpacked. Segments, workflows, sequences, reports and the
# account lists all read this view, so "an account's stage" means one thing everywhere.
_V10 = """
CREATE VIEW account_view AS
WITH latest AS (
    SELECT workspace_id, max(as_of) AS as_of FROM scores WHERE entity = 'account'
    GROUP BY workspace_id)
SELECT a.workspace_id, a.account_id, a.domain, a.name, a.industry, a.employees, a.revenue,
       a.country, a.technologies, a.owner, a.target, a.tier, a.crm_id, a.source,
       a.created_at, a.updated_at,
       s.as_of, s.stage, s.fit, s.engagement, s.intent,
       s.details ->> '$.fit_band' AS band,
       (s.details ->> '$.surging')::BOOLEAN AS surging,
       (s.details ->> '$.people')::BIGINT AS people,
       (s.details ->> '$.committee_coverage')::DOUBLE AS committee_coverage,
       s.details -> '$.missing_roles' AS missing_roles,
       (s.details ->> '$.recent')::DOUBLE AS recent,
       s.details -> '$.surge_topics' AS surge_topics,
       (s.details ->> '$.priority')::DOUBLE AS priority
FROM accounts a
LEFT JOIN latest l ON l.workspace_id = a.workspace_id
LEFT JOIN scores s ON s.workspace_id = a.workspace_id AND s.entity = 'account'
    AND s.entity_id = a.account_id AND s.as_of = l.as_of;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables: events, identities, persons, accounts, ...", _V1),
    Migration(2, "identity resolution: person_identifiers, account_matches, touch sources", _V2),
    Migration(3, "predictive scoring: predictions", _V3),
    Migration(4, "touches.seq: one integer order (time, then touch id) for windowed scoring",
              "ALTER TABLE touches ADD COLUMN seq BIGINT;"),
    Migration(5, "workflows: jobs (durable, idempotent actions), tasks, cursors", _V5),
    Migration(6, "sequences: enrolments, mail_messages, suppressions, audience_members", _V6),
    Migration(7, "events: context keys kept once in columns (view events_full), load_id", _V7),
    Migration(8, "privacy: erasures (no personal data), ip_matches (IP policy)", _V8),
    # since when a range was known, for point-in-time scores; ranges imported before this
    # column existed count as known from the upgrade (the latest they can have been known)
    Migration(9, "ip_ranges.known_at: since when each range was known",
              "ALTER TABLE ip_ranges ADD COLUMN known_at TIMESTAMP;"
              "UPDATE ip_ranges SET known_at = now()::TIMESTAMP;"),
    Migration(10, "account_view: every account with its latest scores, queried in one place",
              _V10),
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
)

SCHEMA_VERSION = MIGRATIONS[-1].version
