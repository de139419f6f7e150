//! The validation error shared by every parser of caller input.

use std::fmt;

/// Caller input that breaks a rule: which field, and which rule.
///
/// Messages never include the offending value, since the value may be a secret
/// (a key of the wrong length is still most of a key).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The field, with a path where it helps (`encryption.nonce`, `rules[2].action`).
    pub field: String,
    /// The rule it breaks (`32 bytes of hex`, `required`, …).
    pub constraint: String,
}

impl ValidationError {
    /// A validation error for `field` breaking `constraint`.
    pub fn new(field: impl Into<String>, constraint: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            constraint: constraint.into(),
        }
    }

    /// The same error with `prefix.` put before the field name.
    pub fn within(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.field = format!("{prefix}.{}", self.field);
        }
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.constraint)
    }
}
