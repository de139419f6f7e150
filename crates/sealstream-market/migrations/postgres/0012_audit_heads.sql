-- Issue 14, item 15: signed heads of the audit log. The server signs "event
-- number `events` has hash `head`" with its receipt key at start, while
-- events are appended (every --audit-sign-interval), on request of an
-- auditor and at shutdown; `market audit verify` and every start check the
-- log against the newest one (and the copy in <data dir>/audit-head.json).
CREATE TABLE audit_heads (
    events BIGINT PRIMARY KEY NOT NULL,
    head TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    server_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
