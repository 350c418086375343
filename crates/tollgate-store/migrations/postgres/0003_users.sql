-- Local users and the upstream identities ((iss, sub) pairs) linked to them.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT,
    user_ver BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE identities (
    iss TEXT NOT NULL,
    sub TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (iss, sub)
);
CREATE INDEX identities_user ON identities (user_id);
