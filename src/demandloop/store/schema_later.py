"""The SQL of migrations 2 to 11, each a change on top of migration 1
(:mod:`demandloop.store.schema_v1`). Released migrations are never edited."""

V2 = """
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

V3 = """
CREATE TABLE predictions (
    workspace_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    probability DOUBLE NOT NULL,
    contributions JSON,
    trained_at TIMESTAMP NOT NULL
);
"""

V5 = """
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

V6 = """
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
# demandloop.collect.segment_fields.MOVED); ``context_moved`` says which, so this view can
# rebuild each message's context exactly (key order aside). ``load_id`` numbers each
# ingestion.
V7 = """
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
V8 = """
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
V10 = """
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

# Incremental resolve: how far the last run read (``loaded_to``, the events' ``load_id``),
# how many events it had read (a deletion since forces a rebuild), and a fingerprint of the
# settings and CRM inputs it ran with (a change forces a rebuild); each distinct address's
# account, so new events look up only new addresses; each touch's ``user_id``, so a merge
# re-attributes exactly the touches of the identifiers it moved; what the CRM itself said of
# each contact's account and title (``account_id`` and ``title`` also take what resolve found),
# so a run never reads back what an earlier run wrote.
V11 = """
CREATE TABLE resolve_state (
    workspace_id VARCHAR NOT NULL PRIMARY KEY,
    loaded_to BIGINT NOT NULL,
    events_seen BIGINT NOT NULL,
    fingerprint VARCHAR NOT NULL,
    resolved_at TIMESTAMP NOT NULL
);
CREATE TABLE ip_lookups (
    workspace_id VARCHAR NOT NULL,
    ip VARCHAR NOT NULL,
    account_id VARCHAR,
    source VARCHAR NOT NULL,
    detail VARCHAR
);
ALTER TABLE touches ADD COLUMN user_id VARCHAR;
ALTER TABLE persons ADD COLUMN crm_account_id VARCHAR;
ALTER TABLE persons ADD COLUMN crm_title VARCHAR;
UPDATE persons SET crm_account_id = account_id, crm_title = title
WHERE coalesce(source, '') <> 'identity';
"""

# Chat and meetings: a conversation per visitor session (what the visitor was recognised as,
# the playbook, the answers to its questions), its messages (with the pages an answer
# cited), and booked meetings. ``meeting_slots`` holds one row per rep and taken start: its
# primary key is what makes a double booking impossible (the second insert fails), and a
# cancellation deletes the row, which frees the slot.
V13 = """
CREATE TABLE chat_sessions (
    workspace_id VARCHAR NOT NULL,
    session_id VARCHAR NOT NULL,
    anonymous_id VARCHAR,
    account_id VARCHAR,
    person_id VARCHAR,
    playbook VARCHAR,
    url VARCHAR,
    traits JSON,
    started_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, session_id)
);
CREATE TABLE chat_messages (
    workspace_id VARCHAR NOT NULL,
    session_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    role VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    citations JSON,
    relevance DOUBLE,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, session_id, seq)
);
CREATE TABLE meetings (
    workspace_id VARCHAR NOT NULL,
    meeting_id VARCHAR NOT NULL,
    rep VARCHAR NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    account_id VARCHAR,
    email VARCHAR NOT NULL,
    name VARCHAR,
    anonymous_id VARCHAR,
    session_id VARCHAR,
    route_reason VARCHAR,
    eligible VARCHAR[],
    visitor_timezone VARCHAR,
    status VARCHAR NOT NULL,
    sequence INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, meeting_id)
);
CREATE TABLE meeting_slots (
    workspace_id VARCHAR NOT NULL,
    rep VARCHAR NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    meeting_id VARCHAR NOT NULL,
    PRIMARY KEY (workspace_id, rep, starts_at)
);
"""

# Access logs (AEO): one row per request line of a web server or CDN log, with the AI crawler
# its user agent names and whether its address is that crawler's (NULL: cannot be told).
# ``line_hash`` (of the raw line) makes a re-import add nothing twice; the import checks it
# within the batch's time range, so the zone maps on ``ts`` bound it.
V14 = """
CREATE TABLE access_log (
    workspace_id VARCHAR NOT NULL,
    line_hash VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    ip VARCHAR,
    method VARCHAR,
    host VARCHAR,
    path VARCHAR NOT NULL,
    status INTEGER,
    bytes BIGINT,
    referrer VARCHAR,
    user_agent VARCHAR,
    crawler VARCHAR,
    crawler_category VARCHAR,
    crawler_verified BOOLEAN,
    source VARCHAR
);
"""

# What each resolve run changed in touches, for the live rescore (score.live): the accounts
# and persons whose touches were rewritten (before and after), one ``#`` row with the
# touches added minus removed, or one ``*`` row when every touch may have changed (a
# rebuild, an erasure). Only the last runs are kept.
V15 = """
CREATE TABLE touch_changes (
    workspace_id VARCHAR NOT NULL,
    run BIGINT NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR,
    net BIGINT
);
"""

#: an account's priority (the order to work accounts in) from a snapshot's fit and
#: engagement, as :func:`demandloop.score.measures.account_scores` computes it. Computed on
#: read since version 17: a snapshot the live loop makes from an earlier one keeps the rows
#: whose engagement only decayed, and a stored priority would go stale with them.
PRIORITY = "{s}.fit / 100.0 * (1.0 + ln(1.0 + {s}.engagement))"

# account_view as V10 made it, with the priority computed from fit and engagement
V17 = V10.replace("CREATE VIEW", "CREATE OR REPLACE VIEW").replace(
    "(s.details ->> '$.priority')::DOUBLE AS priority",
    PRIORITY.format(s="s") + " AS priority")

# Meeting invites: per meeting and recipient (visitor, rep), what became of the latest
# invite (the meeting's ``sequence`` it carried): sent, bounced, deferred (a temporary SMTP
# failure: sent again at ``next_at``) or failed (given up once the meeting had started).
V18 = """
CREATE TABLE meeting_invites (
    workspace_id VARCHAR NOT NULL,
    meeting_id VARCHAR NOT NULL,
    recipient VARCHAR NOT NULL,
    sequence INTEGER NOT NULL,
    method VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    detail VARCHAR,
    next_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, meeting_id, recipient)
);
"""

# What identify and group calls said about their users, kept by resolve as events load: a
# reached person's title and company are read from here instead of from every event (at 10M
# events two scans of the events table, 0.35 s of each incremental run with one thread). A
# copy of those events' fields, rebuilt with everything else when resolve rebuilds.
V19 = """
CREATE TABLE described_calls (
    workspace_id VARCHAR NOT NULL,
    message_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    title VARCHAR,
    website VARCHAR,
    group_name VARCHAR,
    timestamp TIMESTAMP NOT NULL
);
"""

# The ids an account had before an import gave it a better one (``crm:42`` once the file
# says ``acme.com``) or merged it into another: links sent with the old id (an alert, a
# bookmark) still lead to it. Not derived from events: exported with the workspace.
V21 = """
CREATE TABLE account_aliases (
    workspace_id VARCHAR NOT NULL,
    alias VARCHAR NOT NULL,
    account_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, alias)
);
"""
