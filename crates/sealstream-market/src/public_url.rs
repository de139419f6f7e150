//! The server's public address: the base of every URL the server writes
//! (order, confirmation and release links) and the domain and URI sign-in
//! messages must name.
//!
//! It comes from configuration only (`--public-url`), never from a request's
//! `Host` or `X-Forwarded-*` headers: a server that trusted them would let an
//! attacker's site obtain sign-in messages for the attacker's domain that the
//! real server accepts (a relayed sign-in), and would write links to the
//! attacker's host into orders. Without `--public-url`, a server listening on
//! a loopback address uses `http://<its listen address>`; on any other address
//! it refuses to start.

use std::fmt;
use std::net::SocketAddr;

/// Why a public URL is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicUrlError {
    /// Not `http(s)://host[:port]` with an optional path.
    #[error("--public-url {given:?}: {reason}")]
    Malformed {
        /// What was given.
        given: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No public URL and a listen address that is not loopback.
    #[error(
        "--public-url is required when listening on {listen}, a non-loopback address: \
         sign-in messages and the links in orders name it (for example \
         --public-url https://market.example.org)"
    )]
    Required {
        /// The listen address.
        listen: SocketAddr,
    },
}

/// `scheme://authority[/path]`, without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    authority: String,
    https: bool,
}

impl PublicUrl {
    /// Parses `http(s)://host[:port][/path]`: no user info, query or
    /// fragment; the host is a DNS name, an IPv4 address or a bracketed IPv6
    /// address.
    pub fn parse(text: &str) -> Result<PublicUrl, PublicUrlError> {
        let bad = |reason| PublicUrlError::Malformed {
            given: text.to_string(),
            reason,
        };
        let trimmed = text.trim_end_matches('/');
        let (https, rest) = if let Some(rest) = trimmed.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = trimmed.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with https:// or http://"));
        };
        if rest.contains(['?', '#', '@']) {
            return Err(bad("no user info, query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "-.:[]_".contains(c);
        if !authority.chars().all(valid_char) {
            return Err(bad(
                "the host may hold letters, digits, '-', '.', ':' and brackets",
            ));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the path may not hold spaces"));
        }
        let authority = authority.to_ascii_lowercase();
        let scheme = if https { "https" } else { "http" };
        Ok(PublicUrl {
            base: format!("{scheme}://{authority}{path}"),
            authority,
            https,
        })
    }

    /// `configured` if given, else `http://<listen>` when `listen` is a
    /// loopback address; an error otherwise.
    pub fn resolve(
        configured: Option<&str>,
        listen: SocketAddr,
    ) -> Result<PublicUrl, PublicUrlError> {
        match configured {
            Some(text) => PublicUrl::parse(text),
            None if listen.ip().is_loopback() => PublicUrl::parse(&format!("http://{listen}")),
            None => Err(PublicUrlError::Required { listen }),
        }
    }

    /// The base every URL the server writes starts with (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host[:port]` (lower case): the domain sign-in messages must name.
    pub fn domain(&self) -> &str {
        &self.authority
    }

    /// Whether the server is reached over HTTPS (the web pages' cookies are
    /// then `Secure`).
    pub fn https(&self) -> bool {
        self.https
    }

    /// The URI a sign-in message names: `scheme://domain`.
    pub fn sign_in_uri(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_operators_write() {
        let u = PublicUrl::parse("https://Market.Example.org/").unwrap();
        assert_eq!(u.base(), "https://market.example.org");
        assert_eq!(u.domain(), "market.example.org");
        assert_eq!(u.sign_in_uri(), "https://market.example.org");
        let u = PublicUrl::parse("http://127.0.0.1:8080/market").unwrap();
        assert_eq!(u.base(), "http://127.0.0.1:8080/market");
        assert_eq!(u.domain(), "127.0.0.1:8080");
        let u = PublicUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.domain(), "[::1]:9000");
    }

    #[test]
    fn refuses_what_is_not_a_base_url() {
        for bad in [
            "market.example.org",
            "ftp://market.example.org",
            "https://",
            "https://user@market.example.org",
            "https://market.example.org/?q=1",
            "https://market example.org",
            "https://market.example.org/a b",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_listeners_get_a_default_others_must_say() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            PublicUrl::resolve(None, local).unwrap().base(),
            "http://127.0.0.1:8080"
        );
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(PublicUrl::resolve(None, v6).unwrap().domain(), "[::1]:8080");
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            PublicUrl::resolve(None, any),
            Err(PublicUrlError::Required { listen: any })
        );
        assert_eq!(
            PublicUrl::resolve(Some("https://m.example"), any)
                .unwrap()
                .domain(),
            "m.example"
        );
    }
}
