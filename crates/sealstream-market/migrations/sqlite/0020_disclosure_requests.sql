-- Disclosure requests (issue 21; sealstream_api::disclosures): an auditor
-- files one with a legal basis (`scope`: the period or the case, JSON;
-- `fields`: receipt fields asked for, JSON); two distinct approvers make
-- it take effect (`approved_at`, `access_until_unix`, `sealed` when both
-- sealed it, `orders` the case's orders fixed then, JSON); the parties it
-- concerns are in `disclosure_subjects`, to be told unless sealed.
CREATE TABLE disclosure_requests (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    requester TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    scope TEXT NOT NULL,
    fields TEXT NOT NULL,
    access_seconds BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    approved_at TEXT,
    access_until_unix BIGINT,
    sealed BIGINT NOT NULL,
    orders TEXT,
    rejection TEXT
);
CREATE INDEX disclosure_requests_requester ON disclosure_requests (requester, created_at);
CREATE TABLE disclosure_approvals (
    request_id TEXT NOT NULL REFERENCES disclosure_requests (id),
    approver TEXT NOT NULL,
    at TEXT NOT NULL,
    seal BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
CREATE TABLE disclosure_subjects (
    request_id TEXT NOT NULL REFERENCES disclosure_requests (id),
    did TEXT NOT NULL,
    PRIMARY KEY (request_id, did)
);
CREATE INDEX disclosure_subjects_did ON disclosure_subjects (did);
