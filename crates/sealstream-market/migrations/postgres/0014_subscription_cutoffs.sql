-- Cut-off notices of live subscriptions (issue 17; docs/subscriptions.md):
-- once a subscription is final and its access end has passed, the server
-- signs a `sealstream.subscription-cutoff.v1` notice with its receipt key
-- and keeps it here, one per subscription, as served (the document's
-- text). The primary key makes a second issue a no-op.
CREATE TABLE subscription_cutoffs (
    subscription_id TEXT PRIMARY KEY NOT NULL,
    document TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
