-- CI workloads: trust policies per org, build sessions, and short-lived state (replay
-- cache, publish sessions) for deployments without Redis.
CREATE TABLE trust_policies (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    issuer TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
);
CREATE INDEX trust_policies_issuer ON trust_policies (issuer);

-- One row per owner, written first by every open: it serializes opens per owner.
CREATE TABLE build_owners (
    owner TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL
);

CREATE TABLE build_sessions (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    created_by TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    closed_at INTEGER,
    closed_reason TEXT
);
CREATE INDEX build_sessions_owner ON build_sessions (owner, created_at);
CREATE INDEX build_sessions_org ON build_sessions (org_id, created_at);

CREATE TABLE replay_keys (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX replay_keys_expiry ON replay_keys (expires_at);

CREATE TABLE ephemeral_docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    ver INTEGER NOT NULL,
    doc TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX ephemeral_docs_expiry ON ephemeral_docs (keep_until);
