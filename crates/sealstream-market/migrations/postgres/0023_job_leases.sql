-- Which server process (replica) runs each background job (issue 24;
-- `lease`): the payment watcher, the operator-key granter, the
-- subscription sweep, the escrow job, the audit head signer, the public
-- statistics and the session purge each run on the one replica that holds
-- the job's lease. The holder renews it before every pass; a lease not
-- renewed by `expires_unix` (the database's clock) may be taken by another
-- replica, so a replica that dies has its jobs picked up.
CREATE TABLE job_leases (
    job TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_unix BIGINT NOT NULL
);
