-- The change log: every committed write gets the next revision, in the same
-- transaction as its effect, with one row per entity it touched. The gateway,
-- cluster workers and the audit log read it in revision order.
CREATE TABLE revisions (
    revision INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,  -- epoch milliseconds
    actor    TEXT NOT NULL      -- apikey:<clientId>, user:<name>, cli or system
);

-- In the order the write made them (rowid), inside its revision.
CREATE TABLE changes (
    revision INTEGER NOT NULL REFERENCES revisions(revision),
    kind     TEXT NOT NULL,
    id       TEXT NOT NULL,
    op       TEXT NOT NULL
);
CREATE INDEX changes_revision ON changes(revision);

-- Quota counters become increments that the flush adds, so that several
-- writers (a second implementation on Redis, a restarted node) add up instead
-- of overwriting each other. The values already stored stay valid as totals.

-- Usage history: calls per key and day, added by every flush and never reset
-- by a quota reset, for the dashboard's chart; and when each key last called.
CREATE TABLE usage_days (
    client_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (client_id, day)
) WITHOUT ROWID;

CREATE TABLE key_last_used (
    client_id TEXT PRIMARY KEY,
    at        INTEGER NOT NULL  -- epoch milliseconds
) WITHOUT ROWID;

-- Usage so far carried over into the history, so the chart keeps its past.
INSERT INTO usage_days (client_id, day, count)
    SELECT client_id, period, count FROM counters WHERE length(period) = 10;
