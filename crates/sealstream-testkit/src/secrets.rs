//! Watching for secrets in output: whether a text holds a secret key's hex
//! (whole, or any 16-digit window of it, in any letter case), and a
//! [`Watch`] that asserts no error or `Debug` output of a test does.

use std::fmt::{Debug, Display};

/// The secrets under watch (64 lowercase hex digits each) and how many
/// texts were checked.
pub struct Watch {
    secrets: Vec<(String, String)>,
    /// How many texts were checked.
    pub checked: usize,
}

/// Whether `text` contains `secret_hex` or any 16-digit window of it, in any case.
pub fn contains_secret(text: &str, secret_hex: &str) -> bool {
    let text = text.to_ascii_lowercase();
    secret_hex
        .as_bytes()
        .windows(16)
        .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

impl Watch {
    /// A watch of no secret yet.
    pub fn new() -> Self {
        Watch {
            secrets: Vec::new(),
            checked: 0,
        }
    }

    /// Watch for the secret `hex` (64 hex digits, optional `0x`), named `name`.
    pub fn add(&mut self, name: &str, hex: &str) {
        let hex = hex.trim_start_matches("0x").to_ascii_lowercase();
        assert_eq!(hex.len(), 64, "{name}");
        self.secrets.push((name.to_string(), hex));
    }

    /// Asserts that `text` holds no watched secret; `context` names it.
    pub fn text(&mut self, context: &str, text: &str) {
        for (name, hex) in &self.secrets {
            assert!(
                !contains_secret(text, hex),
                "{context}: output contains (part of) the secret {name}: {text}"
            );
        }
        self.checked += 1;
    }

    /// An error's `Display`, `Debug` and pretty `Debug`.
    pub fn error<E: Display + Debug>(&mut self, context: &str, e: &E) {
        self.text(context, &e.to_string());
        self.text(context, &format!("{e:?}"));
        self.text(context, &format!("{e:#?}"));
    }

    /// A value's `Debug` and pretty `Debug`.
    pub fn debug<T: Debug>(&mut self, context: &str, v: &T) {
        self.text(context, &format!("{v:?}"));
        self.text(context, &format!("{v:#?}"));
    }

    /// The error of a result that must fail.
    pub fn fails<T, E: Display + Debug>(&mut self, context: &str, r: Result<T, E>) {
        match r {
            Ok(_) => panic!("{context}: expected an error"),
            Err(e) => self.error(context, &e),
        }
    }

    /// The error of a result that may fail; `Ok` values are not inspected.
    pub fn maybe<T, E: Display + Debug>(&mut self, context: &str, r: Result<T, E>) {
        if let Err(e) = r {
            self.error(context, &e);
        }
    }
}

impl Default for Watch {
    fn default() -> Self {
        Watch::new()
    }
}
