-- Orgs (tenants), their members and custom roles; service accounts and sessions may belong to an org.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT,
    -- Space-separated issuer names allowed to sign in to the org; NULL = every enabled issuer.
    issuers TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- An upstream org (e.g. Clerk's org_id) that selects a tollgate org at exchange.
CREATE TABLE org_external_ids (
    iss TEXT NOT NULL,
    external_id TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (iss, external_id)
);
CREATE INDEX org_external_ids_org ON org_external_ids (org_id);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Space-separated role names.
    roles TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE org_roles (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    -- Space-separated grants (permissions, `prefix:*` or `*`).
    permissions TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
);

ALTER TABLE clients ADD COLUMN org_id TEXT REFERENCES orgs (id);
CREATE INDEX clients_org ON clients (org_id);
ALTER TABLE sessions ADD COLUMN org_id TEXT;
CREATE INDEX sessions_org ON sessions (org_id);
