-- The audit trail becomes a hash chain and gains the columns it is queried by.
-- Every new event takes the next `chain_seq` and stores its predecessor's hash and its own
-- keyed hash (an HMAC the server computes; the store does no crypto). Events written before
-- this migration keep NULL chain columns: they are listed but not verified.
ALTER TABLE audit_events ADD COLUMN org_id TEXT;
ALTER TABLE audit_events ADD COLUMN credential_id TEXT;
ALTER TABLE audit_events ADD COLUMN request_id TEXT;
ALTER TABLE audit_events ADD COLUMN chain_seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB;
ALTER TABLE audit_events ADD COLUMN hash BLOB;
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain_seq);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_at ON audit_events (at);

-- The end of the chain, one row. Appending updates it first, which serializes appenders.
CREATE TABLE audit_chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, zeroblob(32));
