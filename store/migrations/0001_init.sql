-- Initial schema. Every list is ordered by seq, a per-table creation counter
-- kept apart from the text primary key so paging stays stable.

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);

-- data holds the whole descriptor as JSON; group_id is a real column so the
-- foreign key and the group filter are enforced and indexed.
CREATE TABLE services (
    id       TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL UNIQUE,
    group_id TEXT NOT NULL REFERENCES groups(id),
    data     TEXT NOT NULL
);
CREATE INDEX services_group ON services(group_id, seq);

CREATE TABLE apikeys (
    client_id            TEXT PRIMARY KEY,
    seq                  INTEGER NOT NULL UNIQUE,
    client_secret        TEXT NOT NULL,
    client_name          TEXT NOT NULL DEFAULT '',
    description          TEXT NOT NULL DEFAULT '',
    enabled              INTEGER NOT NULL,
    allow_client_id_only INTEGER NOT NULL,
    read_only            INTEGER NOT NULL,
    throttling_quota     INTEGER NOT NULL,
    daily_quota          INTEGER NOT NULL,
    monthly_quota        INTEGER NOT NULL,
    valid_until          INTEGER,
    authorized_entities  TEXT NOT NULL DEFAULT '[]',
    metadata             TEXT NOT NULL DEFAULT '{}',
    tags                 TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX apikeys_enabled ON apikeys(enabled, seq);

-- One row per (key, entity) so group and service filters use an index
-- instead of scanning every key's JSON.
CREATE TABLE apikey_entities (
    client_id TEXT NOT NULL REFERENCES apikeys(client_id) ON DELETE CASCADE,
    entity    TEXT NOT NULL,
    PRIMARY KEY (client_id, entity)
) WITHOUT ROWID;
CREATE INDEX apikey_entities_entity ON apikey_entities(entity, client_id);

CREATE TABLE plugins (
    id                 TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    sha256             TEXT NOT NULL,
    abi                TEXT NOT NULL,
    memory_limit_pages INTEGER NOT NULL,
    timeout_ms         INTEGER NOT NULL,
    pool_size          INTEGER NOT NULL,
    wasm               BLOB NOT NULL
);

-- No foreign key to apikeys: a flush racing a key's deletion must not fail
-- the whole batch; SaveCounters skips unknown keys instead.
CREATE TABLE counters (
    client_id TEXT NOT NULL,
    period    TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (client_id, period)
) WITHOUT ROWID;
CREATE INDEX counters_period ON counters(period);

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
