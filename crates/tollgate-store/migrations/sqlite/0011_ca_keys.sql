-- The internal certificate authority: its root and issuing (intermediate) keys, sealed
-- with the master key like signing keys, and their certificates. Written once, on the first
-- start that needs them; of replicas starting together exactly one set is kept.
CREATE TABLE ca_keys (
    role TEXT PRIMARY KEY,
    common_name TEXT NOT NULL,
    alg TEXT NOT NULL,
    sealed_key BLOB NOT NULL,
    cert_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- What a service account's server certificates may name: DNS patterns (`host`, `*.zone`,
-- `**.zone`, IDNA A-labels) and IP addresses, space-separated. No row: no server certificates.
CREATE TABLE cert_rules (
    client_id TEXT PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
    dns_patterns TEXT NOT NULL,
    ip_addresses TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
