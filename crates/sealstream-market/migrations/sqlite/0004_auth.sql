-- Sign-in (EIP-4361) nonces: issued by POST /v1/auth/nonce, valid for 5
-- minutes, used at most once (POST /v1/auth/verify sets used_at in the
-- transaction that creates the session). Expired rows are deleted when new
-- nonces are issued.
CREATE TABLE auth_nonces (
    nonce TEXT PRIMARY KEY NOT NULL,
    domain TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_unix BIGINT NOT NULL,
    used_at TEXT,
    used_by TEXT
);
CREATE INDEX auth_nonces_expiry ON auth_nonces (expires_unix);

-- When a principal first signed in (NULL: never). The first sign-in of a DID
-- that is not a machine grants owner and buyer; later ones grant nothing, so
-- a role an admin revoked stays revoked.
ALTER TABLE principals ADD COLUMN first_sign_in_at TEXT;
