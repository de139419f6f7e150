//! Session tokens: 32 random bytes, hex, given to the client once; the
//! database holds only their SHA-256 and an expiry.

use rand::RngCore;
use sealstream_core::utc;
use sha2::{Digest, Sha256};

use super::db;
use crate::store::{Store, Tx};

/// How long a session lasts unless the sign-in message says less: 12 hours.
pub const DEFAULT_TTL_SECS: i64 = 12 * 3600;

/// A new session token, as handed to the client.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token text, to send as `Authorization: Bearer <token>`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a session for `did` that expires at `expires_unix`, inside `tx`.
pub async fn issue_in(tx: &mut Tx, did: &str, expires_unix: i64) -> Result<Token, sqlx::Error> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    db::insert_session(tx, &hash(&token), did, &utc::now(), expires_unix).await?;
    Ok(Token(token))
}

/// Creates a session for `did` lasting [`DEFAULT_TTL_SECS`] (for tools and
/// tests that have already established who `did` is).
pub async fn issue(store: &Store, did: &str) -> Result<Token, sqlx::Error> {
    let mut tx = store.begin_sqlx().await?;
    let token = issue_in(&mut tx, did, utc::now_unix() + DEFAULT_TTL_SECS).await?;
    tx.commit().await?;
    Ok(token)
}

/// Deletes the session of `token` inside `tx`; returns whether there was
/// one.
pub async fn revoke_in(tx: &mut Tx, token: &str) -> Result<bool, sqlx::Error> {
    db::delete_session(tx, &hash(token)).await
}

/// Whether `token` has the form of a token this module hands out: 64
/// lowercase hex digits. Anything else is no session: in particular a
/// text that would hash to another kind of row (a web link's).
fn well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The DID of a live session, or `None` for an unknown, expired or
/// malformed token.
pub async fn lookup(store: &Store, token: &str) -> Result<Option<String>, sqlx::Error> {
    if !well_formed(token) {
        return Ok(None);
    }
    db::session_did(store, &hash(token), utc::now_unix()).await
}

/// How long a web sign-in link works: 5 minutes.
pub const WEB_LINK_TTL_SECS: i64 = 300;

/// The stored hash of a web sign-in link's token: a different hash domain
/// from session tokens, so a link is never a bearer token and a session
/// token is never a link.
fn link_hash(token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("sealstream web link v1:{token}").as_bytes(),
    ))
}

/// Creates a single-use web sign-in link for `did` that works until
/// `expires_unix`, inside `tx`; returns its token.
pub async fn issue_web_link_in(
    tx: &mut Tx,
    did: &str,
    expires_unix: i64,
) -> Result<Token, sqlx::Error> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    db::insert_session(tx, &link_hash(&token), did, &utc::now(), expires_unix).await?;
    Ok(Token(token))
}

/// The DID a web sign-in link would sign in, without using it up: `None`
/// when the link is unknown, expired or already used.
pub async fn web_link_did(store: &Store, token: &str) -> Result<Option<String>, sqlx::Error> {
    if !well_formed(token) {
        return Ok(None);
    }
    db::session_did(store, &link_hash(token), utc::now_unix()).await
}

/// Uses up a web sign-in link inside `tx`: the DID it signs in, or `None`
/// when the link is unknown, expired or already used. Of two concurrent
/// uses, one gets the DID.
pub async fn use_web_link_in(tx: &mut Tx, token: &str) -> Result<Option<String>, sqlx::Error> {
    if !well_formed(token) {
        return Ok(None);
    }
    let hash = link_hash(token);
    let Some(did) = db::session_did_in(tx, &hash, utc::now_unix()).await? else {
        return Ok(None);
    };
    Ok(db::delete_session(tx, &hash).await?.then_some(did))
}

/// The CSRF token of the web pages' forms for a session: derived from the
/// session token, which only the session's browser holds (in an HttpOnly
/// cookie), so a page elsewhere cannot know it.
pub fn csrf_token(session_token: &str) -> String {
    hex::encode(&Sha256::digest(format!("sealstream csrf v1:{session_token}").as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_finds_its_did_until_it_expires() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let token = issue(&store, "did:peaq:0xA").await.unwrap();
        assert_eq!(
            lookup(&store, token.expose()).await.unwrap().as_deref(),
            Some("did:peaq:0xA")
        );
        assert_eq!(lookup(&store, "nope").await.unwrap(), None);
        let mut tx = store.begin().await.unwrap();
        let old = issue_in(&mut tx, "did:peaq:0xB", utc::now_unix() - 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(lookup(&store, old.expose()).await.unwrap(), None);
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        // Only the hash is stored.
        let (stored,): (String,) = sqlx::query_as("SELECT token_hash FROM sessions LIMIT 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_ne!(stored, token.expose());
    }

    #[tokio::test]
    async fn a_web_link_works_once_and_is_not_a_session() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let link = issue_web_link_in(&mut tx, "did:peaq:0xA", utc::now_unix() + 60)
            .await
            .unwrap();
        let old = issue_web_link_in(&mut tx, "did:peaq:0xB", utc::now_unix() - 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // Not a bearer token.
        assert_eq!(lookup(&store, link.expose()).await.unwrap(), None);
        // A link's stored hash cannot be reached as a bearer token either
        // (its hash domain's prefix is no token).
        let disguised = format!("sealstream web link v1:{}", link.expose());
        assert_eq!(lookup(&store, &disguised).await.unwrap(), None);
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            use_web_link_in(&mut tx, link.expose())
                .await
                .unwrap()
                .as_deref(),
            Some("did:peaq:0xA")
        );
        tx.commit().await.unwrap();
        // A session token is not a link.
        let token = issue(&store, "did:peaq:0xC").await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(use_web_link_in(&mut tx, link.expose()).await.unwrap(), None);
        assert_eq!(use_web_link_in(&mut tx, old.expose()).await.unwrap(), None);
        assert_eq!(
            use_web_link_in(&mut tx, token.expose()).await.unwrap(),
            None
        );
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a").len(), 32);
    }
}
