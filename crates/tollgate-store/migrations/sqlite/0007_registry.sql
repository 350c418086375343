-- Registry pull credentials (minted by the internal endpoint) and the API keys of internal services.
CREATE TABLE pull_credentials (
    id TEXT PRIMARY KEY,
    hash_version INTEGER NOT NULL,
    hash BLOB NOT NULL,
    repository TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX pull_credentials_expiry ON pull_credentials (expires_at);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    hash_version INTEGER NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
