//! Sign-In with Ethereum (EIP-4361) messages: a strict parser, the exact
//! text form, and a helper that builds the message a client signs.
//!
//! ```text
//! [scheme://]{domain} wants you to sign in with your Ethereum account:
//! {address}
//!
//! {statement}
//!
//! URI: {uri}
//! Version: 1
//! Chain ID: {chain-id}
//! Nonce: {nonce}
//! Issued At: {issued-at}
//! Expiration Time: {expiration-time}     (optional)
//! Not Before: {not-before}               (optional)
//! Request ID: {request-id}               (optional)
//! Resources:                             (optional, then one "- {uri}" per line)
//! - {uri}
//! ```
//!
//! The statement line and the empty line after it are left out when there is
//! no statement (so the address is followed by two empty lines). Lines end
//! with LF only; there is no final LF. The parser follows the ABNF of the EIP
//! and is lossless: `parse(text)?.to_string() == text` for every accepted
//! text, so a signature over the text is a signature over the parsed
//! message. Where the ABNF allows two spellings of one value the parser
//! accepts only one: a chain id has no leading zeros, a present statement is
//! not empty, and a `Resources:` line is followed by at least one resource.
//!
//! Errors are [`ValidationError`]s naming the field as `message.<field>`
//! (`message.nonce`, `message.issuedAt`, `message.resources[2]`), or
//! `message` when the lines themselves are out of shape. They never quote
//! the offending value.

use std::fmt;

use sealstream_core::identity::{Did, EvmAddress};
use sealstream_core::utc;
use sealstream_core::ValidationError;

/// The text after the domain on the first line.
pub const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";
/// The only version EIP-4361 defines.
pub const VERSION: &str = "1";
/// The EVM chain id of peaq mainnet, used by [`sign_in_message`].
pub const PEAQ_CHAIN_ID: u64 = 3338;
/// Shortest nonce the EIP allows.
pub const MIN_NONCE_LEN: usize = 8;

const URI_TAG: &str = "URI: ";
const VERSION_TAG: &str = "Version: ";
const CHAIN_TAG: &str = "Chain ID: ";
const NONCE_TAG: &str = "Nonce: ";
const ISSUED_TAG: &str = "Issued At: ";
const EXPIRATION_TAG: &str = "Expiration Time: ";
const NOT_BEFORE_TAG: &str = "Not Before: ";
const REQUEST_ID_TAG: &str = "Request ID: ";
const RESOURCES_LINE: &str = "Resources:";
const RESOURCE_PREFIX: &str = "- ";

/// An RFC 3339 date-time as written in the message, with the instant it
/// names.
#[derive(Clone, PartialEq, Eq)]
pub struct Timestamp {
    text: String,
    unix: i64,
}

impl Timestamp {
    /// Parses an RFC 3339 `date-time` (`2021-09-30T16:25:24Z`,
    /// `2021-09-30T16:25:24.123+02:00`).
    pub fn parse(text: &str, field: &str) -> Result<Timestamp, ValidationError> {
        let unix = utc::parse_rfc3339(text).ok_or_else(|| {
            ValidationError::new(
                field,
                "RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM))",
            )
        })?;
        Ok(Timestamp {
            text: text.to_string(),
            unix,
        })
    }

    /// The UTC time `YYYY-MM-DDTHH:MM:SSZ` of `unix` seconds since the epoch.
    pub fn from_unix(unix: u64) -> Timestamp {
        let unix = i64::try_from(unix).unwrap_or(i64::MAX);
        Timestamp {
            text: utc::format_seconds(unix),
            unix,
        }
    }

    /// Seconds since the epoch (a fraction of a second is dropped).
    pub fn unix_seconds(&self) -> i64 {
        self.unix
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.text)
    }
}

/// An EIP-4361 message.
///
/// The fields are public; [`SiweMessage::validate`] checks them against the
/// ABNF (and [`SiweMessage::parse`] only returns valid messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiweMessage {
    /// The optional `scheme://` before the domain (`https`).
    pub scheme: Option<String>,
    /// The RFC 3986 authority asking for the signature (`example.com`,
    /// `127.0.0.1:8080`).
    pub domain: String,
    /// The signer, written in EIP-55 checksum form.
    pub address: EvmAddress,
    /// A one-line statement for the user, if any.
    pub statement: Option<String>,
    /// The RFC 3986 URI the sign-in is for.
    pub uri: String,
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// At least 8 ASCII letters and digits, chosen by the relying party.
    pub nonce: String,
    /// When the message was made.
    pub issued_at: Timestamp,
    /// When the message stops being valid, if it does.
    pub expiration_time: Option<Timestamp>,
    /// When the message starts being valid, if not at once.
    pub not_before: Option<Timestamp>,
    /// A relying-party identifier of the request (RFC 3986 `*pchar`).
    pub request_id: Option<String>,
    /// RFC 3986 URIs the user wants resolved as part of the sign-in.
    pub resources: Vec<String>,
}

impl SiweMessage {
    /// Parses the exact text of a message (see the module documentation).
    pub fn parse(text: &str) -> Result<SiweMessage, ValidationError> {
        Parser::new(text).message()
    }

    /// The DID of the signer, `did:peaq:0x<address>`.
    pub fn did(&self) -> Did {
        Did::from_address(self.address)
    }

    /// The authority (`host[:port]`) of [`uri`](Self::uri) without user
    /// information, if the URI has one.
    pub fn uri_authority(&self) -> Option<&str> {
        uri_authority(&self.uri)
    }

    /// Checks every field against the ABNF of EIP-4361 (and the stricter
    /// rules in the module documentation).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(scheme) = &self.scheme {
            if !is_scheme(scheme) {
                return Err(err(
                    "scheme",
                    "URI scheme (a letter, then letters, digits, +, -, .)",
                ));
            }
        }
        check_authority(&self.domain).map_err(|c| err("domain", c))?;
        if let Some(statement) = &self.statement {
            check_statement(statement)?;
        }
        check_uri(&self.uri).map_err(|c| err("uri", c))?;
        check_nonce(&self.nonce)?;
        for (ts, name) in [
            (Some(&self.issued_at), "issuedAt"),
            (self.expiration_time.as_ref(), "expirationTime"),
            (self.not_before.as_ref(), "notBefore"),
        ] {
            if let Some(ts) = ts {
                if utc::parse_rfc3339(&ts.text) != Some(ts.unix) {
                    return Err(err(name, "RFC 3339 date-time"));
                }
            }
        }
        if let Some(id) = &self.request_id {
            check_request_id(id)?;
        }
        for (i, r) in self.resources.iter().enumerate() {
            check_uri(r).map_err(|c| err(&format!("resources[{i}]"), c))?;
        }
        Ok(())
    }
}

impl fmt::Display for SiweMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        writeln!(f, "{}{PREAMBLE}", self.domain)?;
        writeln!(f, "{}", self.address.to_checksum())?;
        writeln!(f)?;
        if let Some(statement) = &self.statement {
            writeln!(f, "{statement}")?;
        }
        writeln!(f)?;
        writeln!(f, "{URI_TAG}{}", self.uri)?;
        writeln!(f, "{VERSION_TAG}{VERSION}")?;
        writeln!(f, "{CHAIN_TAG}{}", self.chain_id)?;
        writeln!(f, "{NONCE_TAG}{}", self.nonce)?;
        write!(f, "{ISSUED_TAG}{}", self.issued_at)?;
        if let Some(t) = &self.expiration_time {
            write!(f, "\n{EXPIRATION_TAG}{t}")?;
        }
        if let Some(t) = &self.not_before {
            write!(f, "\n{NOT_BEFORE_TAG}{t}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, "\n{REQUEST_ID_TAG}{id}")?;
        }
        if !self.resources.is_empty() {
            write!(f, "\n{RESOURCES_LINE}")?;
            for r in &self.resources {
                write!(f, "\n{RESOURCE_PREFIX}{r}")?;
            }
        }
        Ok(())
    }
}

/// The message a client signs to sign in to the server at `domain` (as the
/// server's `POST /v1/auth/nonce` returned it, with `uri` and `nonce`), for
/// `did`, on the peaq chain id ([`PEAQ_CHAIN_ID`]). Checked with
/// [`SiweMessage::validate`].
pub fn sign_in_message(
    domain: &str,
    uri: &str,
    did: &Did,
    nonce: &str,
    issued_at: Timestamp,
    expiration: Option<Timestamp>,
    statement: Option<&str>,
) -> Result<SiweMessage, ValidationError> {
    let message = SiweMessage {
        scheme: None,
        domain: domain.to_string(),
        address: did.address(),
        statement: statement.map(str::to_string),
        uri: uri.to_string(),
        chain_id: PEAQ_CHAIN_ID,
        nonce: nonce.to_string(),
        issued_at,
        expiration_time: expiration,
        not_before: None,
        request_id: None,
        resources: Vec::new(),
    };
    message.validate()?;
    Ok(message)
}

fn err(field: &str, constraint: impl Into<String>) -> ValidationError {
    ValidationError::new(format!("message.{field}"), constraint)
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            lines: text.split('\n').collect(),
            next: 0,
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.next).copied()
    }

    fn take(&mut self) -> Option<&'a str> {
        let line = self.peek();
        if line.is_some() {
            self.next += 1;
        }
        line
    }

    /// The value of the next line, which must start with `tag`.
    fn tagged(&mut self, tag: &str, field: &str) -> Result<&'a str, ValidationError> {
        match self.peek().and_then(|l| l.strip_prefix(tag)) {
            Some(value) => {
                self.next += 1;
                Ok(value)
            }
            None => Err(err(
                field,
                format!("expected the line \"{tag}…\" (line {})", self.next + 1),
            )),
        }
    }

    /// The value of the next line if it starts with `tag`.
    fn optional(&mut self, tag: &str) -> Option<&'a str> {
        let value = self.peek().and_then(|l| l.strip_prefix(tag));
        if value.is_some() {
            self.next += 1;
        }
        value
    }

    fn empty_line(&mut self, after: &str) -> Result<(), ValidationError> {
        match self.take() {
            Some("") => Ok(()),
            _ => Err(ValidationError::new(
                "message",
                format!(
                    "expected an empty line after the {after} (line {})",
                    self.next
                ),
            )),
        }
    }

    fn message(mut self) -> Result<SiweMessage, ValidationError> {
        let first = self.take().unwrap_or_default();
        let origin = first.strip_suffix(PREAMBLE).ok_or_else(|| {
            ValidationError::new(
                "message",
                format!("the first line must be \"{{domain}}{PREAMBLE}\""),
            )
        })?;
        let (scheme, domain) = match origin.split_once("://") {
            Some((scheme, domain)) => (Some(scheme.to_string()), domain),
            None => (None, origin),
        };
        if let Some(scheme) = &scheme {
            if !is_scheme(scheme) {
                return Err(err(
                    "scheme",
                    "URI scheme (a letter, then letters, digits, +, -, .)",
                ));
            }
        }
        check_authority(domain).map_err(|c| err("domain", c))?;

        let address_line = self
            .take()
            .ok_or_else(|| err("address", "expected the address on line 2"))?;
        let address = EvmAddress::parse(address_line, "message.address")?;
        if address.to_checksum() != address_line {
            return Err(err("address", "not in EIP-55 checksum form"));
        }
        self.empty_line("address")?;
        let statement = match self.peek() {
            Some("") => {
                self.next += 1;
                None
            }
            Some(line)
                if line.starts_with(URI_TAG)
                    && self.lines.get(self.next + 1).is_some_and(|l| !l.is_empty()) =>
            {
                return Err(ValidationError::new(
                    "message",
                    "expected two empty lines between the address and \"URI: \" when there is no statement",
                ))
            }
            Some(line) => {
                self.next += 1;
                check_statement(line)?;
                self.empty_line("statement")?;
                Some(line.to_string())
            }
            None => return Err(err("uri", "expected the line \"URI: …\"")),
        };

        let uri = self.tagged(URI_TAG, "uri")?;
        check_uri(uri).map_err(|c| err("uri", c))?;
        let version = self.tagged(VERSION_TAG, "version")?;
        if version != VERSION {
            return Err(err("version", "must be 1"));
        }
        let chain_id = parse_chain_id(self.tagged(CHAIN_TAG, "chainId")?)?;
        let nonce = self.tagged(NONCE_TAG, "nonce")?;
        check_nonce(nonce)?;
        let issued_at = Timestamp::parse(self.tagged(ISSUED_TAG, "issuedAt")?, "message.issuedAt")?;
        let expiration_time = self
            .optional(EXPIRATION_TAG)
            .map(|t| Timestamp::parse(t, "message.expirationTime"))
            .transpose()?;
        let not_before = self
            .optional(NOT_BEFORE_TAG)
            .map(|t| Timestamp::parse(t, "message.notBefore"))
            .transpose()?;
        let request_id = self.optional(REQUEST_ID_TAG);
        if let Some(id) = request_id {
            check_request_id(id)?;
        }
        let mut resources = Vec::new();
        if self.peek() == Some(RESOURCES_LINE) {
            self.next += 1;
            while let Some(line) = self.take() {
                let i = resources.len();
                let r = line.strip_prefix(RESOURCE_PREFIX).ok_or_else(|| {
                    err(&format!("resources[{i}]"), "expected a line \"- {uri}\"")
                })?;
                check_uri(r).map_err(|c| err(&format!("resources[{i}]"), c))?;
                resources.push(r.to_string());
            }
            if resources.is_empty() {
                return Err(err(
                    "resources",
                    "at least one \"- {uri}\" line after \"Resources:\"",
                ));
            }
        }
        if self.peek().is_some() {
            return Err(ValidationError::new(
                "message",
                format!(
                    "unexpected line {}: after \"Issued At\" come only \"Expiration Time\", \"Not Before\", \"Request ID\" and \"Resources:\", in that order, with no final line break",
                    self.next + 1
                ),
            ));
        }
        Ok(SiweMessage {
            scheme,
            domain: domain.to_string(),
            address,
            statement,
            uri: uri.to_string(),
            chain_id,
            nonce: nonce.to_string(),
            issued_at,
            expiration_time,
            not_before,
            request_id: request_id.map(str::to_string),
            resources,
        })
    }
}

fn parse_chain_id(text: &str) -> Result<u64, ValidationError> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(err("chainId", "decimal integer without leading zeros"));
    }
    text.parse()
        .map_err(|_| err("chainId", "decimal integer that fits in 64 bits"))
}

fn check_nonce(nonce: &str) -> Result<(), ValidationError> {
    if nonce.len() < MIN_NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(err("nonce", "at least 8 ASCII letters and digits"));
    }
    Ok(())
}

fn check_statement(statement: &str) -> Result<(), ValidationError> {
    let ok = !statement.is_empty()
        && statement
            .bytes()
            .all(|b| b == b' ' || is_unreserved(b) || is_gen_delim(b) || is_sub_delim(b));
    if ok {
        Ok(())
    } else {
        Err(err(
            "statement",
            "one non-empty line of ASCII letters, digits, spaces and the RFC 3986 reserved and unreserved marks",
        ))
    }
}

fn check_request_id(id: &str) -> Result<(), ValidationError> {
    if all_chars(id, |b| {
        is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@'
    }) {
        Ok(())
    } else {
        Err(err("requestId", "RFC 3986 path characters (pchar)"))
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_gen_delim(b: u8) -> bool {
    matches!(b, b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether every byte of `text` passes `allowed`, or is part of a `%XX`
/// escape.
fn all_chars(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if allowed(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Checks an RFC 3986 authority with a non-empty host.
fn check_authority(authority: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "RFC 3986 authority: [userinfo@]host[:port]";
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, rest)) => {
            if !all_chars(userinfo, |b| {
                is_unreserved(b) || is_sub_delim(b) || b == b':'
            }) {
                return Err(SHAPE);
            }
            rest
        }
        None => authority,
    };
    let (host, port) = if let Some(literal) = host_port.strip_prefix('[') {
        let (inside, after) = literal.split_once(']').ok_or(SHAPE)?;
        let inside_ok = !inside.is_empty()
            && inside
                .bytes()
                .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':');
        if !inside_ok {
            return Err(SHAPE);
        }
        match after {
            "" => (inside, None),
            _ => (inside, Some(after.strip_prefix(':').ok_or(SHAPE)?)),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => {
                if !all_chars(host, |b| is_unreserved(b) || is_sub_delim(b)) {
                    return Err(SHAPE);
                }
                (host, Some(port))
            }
            None => {
                if !all_chars(host_port, |b| is_unreserved(b) || is_sub_delim(b)) {
                    return Err(SHAPE);
                }
                (host_port, None)
            }
        }
    };
    if host.is_empty() {
        return Err("RFC 3986 authority with a host");
    }
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SHAPE);
        }
    }
    Ok(())
}

/// Checks an RFC 3986 URI: a scheme, `:`, then URI characters; an
/// authority after `//` must be valid too.
fn check_uri(uri: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "RFC 3986 URI (scheme:…)";
    let (scheme, rest) = uri.split_once(':').ok_or(SHAPE)?;
    if !is_scheme(scheme) {
        return Err(SHAPE);
    }
    if !all_chars(rest, |b| {
        is_unreserved(b) || is_gen_delim(b) || is_sub_delim(b)
    }) {
        return Err(SHAPE);
    }
    // '[' and ']' are only allowed inside the authority (an IP literal).
    let after_authority = match rest.strip_prefix("//") {
        Some(hier) => {
            let end = hier.find(['/', '?', '#']).unwrap_or(hier.len());
            let authority = &hier[..end];
            if !authority.is_empty() {
                check_authority(authority)?;
            }
            &hier[end..]
        }
        None => rest,
    };
    if after_authority.contains(['[', ']']) {
        return Err(SHAPE);
    }
    // '#' may appear once, starting the fragment.
    if let Some((_, fragment)) = after_authority.split_once('#') {
        if fragment.contains('#') {
            return Err(SHAPE);
        }
    }
    Ok(())
}

/// The authority of `uri` without user information (`host[:port]`), if it
/// has one.
pub fn uri_authority(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let hier = rest.strip_prefix("//")?;
    let end = hier.find(['/', '?', '#']).unwrap_or(hier.len());
    let authority = &hier[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host_port.is_empty()).then_some(host_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example of EIP-4361 (with its address, which is in checksum
    /// form).
    const SPEC_EXAMPLE: &str = "service.org wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.org/tos

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json";

    #[test]
    fn parses_the_spec_example() {
        let m = SiweMessage::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(m.scheme, None);
        assert_eq!(m.domain, "service.org");
        assert_eq!(
            m.address.to_checksum(),
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
        );
        assert_eq!(
            m.statement.as_deref(),
            Some("I accept the ServiceOrg Terms of Service: https://service.org/tos")
        );
        assert_eq!(m.uri, "https://service.org/login");
        assert_eq!(m.uri_authority(), Some("service.org"));
        assert_eq!(m.chain_id, 1);
        assert_eq!(m.nonce, "32891756");
        assert_eq!(m.issued_at.as_str(), "2021-09-30T16:25:24Z");
        assert_eq!(m.issued_at.unix_seconds(), 1_633_019_124);
        assert_eq!(m.expiration_time, None);
        assert_eq!(m.resources.len(), 2);
        assert_eq!(m.to_string(), SPEC_EXAMPLE);
        m.validate().unwrap();
    }

    #[test]
    fn optional_fields_and_no_statement() {
        let text = "https://example.com:8443 wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2


URI: https://example.com:8443
Version: 1
Chain ID: 3338
Nonce: abcdEFGH1234
Issued At: 2024-02-29T23:59:59.123+01:30
Expiration Time: 2024-03-01T00:10:00Z
Not Before: 2024-02-29T22:00:00-00:00
Request ID: req-1:@!";
        let m = SiweMessage::parse(text).unwrap();
        assert_eq!(m.scheme.as_deref(), Some("https"));
        assert_eq!(m.domain, "example.com:8443");
        assert_eq!(m.statement, None);
        assert_eq!(m.request_id.as_deref(), Some("req-1:@!"));
        assert_eq!(
            m.issued_at.unix_seconds(),
            Timestamp::parse("2024-02-29T22:29:59Z", "t")
                .unwrap()
                .unix_seconds()
        );
        assert_eq!(m.to_string(), text);
    }

    fn field_of(text: &str) -> String {
        SiweMessage::parse(text).unwrap_err().field
    }

    #[test]
    fn errors_name_the_field() {
        let bad_nonce = SPEC_EXAMPLE.replace("Nonce: 32891756", "Nonce: 1234567");
        assert_eq!(field_of(&bad_nonce), "message.nonce");
        let bad_nonce = SPEC_EXAMPLE.replace("Nonce: 32891756", "Nonce: 12345678-");
        assert_eq!(field_of(&bad_nonce), "message.nonce");
        let lower = SPEC_EXAMPLE.replace(
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
            "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
        );
        assert_eq!(field_of(&lower), "message.address");
        let v2 = SPEC_EXAMPLE.replace("Version: 1", "Version: 2");
        assert_eq!(field_of(&v2), "message.version");
        let chain = SPEC_EXAMPLE.replace("Chain ID: 1", "Chain ID: 01");
        assert_eq!(field_of(&chain), "message.chainId");
        let time = SPEC_EXAMPLE.replace("16:25:24Z", "16:25:24");
        assert_eq!(field_of(&time), "message.issuedAt");
        let time = SPEC_EXAMPLE.replace("2021-09-30", "2021-02-30");
        assert_eq!(field_of(&time), "message.issuedAt");
        let uri = SPEC_EXAMPLE.replace("URI: https://service.org/login", "URI: not a uri");
        assert_eq!(field_of(&uri), "message.uri");
        let no_uri = SPEC_EXAMPLE.replace("URI: https://service.org/login\n", "");
        assert_eq!(field_of(&no_uri), "message.uri");
        let domain = SPEC_EXAMPLE.replace("service.org wants", "serv ice.org wants");
        assert_eq!(field_of(&domain), "message.domain");
        let statement = SPEC_EXAMPLE.replace("I accept", "I accept \"quoted\"");
        assert_eq!(field_of(&statement), "message.statement");
        let resource = SPEC_EXAMPLE.replace("- https://example.com", "* https://example.com");
        assert_eq!(field_of(&resource), "message.resources[1]");
        assert_eq!(
            field_of(&format!("{SPEC_EXAMPLE}\n")),
            "message.resources[2]"
        );
        let trailing = SPEC_EXAMPLE.replace("Resources:", "Surprise: 1\nResources:");
        assert_eq!(field_of(&trailing), "message");
        let crlf = SPEC_EXAMPLE.replace('\n', "\r\n");
        assert_eq!(field_of(&crlf), "message");
        assert_eq!(field_of(""), "message");
        // The two-line-break form some libraries wrote without a statement.
        let short = "service.org wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z";
        assert_eq!(field_of(short), "message");
    }

    #[test]
    fn sign_in_message_builds_a_valid_message() {
        let key = sealstream_core::keys::MachineSigningKey::generate();
        let did = Did::of_key(&key);
        let m = sign_in_message(
            "127.0.0.1:8080",
            "http://127.0.0.1:8080",
            &did,
            "0123456789abcdef",
            Timestamp::from_unix(1_700_000_000),
            Some(Timestamp::from_unix(1_700_000_600)),
            Some("Sign in to the sealstream market."),
        )
        .unwrap();
        let text = m.to_string();
        assert_eq!(SiweMessage::parse(&text).unwrap(), m);
        assert_eq!(m.did(), did);
        assert!(
            text.contains("Issued At: 2023-11-14T22:13:20Z\nExpiration Time: 2023-11-14T22:23:20Z")
        );
        let e = sign_in_message(
            "127.0.0.1:8080",
            "http://127.0.0.1:8080",
            &did,
            "short",
            Timestamp::from_unix(0),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "message.nonce");
    }

    #[test]
    fn from_unix_keeps_the_instant() {
        for secs in [0u64, 951_782_400, 1_795_282_537, 4_102_444_800] {
            let t = Timestamp::from_unix(secs);
            assert_eq!(t.unix_seconds(), i64::try_from(secs).unwrap());
            assert_eq!(Timestamp::parse(t.as_str(), "t").unwrap(), t);
        }
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        (
            0u64..4_000_000_000,
            prop::option::of("[0-9]{1,9}"),
            prop::option::of((any::<bool>(), 0i64..24, 0i64..60)),
        )
            .prop_map(|(secs, frac, offset)| {
                let base = utc::format_seconds(secs as i64);
                let mut text = base[..19].to_string();
                if let Some(frac) = frac {
                    text.push('.');
                    text.push_str(&frac);
                }
                match offset {
                    None => text.push('Z'),
                    Some((plus, h, m)) => {
                        text.push_str(&format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' }))
                    }
                }
                Timestamp::parse(&text, "t").expect("generated timestamps are valid")
            })
    }

    fn message() -> impl Strategy<Value = SiweMessage> {
        let uri = "(https|http|ipfs|urn)://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,12}){0,3}(\\?[a-z=&]{0,10})?(#[a-z]{0,6})?"
            .prop_filter("valid percent escapes", |u| check_uri(u).is_ok());
        (
            (
                prop::option::of("[a-z][a-z0-9+.-]{0,6}"),
                "[a-z0-9-]{1,12}(\\.[a-z]{2,6}){0,2}(:[0-9]{1,5})?",
                any::<[u8; 20]>(),
                prop::option::of("[A-Za-z0-9 .,:;!?()'/@#&=+$*~_-]{1,80}"),
                uri.clone(),
                any::<u64>(),
                "[A-Za-z0-9]{8,32}",
            ),
            (
                timestamp(),
                prop::option::of(timestamp()),
                prop::option::of(timestamp()),
                prop::option::of("[A-Za-z0-9._~!$&'()*+,;=:@-]{0,20}"),
                prop::collection::vec(uri, 0..4),
            ),
        )
            .prop_map(
                |(
                    (scheme, domain, address, statement, uri, chain_id, nonce),
                    (issued_at, expiration_time, not_before, request_id, resources),
                )| SiweMessage {
                    scheme,
                    domain,
                    address: EvmAddress(address),
                    statement,
                    uri,
                    chain_id,
                    nonce,
                    issued_at,
                    expiration_time,
                    not_before,
                    request_id,
                    resources,
                },
            )
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(m in message()) {
            m.validate().unwrap();
            let text = m.to_string();
            let parsed = SiweMessage::parse(&text).unwrap();
            prop_assert_eq!(&parsed, &m);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn parse_never_panics_and_is_lossless(text in "[ -~\n]{0,300}") {
            if let Ok(m) = SiweMessage::parse(&text) {
                prop_assert_eq!(m.to_string(), text);
            }
        }
    }
}
