//! Field rules: the per-topic privacy part of a Data Event Map.
//!
//! The semantics are the reference's (`apply_field_rules` in peaq-os-sdk),
//! quirks included, because signatures are computed over the result:
//!
//! - the governing rule of a dot path is the first rule whose `fieldPath`
//!   equals it or is an ancestor of it (`a` governs `a.b`, not `ab`);
//! - a non-empty object is acted on as one unit only if every leaf below it
//!   has the same governing rule; otherwise the engine descends into it, so an
//!   earlier, more specific rule beats a later parent rule;
//! - top-level `null` values are left untouched (nested ones are not);
//! - results are written back by dot path into a copy of the input, so keys
//!   that contain dots address nested objects, as in the reference.

mod anonymize;
mod field_crypto;

use crate::error::ValidationError;
use crate::json::{Map, Value};
use crate::keys::FieldKey;

pub use field_crypto::{decrypt_field, encrypt_field, FieldDecryptError, FIELD_ALGORITHM};

/// What a rule does with the fields it governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Keep the value as it is.
    Include,
    /// Remove the field.
    Exclude,
    /// Replace the value with its AES-256-GCM encryption.
    Encrypt,
    /// Replace the value with an anonymized form.
    Anonymize,
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Include => "include",
            Action::Exclude => "exclude",
            Action::Encrypt => "encrypt",
            Action::Anonymize => "anonymize",
        }
    }

    /// Parse a wire name.
    pub fn parse(text: &str) -> Option<Action> {
        Some(match text {
            "include" => Action::Include,
            "exclude" => Action::Exclude,
            "encrypt" => Action::Encrypt,
            "anonymize" => Action::Anonymize,
            _ => return None,
        })
    }
}

/// How an `anonymize` rule anonymizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnonymizeStrategy {
    /// `0x` + SHA-256 of the value's canonical JSON.
    Hash,
    /// Decade buckets for numbers, masks for strings, recursively.
    Generalize,
    /// The string `[REDACTED]`.
    Redact,
}

impl AnonymizeStrategy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnonymizeStrategy::Hash => "hash",
            AnonymizeStrategy::Generalize => "generalize",
            AnonymizeStrategy::Redact => "redact",
        }
    }

    /// Parse a wire name.
    pub fn parse(text: &str) -> Option<AnonymizeStrategy> {
        Some(match text {
            "hash" => AnonymizeStrategy::Hash,
            "generalize" => AnonymizeStrategy::Generalize,
            "redact" => AnonymizeStrategy::Redact,
            _ => return None,
        })
    }
}

/// One rule: a dot path, an action, and for `anonymize` a strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRule {
    /// Dot-separated path (`gps.latitude`).
    pub field_path: String,
    /// The action.
    pub action: Action,
    /// Required when `action` is [`Action::Anonymize`], ignored otherwise.
    pub anonymize_strategy: Option<AnonymizeStrategy>,
}

/// The ordered rules of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRules {
    /// The topic name (`/sensor/gps`).
    pub topic: String,
    /// Ordered rules; the first match governs.
    pub rules: Vec<FieldRule>,
    /// Action for fields no rule governs (`include` when absent).
    pub default_action: Option<Action>,
}

/// Why rules could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// An `anonymize` action without a strategy governs a field.
    #[error("{path}: anonymizeStrategy is required when action is anonymize")]
    MissingStrategy {
        /// The field path.
        path: String,
    },
    /// A number too large to generalize (the reference fails here too).
    #[error("{path}: number out of range for generalize")]
    NumberOutOfRange {
        /// The field path.
        path: String,
        /// The number is too close to zero (a subnormal: the reference divides by
        /// zero), rather than too large (the reference overflows).
        too_small: bool,
    },
    /// `encrypt` was needed but no field key was given.
    #[error("{path}: encrypt needs a field encryption key")]
    NoFieldKey {
        /// The field path.
        path: String,
    },
}

impl TopicRules {
    /// Rules of a topic with `include` as default.
    pub fn new(topic: impl Into<String>, rules: Vec<FieldRule>) -> Self {
        TopicRules {
            topic: topic.into(),
            rules,
            default_action: None,
        }
    }

    /// Parse the rules file shape `{topic, defaultAction?, rules:[{fieldPath, action, anonymizeStrategy?}]}`.
    /// Stricter than the reference: an `anonymize` rule without a strategy,
    /// an unknown action or strategy, and `defaultAction: anonymize` are refused
    /// up front rather than at the first matching field.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("rules file", "expected a JSON object"))?;
        let topic = match obj.get("topic") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ValidationError::new("topic", "expected a string")),
        };
        let default_action = match obj.get("defaultAction") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Action::parse(s) {
                Some(Action::Anonymize) => {
                    return Err(ValidationError::new(
                        "defaultAction",
                        "anonymize cannot be a default action (it needs a strategy)",
                    ))
                }
                Some(a) => Some(a),
                None => {
                    return Err(ValidationError::new(
                        "defaultAction",
                        "one of include, exclude, encrypt",
                    ))
                }
            },
            Some(_) => {
                return Err(ValidationError::new(
                    "defaultAction",
                    "expected a string or null",
                ))
            }
        };
        let rules_value = obj.get("rules").unwrap_or(&Value::Null);
        let items = match rules_value {
            Value::Null => &[][..],
            Value::Array(items) => items.as_slice(),
            _ => return Err(ValidationError::new("rules", "expected an array")),
        };
        let mut rules = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            let r = item
                .as_object()
                .ok_or_else(|| ValidationError::new(format!("rules[{i}]"), "expected an object"))?;
            let field_path = r
                .get("fieldPath")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ValidationError::new(at("fieldPath"), "required non-empty string"))?
                .to_string();
            let action = r
                .get("action")
                .and_then(Value::as_str)
                .and_then(Action::parse)
                .ok_or_else(|| {
                    ValidationError::new(
                        at("action"),
                        "one of include, exclude, encrypt, anonymize",
                    )
                })?;
            let anonymize_strategy = match r.get("anonymizeStrategy") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_str().and_then(AnonymizeStrategy::parse).ok_or_else(
                    || {
                        ValidationError::new(
                            at("anonymizeStrategy"),
                            "one of hash, generalize, redact",
                        )
                    },
                )?),
            };
            if action == Action::Anonymize && anonymize_strategy.is_none() {
                return Err(ValidationError::new(
                    at("anonymizeStrategy"),
                    "required when action is anonymize",
                ));
            }
            rules.push(FieldRule {
                field_path,
                action,
                anonymize_strategy,
            });
        }
        Ok(TopicRules {
            topic,
            rules,
            default_action,
        })
    }

    /// The rules file shape, as [`TopicRules::from_json`] reads it.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("topic".into(), Value::from(self.topic.as_str()));
        obj.insert(
            "defaultAction".into(),
            self.default_action.map(|a| Value::from(a.as_str())).into(),
        );
        let rules = self
            .rules
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("fieldPath".into(), Value::from(r.field_path.as_str()));
                m.insert("action".into(), Value::from(r.action.as_str()));
                if let Some(s) = r.anonymize_strategy {
                    m.insert("anonymizeStrategy".into(), Value::from(s.as_str()));
                }
                Value::Object(m)
            })
            .collect();
        obj.insert("rules".into(), Value::Array(rules));
        Value::Object(obj)
    }

    /// Whether applying these rules can need a field key.
    pub fn needs_field_key(&self) -> bool {
        self.default_action == Some(Action::Encrypt)
            || self.rules.iter().any(|r| r.action == Action::Encrypt)
    }

    /// Index of the governing rule of `path`.
    fn governing(&self, path: &str) -> Option<usize> {
        self.rules.iter().position(|rule| {
            let fp = rule.field_path.as_str();
            path == fp
                || (path.len() > fp.len()
                    && path.starts_with(fp)
                    && path.as_bytes()[fp.len()] == b'.')
        })
    }

    /// Apply the rules to `fields`, returning the processed payload.
    /// `field_key` is needed only if an `encrypt` action applies.
    pub fn apply(&self, fields: &Map, field_key: Option<&FieldKey>) -> Result<Map, RulesError> {
        let mut output = fields.clone();
        let ctx = Ctx {
            rules: self,
            default: self.default_action.unwrap_or(Action::Include),
            field_key,
        };
        for (key, value) in fields {
            if value.is_null() {
                continue;
            }
            ctx.process(&mut output, key, value)?;
        }
        Ok(output)
    }
}

struct Ctx<'a> {
    rules: &'a TopicRules,
    default: Action,
    field_key: Option<&'a FieldKey>,
}

fn non_empty_object(value: &Value) -> Option<&Map> {
    value.as_object().filter(|m| !m.is_empty())
}

impl Ctx<'_> {
    fn process(&self, output: &mut Map, path: &str, value: &Value) -> Result<(), RulesError> {
        let rule = self.rules.governing(path);
        if let Some(map) = non_empty_object(value) {
            if !self.uniform(map, path, rule) {
                for (key, child) in map {
                    self.process(output, &format!("{path}.{key}"), child)?;
                }
                return Ok(());
            }
        }
        let action = rule.map_or(self.default, |i| self.rules.rules[i].action);
        match action {
            Action::Include => {}
            Action::Exclude => delete_at_path(output, path),
            Action::Encrypt => {
                let key = self.field_key.ok_or_else(|| RulesError::NoFieldKey {
                    path: path.to_string(),
                })?;
                set_at_path(output, path, encrypt_field(value, key));
            }
            Action::Anonymize => {
                let strategy = rule
                    .and_then(|i| self.rules.rules[i].anonymize_strategy)
                    .ok_or_else(|| RulesError::MissingStrategy {
                        path: path.to_string(),
                    })?;
                set_at_path(output, path, anonymize::anonymize(value, strategy, path)?);
            }
        }
        Ok(())
    }

    /// Whether every leaf under `map` has `root` as its governing rule.
    fn uniform(&self, map: &Map, path: &str, root: Option<usize>) -> bool {
        map.iter().all(|(key, child)| {
            let child_path = format!("{path}.{key}");
            match non_empty_object(child) {
                Some(inner) => self.uniform(inner, &child_path, root),
                None => self.rules.governing(&child_path) == root,
            }
        })
    }
}

/// A dot path's parent segments and its last segment; `None` for the empty
/// path, which names no field.
fn split_path(path: &str) -> Option<(Vec<&str>, &str)> {
    if path.is_empty() {
        return None;
    }
    let mut segments: Vec<&str> = path.split('.').collect();
    let last = segments.pop()?;
    Some((segments, last))
}

/// `set_field_at_path`: write by dot path, replacing non-objects (and
/// `null`s) on the way with new objects.
fn set_at_path(root: &mut Map, path: &str, value: Value) {
    let Some((parents, last)) = split_path(path) else {
        return;
    };
    let mut current = root;
    for segment in parents {
        let is_object = matches!(current.get(segment), Some(Value::Object(_)));
        if !is_object {
            current.insert(segment.to_string(), Value::Object(Map::new()));
        }
        current = match current.get_mut(segment) {
            Some(Value::Object(m)) => m,
            _ => unreachable!("an object was just ensured at this segment"),
        };
    }
    current.insert(last.to_string(), value);
}

/// `delete_field_at_path`: remove by dot path if every parent exists and is an object.
fn delete_at_path(root: &mut Map, path: &str) {
    let Some((parents, last)) = split_path(path) else {
        return;
    };
    let mut current = root;
    for segment in parents {
        current = match current.get_mut(segment) {
            Some(Value::Object(m)) => m,
            _ => return,
        };
    }
    current.shift_remove(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn rules(json: &str) -> TopicRules {
        TopicRules::from_json(&parse(json.as_bytes()).unwrap()).unwrap()
    }

    fn fields(json: &str) -> Map {
        parse(json.as_bytes()).unwrap().as_object().unwrap().clone()
    }

    #[test]
    fn specific_rule_beats_later_parent() {
        let r = rules(
            r#"{"topic":"t","rules":[{"fieldPath":"a.keep","action":"include"},{"fieldPath":"a","action":"exclude"}]}"#,
        );
        let out = r
            .apply(&fields(r#"{"a":{"keep":1,"drop":2},"b":3}"#), None)
            .unwrap();
        assert_eq!(
            crate::json::write::to_python_compact(&Value::Object(out)),
            r#"{"a":{"keep":1},"b":3}"#
        );
    }

    #[test]
    fn uniform_subtree_is_one_unit() {
        let r = rules(
            r#"{"topic":"t","rules":[{"fieldPath":"a","action":"anonymize","anonymizeStrategy":"redact"}]}"#,
        );
        let out = r
            .apply(&fields(r#"{"a":{"x":1,"y":{"z":2}}}"#), None)
            .unwrap();
        assert_eq!(
            crate::json::write::to_python_compact(&Value::Object(out)),
            r#"{"a":{"__anonymized":true,"value":"[REDACTED]","strategy":"redact"}}"#
        );
    }

    #[test]
    fn top_level_nulls_untouched_nested_nulls_acted_on() {
        let r = rules(
            r#"{"topic":"t","defaultAction":"exclude","rules":[{"fieldPath":"o.k","action":"include"}]}"#,
        );
        let out = r
            .apply(&fields(r#"{"n":null,"o":{"m":null,"k":1},"k":2}"#), None)
            .unwrap();
        assert_eq!(
            crate::json::write::to_python_compact(&Value::Object(out)),
            r#"{"n":null,"o":{"k":1}}"#
        );
    }

    #[test]
    fn prefix_is_not_ancestor() {
        let r = rules(r#"{"topic":"t","rules":[{"fieldPath":"a","action":"exclude"}]}"#);
        let out = r.apply(&fields(r#"{"a":1,"ab":2}"#), None).unwrap();
        assert_eq!(
            crate::json::write::to_python_compact(&Value::Object(out)),
            r#"{"ab":2}"#
        );
    }

    #[test]
    fn dotted_keys_address_nested_objects_like_the_reference() {
        let r = rules(
            r#"{"topic":"t","rules":[{"fieldPath":"a.b","action":"anonymize","anonymizeStrategy":"redact"}]}"#,
        );
        let out = r.apply(&fields(r#"{"a.b":1,"a":5}"#), None).unwrap();
        assert_eq!(
            crate::json::write::to_python_compact(&Value::Object(out)),
            r#"{"a.b":1,"a":{"b":{"__anonymized":true,"value":"[REDACTED]","strategy":"redact"}}}"#
        );
    }

    #[test]
    fn validation_names_the_rule() {
        let err = TopicRules::from_json(
            &parse(br#"{"topic":"t","rules":[{"fieldPath":"a","action":"include"},{"fieldPath":"b","action":"anonymize"}]}"#).unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules[1].anonymizeStrategy: required when action is anonymize"
        );
        let err = TopicRules::from_json(
            &parse(br#"{"rules":[{"fieldPath":"a","action":"hide"}]}"#).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.field, "rules[0].action");
    }

    #[test]
    fn encrypt_without_key_is_an_error() {
        let r = rules(r#"{"topic":"t","rules":[{"fieldPath":"a","action":"encrypt"}]}"#);
        assert!(matches!(
            r.apply(&fields(r#"{"a":1}"#), None),
            Err(RulesError::NoFieldKey { .. })
        ));
        let key = FieldKey::generate();
        let out = r
            .apply(&fields(r#"{"a":{"x":[1,2]}}"#), Some(&key))
            .unwrap();
        assert_eq!(
            decrypt_field(&out["a"], &key).unwrap(),
            parse(br#"{"x":[1,2]}"#).unwrap()
        );
    }
}
