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
        self.apply_owned(fields.clone(), field_key)
    }

    /// [`TopicRules::apply`] on a payload of one's own, changed in place
    /// rather than copied: the same result.
    pub fn apply_owned(
        &self,
        mut fields: Map,
        field_key: Option<&FieldKey>,
    ) -> Result<Map, RulesError> {
        let ctx = Ctx {
            rules: self,
            default: self.default_action.unwrap_or(Action::Include),
            field_key,
        };
        if !plain_keys(&fields) {
            // A key with a dot in it (or an empty one) makes a dot path name
            // another field than the one being read, or none: then the
            // reference's way.
            return ctx.apply_by_path(&fields);
        }
        let mut path = String::with_capacity(64);
        ctx.process_in_place(&mut fields, &mut path, true)?;
        Ok(fields)
    }
}

/// Whether every key of `map`, and of the objects in it, is a non-empty
/// key without a dot: then each field's dot path names that field.
fn plain_keys(map: &Map) -> bool {
    // Keys are short: a plain loop, not `contains` (a call to `memchr`
    // per key showed in the agent's profile).
    map.iter().all(|(key, value)| {
        !key.is_empty()
            && key.bytes().all(|b| b != b'.')
            && value.as_object().is_none_or(plain_keys)
    })
}

/// What a rule's action does to a field.
enum Outcome {
    /// It stays as it is.
    Keep,
    /// It is removed.
    Remove,
    /// It is replaced by this value.
    Replace(Value),
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
    /// The reference's way: read `fields`, write a copy of it by dot path.
    fn apply_by_path(&self, fields: &Map) -> Result<Map, RulesError> {
        let mut output = fields.clone();
        for (key, value) in fields {
            if value.is_null() {
                continue;
            }
            self.process(&mut output, key, value)?;
        }
        Ok(output)
    }

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
        match self.outcome(rule, value, path)? {
            Outcome::Keep => {}
            Outcome::Remove => delete_at_path(output, path),
            Outcome::Replace(new) => set_at_path(output, path, new),
        }
        Ok(())
    }

    /// What the action governing a field (or a uniform subtree) at `path`
    /// does to its `value`.
    fn outcome(
        &self,
        rule: Option<usize>,
        value: &Value,
        path: &str,
    ) -> Result<Outcome, RulesError> {
        let action = rule.map_or(self.default, |i| self.rules.rules[i].action);
        Ok(match action {
            Action::Include => Outcome::Keep,
            Action::Exclude => Outcome::Remove,
            Action::Encrypt => {
                let key = self.field_key.ok_or_else(|| RulesError::NoFieldKey {
                    path: path.to_string(),
                })?;
                Outcome::Replace(encrypt_field(value, key))
            }
            Action::Anonymize => {
                let strategy = rule
                    .and_then(|i| self.rules.rules[i].anonymize_strategy)
                    .ok_or_else(|| RulesError::MissingStrategy {
                        path: path.to_string(),
                    })?;
                Outcome::Replace(anonymize::anonymize(value, strategy, path)?)
            }
        })
    }

    /// [`Ctx::process`] for every field of `map` (whose dot path is
    /// `path`), in place; `top`: `map` is the payload, whose `null`s are
    /// left as they are. `path` is a buffer, given back as it came.
    fn process_in_place(
        &self,
        map: &mut Map,
        path: &mut String,
        top: bool,
    ) -> Result<(), RulesError> {
        let mut failed = None;
        map.retain(|key, value| {
            if failed.is_some() || (top && value.is_null()) {
                return true;
            }
            let len = path.len();
            if !top {
                path.push('.');
            }
            path.push_str(key);
            let keep = self.process_value(value, path).unwrap_or_else(|e| {
                failed = Some(e);
                true
            });
            path.truncate(len);
            keep
        });
        failed.map_or(Ok(()), Err)
    }

    /// What [`Ctx::process`] does to the field at `path`, done to `value`
    /// itself; whether the field stays.
    fn process_value(&self, value: &mut Value, path: &mut String) -> Result<bool, RulesError> {
        let rule = self.rules.governing(path);
        if let Value::Object(map) = value {
            if !map.is_empty() && !self.uniform_at(map, path, rule) {
                self.process_in_place(map, path, false)?;
                return Ok(true);
            }
        }
        Ok(match self.outcome(rule, value, path)? {
            Outcome::Keep => true,
            Outcome::Remove => false,
            Outcome::Replace(new) => {
                *value = new;
                true
            }
        })
    }

    /// Whether every leaf under `map` has `root` as its governing rule.
    fn uniform(&self, map: &Map, path: &str, root: Option<usize>) -> bool {
        let mut path = path.to_string();
        self.uniform_at(map, &mut path, root)
    }

    /// [`Ctx::uniform`] with `path` a buffer, given back as it came.
    fn uniform_at(&self, map: &Map, path: &mut String, root: Option<usize>) -> bool {
        map.iter().all(|(key, child)| {
            let len = path.len();
            path.push('.');
            path.push_str(key);
            let same = match non_empty_object(child) {
                Some(inner) => self.uniform_at(inner, path, root),
                None => self.rules.governing(path) == root,
            };
            path.truncate(len);
            same
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

    mod in_place {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (-1e6f64..1e6)
                    .prop_map(|f| Value::Number(crate::json::Number::from_f64(f).unwrap())),
                "[a-z ]{0,8}".prop_map(Value::from),
                prop::collection::vec(any::<i32>().prop_map(|i| Value::from(i64::from(i))), 0..3)
                    .prop_map(Value::from),
            ]
        }

        fn payload() -> impl Strategy<Value = Map> {
            let value = leaf().prop_recursive(3, 24, 4, |inner| {
                prop::collection::vec(("[abc]", inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect()))
            });
            prop::collection::vec(("[abcd]", value), 0..5).prop_map(|e| e.into_iter().collect())
        }

        fn rule() -> impl Strategy<Value = Value> {
            let path = prop::collection::vec("[abcd]", 1..4).prop_map(|s| s.join("."));
            let action = prop_oneof![
                Just(("include", None)),
                Just(("exclude", None)),
                Just(("anonymize", Some("hash"))),
                Just(("anonymize", Some("generalize"))),
                Just(("anonymize", Some("redact"))),
            ];
            (path, action).prop_map(|(path, (action, strategy))| {
                let mut m = Map::new();
                m.insert("fieldPath".into(), Value::from(path));
                m.insert("action".into(), Value::from(action));
                if let Some(s) = strategy {
                    m.insert("anonymizeStrategy".into(), Value::from(s));
                }
                Value::Object(m)
            })
        }

        proptest! {
            /// Changing the payload in place gives what reading it and
            /// writing a copy by dot path (the reference's way) gives.
            #[test]
            fn in_place_is_by_path(
                fields in payload(),
                rules in prop::collection::vec(rule(), 0..5),
                default in prop_oneof![Just(Value::Null), Just(Value::from("exclude")), Just(Value::from("include"))],
            ) {
                let mut spec = Map::new();
                spec.insert("topic".into(), Value::from("t"));
                spec.insert("defaultAction".into(), default);
                spec.insert("rules".into(), Value::Array(rules));
                let r = TopicRules::from_json(&Value::Object(spec)).unwrap();
                let ctx = Ctx { rules: &r, default: r.default_action.unwrap_or(Action::Include), field_key: None };
                let by_path = ctx.apply_by_path(&fields).map_err(|e| e.to_string());
                let in_place = r.apply_owned(fields.clone(), None).map_err(|e| e.to_string());
                prop_assert!(plain_keys(&fields));
                prop_assert_eq!(
                    by_path.map(|m| crate::json::write::to_python_compact(&Value::Object(m))),
                    in_place.map(|m| crate::json::write::to_python_compact(&Value::Object(m)))
                );
            }
        }
    }
}
