-- Device keys: public keys users registered (with proof of possession) for their devices,
-- which authenticate with RFC 7523 JWT assertions. Unique by RFC 7638 thumbprint, revoked
-- ones included, so a revoked key cannot come back.
CREATE TABLE user_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_name TEXT NOT NULL,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    thumbprint TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    upstream TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX user_keys_user ON user_keys (user_id, created_at);
