"""Migration 1's SQL: the core tables (events, identities, persons, accounts, IP ranges,
touches, leads, opportunities, campaigns, spend, scores, stage changes). Released: never
edited, only added to by later migrations (:mod:`demandloop.store.schema_later`)."""

V1 = """
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
