-- Foundation: signing keys, server secrets, service accounts, admin tokens, revocations, audit.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    alg TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    sealed_private_key BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at INTEGER,
    publish_until INTEGER
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (purpose) WHERE state = 'next';

CREATE TABLE server_secrets (
    purpose TEXT NOT NULL,
    version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (purpose, version)
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_version INTEGER NOT NULL,
    secret_hash BLOB NOT NULL,
    scope TEXT NOT NULL,
    audiences TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    disabled_at INTEGER
);

CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    secret_version INTEGER NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX admin_tokens_hash ON admin_tokens (secret_version, secret_hash);

CREATE TABLE revoked_jtis (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revoked_jtis_expiry ON revoked_jtis (expires_at);

CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL
);
