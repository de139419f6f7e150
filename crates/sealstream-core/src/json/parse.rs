//! A strict RFC 8259 parser into [`Value`].
//!
//! It accepts what Python's `json.loads` accepts for valid documents, with two
//! deliberate refusals: `NaN`/`Infinity` literals and numbers that overflow a
//! double (Python would accept them and then fail to sign), and lone UTF-16
//! surrogates in `\u` escapes (they cannot be represented as UTF-8).

use super::{Map, Number, Value};

/// Limits applied while parsing untrusted input.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum nesting depth of arrays and objects.
    pub max_depth: usize,
    /// Refuse an object that has the same key twice (instead of keeping the
    /// last value, as Python does). Signed documents set it: two readers
    /// must not see two different values under one signature.
    pub reject_duplicate_keys: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 512,
            reject_duplicate_keys: false,
        }
    }
}

/// A JSON syntax error with its position (1-based line and column, in bytes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line} column {column}")]
pub struct JsonError {
    /// What is wrong.
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (bytes).
    pub column: usize,
}

/// Parse one JSON document (surrounding whitespace allowed, nothing else).
pub fn parse(input: &[u8]) -> Result<Value, JsonError> {
    parse_with_limits(input, Limits::default())
}

/// Parse one JSON document with explicit [`Limits`].
pub fn parse_with_limits(input: &[u8], limits: Limits) -> Result<Value, JsonError> {
    let mut p = Parser {
        input,
        pos: 0,
        depth: 0,
        limits,
    };
    // A UTF-8 byte order mark is not JSON; Python refuses it too.
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.pos != input.len() {
        return Err(p.error("extra data after the JSON value"));
    }
    Ok(value)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    limits: Limits,
}

impl<'a> Parser<'a> {
    fn error(&self, message: &str) -> JsonError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, pos: usize, message: &str) -> JsonError {
        let upto = &self.input[..pos.min(self.input.len())];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        let column = pos - upto.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
        JsonError {
            message: message.to_string(),
            line,
            column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &[u8], value: Value) -> Result<Value, JsonError> {
        if self.input[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(value)
        } else {
            Err(self.error("expecting value"))
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.error("expecting value, found end of input")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expecting value")),
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(self.error("nesting too deep"));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        self.pos += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expecting property name enclosed in double quotes"));
            }
            let key_pos = self.pos;
            let key = self.string()?;
            if self.limits.reject_duplicate_keys && map.contains_key(&key) {
                return Err(self.error_at(key_pos, &format!("duplicate key {key:?}")));
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expecting ':' delimiter"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            // Python dict semantics: first position, last value.
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expecting ',' delimiter")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expecting ',' delimiter")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error_at(start, "expecting value")),
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            let dot = self.pos;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                // Python stops the number before the '.', which then is extra data.
                return Err(self.error_at(dot, "invalid number: digits required after '.'"));
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            let e = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_at(e, "invalid number: digits required in exponent"));
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            is_float = true;
        }
        // The slice is ASCII by construction.
        let text = std::str::from_utf8(&self.input[start..self.pos]).unwrap_or("0");
        if is_float {
            let value: f64 = text
                .parse()
                .map_err(|_| self.error_at(start, "invalid number"))?;
            Number::from_f64(value)
                .map(Value::Number)
                .ok_or_else(|| self.error_at(start, "number out of range for a double"))
        } else {
            Number::from_int_text(text)
                .map(Value::Number)
                .ok_or_else(|| self.error_at(start, "invalid number"))
        }
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let Some(chunk) = self.input.get(self.pos..self.pos + 4) else {
            return Err(self.error("invalid \\uXXXX escape"));
        };
        let mut v: u16 = 0;
        for b in chunk {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(self.error("invalid \\uXXXX escape")),
            };
            v = (v << 4) | u16::from(d);
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            // Copy the run of plain bytes in one go.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.extend_from_slice(&self.input[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string starting")),
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(out)
                        .map_err(|_| self.error_at(open, "invalid UTF-8 in string"));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(esc) = self.peek() else {
                        return Err(self.error_at(open, "unterminated string starting"));
                    };
                    self.pos += 1;
                    match esc {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first) {
                                if self.input.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.error("lone surrogate in \\u escape"));
                                }
                                self.pos += 2;
                                let second = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&second) {
                                    return Err(self.error("lone surrogate in \\u escape"));
                                }
                                0x10000
                                    + ((u32::from(first) - 0xD800) << 10)
                                    + (u32::from(second) - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&first) {
                                return Err(self.error("lone surrogate in \\u escape"));
                            } else {
                                u32::from(first)
                            };
                            let ch = char::from_u32(code)
                                .ok_or_else(|| self.error("invalid \\u escape"))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.error_at(self.pos - 2, "invalid \\escape")),
                    }
                }
                Some(_) => return Err(self.error("invalid control character in string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_like_python() {
        let v = parse(br#"[1, 1.0, -0, 1e5, 12345678901234567890123, -0.0]"#).unwrap();
        let items = v.as_array().unwrap();
        assert!(items[0].as_number().unwrap().is_int());
        assert!(!items[1].as_number().unwrap().is_int());
        assert_eq!(items[2].as_number().unwrap().to_python_text(), "0");
        assert_eq!(items[3].as_number().unwrap().to_python_text(), "100000.0");
        assert_eq!(
            items[4].as_number().unwrap().to_python_text(),
            "12345678901234567890123"
        );
        assert_eq!(items[5].as_number().unwrap().to_python_text(), "-0.0");
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let v = parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        let m = v.as_object().unwrap();
        let keys: Vec<_> = m.keys().cloned().collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m["a"], Value::from(3u64));
    }

    #[test]
    fn duplicate_keys_can_be_refused() {
        let strict = Limits {
            reject_duplicate_keys: true,
            ..Limits::default()
        };
        let e = parse_with_limits(b"{\"a\":1,\n \"b\":{\"a\":2},\"a\":3}", strict).unwrap_err();
        assert_eq!(e.message, "duplicate key \"a\"");
        assert_eq!((e.line, e.column), (2, 14));
        assert!(parse_with_limits(br#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#, strict).is_ok());
    }

    #[test]
    fn surrogate_pairs_and_lone_surrogates() {
        assert_eq!(parse(br#""\ud83e\udd16""#).unwrap(), Value::from("🤖"));
        assert!(parse(br#""\ud83e""#).is_err());
        assert!(parse(br#""\udd16x""#).is_err());
    }

    #[test]
    fn errors_have_positions() {
        let e = parse(b"{\n  \"a\": tru\n}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8));
        assert!(parse(b"[1,]").is_err());
        assert!(parse(b"01").is_err());
        assert!(parse(b"1.").is_err());
        assert!(parse(b"NaN").is_err());
        assert!(parse(b"1e400").is_err());
        assert!(parse(b"\"a\tb\"").is_err());
        assert!(parse(b"{} x").is_err());
    }

    #[test]
    fn depth_is_limited() {
        let deep = "[".repeat(600) + &"]".repeat(600);
        assert!(parse(deep.as_bytes()).is_err());
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(ok.as_bytes()).is_ok());
    }
}
