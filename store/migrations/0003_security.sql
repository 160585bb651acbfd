-- Security (contract section 14): secret rotation, user roles, the audit log.

-- Rotation settings (hours); the secret the last rotation replaced and until
-- when it is accepted (epoch ms); when the key was last rotated, or when its
-- automatic rotation was switched on, which starts the next period.
ALTER TABLE apikeys ADD COLUMN rotation_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apikeys ADD COLUMN rotation_every INTEGER NOT NULL DEFAULT 744;
ALTER TABLE apikeys ADD COLUMN rotation_grace INTEGER NOT NULL DEFAULT 168;
ALTER TABLE apikeys ADD COLUMN previous_secret TEXT;
ALTER TABLE apikeys ADD COLUMN previous_valid_until INTEGER;
ALTER TABLE apikeys ADD COLUMN rotated_at INTEGER;

-- The users made before roles existed are the bootstrap admin.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';

-- The audit log: one row per entry in chain order (seq). Every field of an
-- entry is a column, so that verifying the chain rebuilds each entry's JSON
-- from what is stored: a changed column breaks its hash.
CREATE TABLE audit (
    seq      INTEGER PRIMARY KEY,
    revision INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    ip       TEXT,
    action   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    id       TEXT NOT NULL,
    changes  TEXT NOT NULL,
    hash     TEXT NOT NULL
);
CREATE INDEX audit_revision ON audit(revision);
CREATE INDEX audit_kind_id ON audit(kind, id);

-- What the audit log last saw of each entity, as JSON with its secrets
-- replaced by keyed fingerprints, so that the next write's entry can say
-- which fields changed.
CREATE TABLE audit_state (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
