-- The audit trail becomes a hash chain and gains the columns it is queried by.
-- Every new event takes the next `chain_seq` and stores its predecessor's hash and its own
-- keyed hash (an HMAC the server computes; the store does no crypto). Events written before
-- this migration keep NULL chain columns: they are listed but not verified.
ALTER TABLE audit_events
    ADD COLUMN org_id TEXT,
    ADD COLUMN credential_id TEXT,
    ADD COLUMN request_id TEXT,
    ADD COLUMN chain_seq BIGINT,
    ADD COLUMN prev_hash BYTEA,
    ADD COLUMN hash BYTEA,
    -- Byte order, as in SQLite: action prefixes are queried as the range [`a.`, `a/`).
    ALTER COLUMN action TYPE TEXT COLLATE "C";
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain_seq);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_at ON audit_events (at);

-- The end of the chain, one row. Appending updates it first, which serializes appenders.
CREATE TABLE audit_chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
