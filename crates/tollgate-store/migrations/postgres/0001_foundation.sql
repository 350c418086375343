-- Foundation: signing keys, server secrets, service accounts, admin tokens, revocations, audit.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    alg TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    sealed_private_key BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at BIGINT,
    publish_until BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (purpose) WHERE state = 'next';

CREATE TABLE server_secrets (
    purpose TEXT NOT NULL,
    version INTEGER NOT NULL,
    sealed BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (purpose, version)
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_version INTEGER NOT NULL,
    secret_hash BYTEA NOT NULL,
    scope TEXT NOT NULL,
    audiences TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    secret_version INTEGER NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX admin_tokens_hash ON admin_tokens (secret_version, secret_hash);

CREATE TABLE revoked_jtis (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_jtis_expiry ON revoked_jtis (expires_at);

CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL
);
