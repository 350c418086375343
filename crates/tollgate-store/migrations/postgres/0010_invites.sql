-- Invites: an org admin invites an email address with roles. The invite token is stored
-- only as a keyed hash (of its server-secret version); redemption binds an upstream
-- identity with that email, applies the roles and marks the invite redeemed, once.
CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    roles TEXT NOT NULL,
    hash_version INTEGER NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    redeemed_at BIGINT,
    redeemed_by TEXT,
    revoked_at BIGINT
);
CREATE INDEX invites_org ON invites (org_id, created_at);

-- When a user's email was last proven (e.g. by redeeming an invite sent to it).
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
