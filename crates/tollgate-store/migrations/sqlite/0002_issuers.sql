-- Upstream issuers managed through the admin API (issuers from the config file are not stored).
CREATE TABLE issuers (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
