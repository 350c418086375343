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
