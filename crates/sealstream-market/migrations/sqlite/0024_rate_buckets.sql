-- Rate limits every replica shares (issue 24; `limits::SharedBuckets`): on
-- PostgreSQL the token buckets of the write limits and the payment-proof
-- limits are rows here, so N replicas allow a principal, an address or an
-- order the configured rate in all, not N times it. A bucket holds
-- `tokens_micro` millionths of a token at `at_us` (the database's clock,
-- microseconds); it is refilled when next used. Rows idle for a day are
-- deleted by the session purge (a bucket left alone that long is full,
-- which is what a missing row means). SQLite has one process, whose
-- buckets stay in memory: the table is unused there.
CREATE TABLE rate_buckets (
    scope TEXT NOT NULL,
    bucket_key TEXT NOT NULL,
    tokens_micro BIGINT NOT NULL,
    at_us BIGINT NOT NULL,
    PRIMARY KEY (scope, bucket_key)
);
CREATE INDEX rate_buckets_at ON rate_buckets (at_us);
