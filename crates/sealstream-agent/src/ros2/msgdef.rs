//! ROS 2 message definitions (`.msg` syntax) as MCAP stores them with schema
//! encoding `ros2msg`.
//!
//! The schema text is the main type's definition followed by each dependency,
//! every dependency introduced by a line of `=` characters and a line
//! `MSG: pkg/Type`:
//!
//! ```text
//! std_msgs/Header header
//! float64 x
//! ================================================================================
//! MSG: std_msgs/Header
//! builtin_interfaces/Time stamp
//! string frame_id
//! ```
//!
//! [`Registry::parse`] turns that into a set of [`MessageDef`]s keyed by their
//! canonical name `pkg/Type` (a `pkg/msg/Type` spelling is accepted and
//! normalised). Constants (`uint8 FOO=1`), default values (`int32 x 5`) and
//! comments are skipped. A bare `Type` resolves to the enclosing package, and
//! `Header` to `std_msgs/Header`, and the ROS 1 spellings `time` and `duration`
//! to `builtin_interfaces/Time` and `Duration`. `builtin_interfaces/Time` and
//! `builtin_interfaces/Duration` are supplied if the text does not define them.
//! A message without fields gets the `uint8 structure_needs_at_least_one_member`
//! field that ROS 2 adds when it converts `.msg` to IDL, so it decodes as ROS
//! serialises it.

use std::collections::HashMap;
use std::fmt;

/// A primitive (non-message) ROS 2 type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primitive {
    /// `bool`: one byte, 0 or 1.
    Bool,
    /// `byte`: one unsigned byte (IDL `octet`).
    Byte,
    /// `char`: one unsigned byte (IDL `uint8` in ROS 2 `.msg`).
    Char,
    /// `int8`
    Int8,
    /// `uint8`
    UInt8,
    /// `int16`
    Int16,
    /// `uint16`
    UInt16,
    /// `int32`
    Int32,
    /// `uint32`
    UInt32,
    /// `int64`
    Int64,
    /// `uint64`
    UInt64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `string` or `string<=N` (the bound, if any).
    String(Option<u64>),
    /// `wstring` or `wstring<=N` (the bound, if any).
    WString(Option<u64>),
}

impl Primitive {
    fn from_name(name: &str) -> Option<Primitive> {
        let bounded = |prefix: &str| -> Option<Option<u64>> {
            if name == prefix {
                return Some(None);
            }
            let bound = name.strip_prefix(prefix)?.strip_prefix("<=")?;
            bound.parse().ok().map(Some)
        };
        Some(match name {
            "bool" => Primitive::Bool,
            "byte" | "octet" => Primitive::Byte,
            "char" => Primitive::Char,
            "int8" => Primitive::Int8,
            "uint8" => Primitive::UInt8,
            "int16" => Primitive::Int16,
            "uint16" => Primitive::UInt16,
            "int32" => Primitive::Int32,
            "uint32" => Primitive::UInt32,
            "int64" => Primitive::Int64,
            "uint64" => Primitive::UInt64,
            "float32" => Primitive::Float32,
            "float64" => Primitive::Float64,
            _ => {
                if let Some(bound) = bounded("string") {
                    Primitive::String(bound)
                } else if let Some(bound) = bounded("wstring") {
                    Primitive::WString(bound)
                } else {
                    return None;
                }
            }
        })
    }

    /// The size on the wire of a fixed-size primitive; `None` for strings.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            Primitive::Bool
            | Primitive::Byte
            | Primitive::Char
            | Primitive::Int8
            | Primitive::UInt8 => Some(1),
            Primitive::Int16 | Primitive::UInt16 => Some(2),
            Primitive::Int32 | Primitive::UInt32 | Primitive::Float32 => Some(4),
            Primitive::Int64 | Primitive::UInt64 | Primitive::Float64 => Some(8),
            Primitive::String(_) | Primitive::WString(_) => None,
        }
    }
}

/// The element type of a field: a primitive or a message type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseType {
    /// A primitive.
    Primitive(Primitive),
    /// A message type by canonical name `pkg/Type`.
    Message(String),
}

/// Whether and how a field is an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayKind {
    /// A single value.
    Single,
    /// `T[N]`: exactly N elements, no length on the wire.
    Fixed(u64),
    /// `T[]`: a sequence with a `uint32` count.
    Unbounded,
    /// `T[<=N]`: a sequence with a `uint32` count of at most N.
    Bounded(u64),
}

/// A field's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldType {
    /// The element type.
    pub base: BaseType,
    /// Array shape.
    pub array: ArrayKind,
}

/// One field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field name.
    pub name: String,
    /// The field type.
    pub ty: FieldType,
}

/// One message type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDef {
    /// Canonical name `pkg/Type`.
    pub name: String,
    /// Fields in definition (and wire) order.
    pub fields: Vec<Field>,
}

/// Why a schema could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgDefError {
    /// The message type being parsed (canonical name) when the error occurred.
    pub type_name: String,
    /// 1-based line number in the schema text (0 if not tied to a line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MsgDefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "message definition {}, line {}: {}",
                self.type_name, self.line, self.message
            )
        } else {
            write!(f, "message definition {}: {}", self.type_name, self.message)
        }
    }
}

impl std::error::Error for MsgDefError {}

/// All message types of one schema, with its root type.
#[derive(Clone, Debug)]
pub struct Registry {
    root: String,
    types: HashMap<String, MessageDef>,
}

/// The field ROS 2 adds to a message without fields.
pub const EMPTY_MESSAGE_FIELD: &str = "structure_needs_at_least_one_member";

/// The canonical `pkg/Type` name of `pkg/Type` or `pkg/msg/Type`; `None` if the
/// name has no package.
pub fn canonical_name(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        [pkg, ty] if valid_ident(pkg) && valid_ident(ty) => Some(format!("{pkg}/{ty}")),
        [pkg, "msg", ty] if valid_ident(pkg) && valid_ident(ty) => Some(format!("{pkg}/{ty}")),
        _ => None,
    }
}

fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Registry {
    /// Parse `text` (an MCAP `ros2msg` schema) whose main type is `root_name`
    /// (`pkg/msg/Type` or `pkg/Type`).
    pub fn parse(root_name: &str, text: &str) -> Result<Registry, MsgDefError> {
        let root = canonical_name(root_name).ok_or_else(|| MsgDefError {
            type_name: root_name.to_string(),
            line: 0,
            message: "schema name is not of the form pkg/Type or pkg/msg/Type".into(),
        })?;
        let mut types: HashMap<String, MessageDef> = HashMap::new();
        // Where each type was defined, to name the line of an unresolved reference.
        let mut field_lines: HashMap<(String, usize), usize> = HashMap::new();
        let mut current = MessageDef {
            name: root.clone(),
            fields: Vec::new(),
        };
        let mut expect_msg_line = false;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            let err = |type_name: &str, message: String| MsgDefError {
                type_name: type_name.to_string(),
                line: line_no,
                message,
            };
            if line.len() >= 3 && line.bytes().all(|b| b == b'=') {
                finish(
                    &mut types,
                    std::mem::take(&mut current.fields),
                    &current.name,
                )
                .map_err(|m| err(&current.name, m))?;
                expect_msg_line = true;
                continue;
            }
            if expect_msg_line {
                if line.is_empty() {
                    continue;
                }
                let Some(name) = line.strip_prefix("MSG:") else {
                    return Err(err(
                        &current.name,
                        format!("expected `MSG: pkg/Type` after a separator line, found {line:?}"),
                    ));
                };
                let name = name.trim();
                current.name = canonical_name(name).ok_or_else(|| {
                    err(name, format!("dependency name {name:?} is not pkg/Type"))
                })?;
                expect_msg_line = false;
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(field) =
                parse_field_line(line, &current.name).map_err(|m| err(&current.name, m))?
            {
                if current.fields.iter().any(|f| f.name == field.name) {
                    // ROS refuses this too; decoding would keep only one value.
                    return Err(err(
                        &current.name,
                        format!("field {} is defined twice", field.name),
                    ));
                }
                field_lines.insert((current.name.clone(), current.fields.len()), line_no);
                current.fields.push(field);
            }
        }
        if expect_msg_line {
            return Err(MsgDefError {
                type_name: current.name,
                line: text.lines().count(),
                message: "separator line not followed by `MSG: pkg/Type`".into(),
            });
        }
        let last_name = current.name.clone();
        finish(&mut types, current.fields, &last_name).map_err(|m| MsgDefError {
            type_name: last_name.clone(),
            line: 0,
            message: m,
        })?;
        for name in ["builtin_interfaces/Time", "builtin_interfaces/Duration"] {
            types.entry(name.to_string()).or_insert_with(|| MessageDef {
                name: name.to_string(),
                fields: vec![
                    Field {
                        name: "sec".into(),
                        ty: FieldType {
                            base: BaseType::Primitive(Primitive::Int32),
                            array: ArrayKind::Single,
                        },
                    },
                    Field {
                        name: "nanosec".into(),
                        ty: FieldType {
                            base: BaseType::Primitive(Primitive::UInt32),
                            array: ArrayKind::Single,
                        },
                    },
                ],
            });
        }
        // Every referenced type must exist.
        let mut names: Vec<&String> = types.keys().collect();
        names.sort();
        for name in names {
            let def = &types[name];
            for (i, field) in def.fields.iter().enumerate() {
                if let BaseType::Message(target) = &field.ty.base {
                    if !types.contains_key(target) {
                        return Err(MsgDefError {
                            type_name: name.clone(),
                            line: field_lines.get(&(name.clone(), i)).copied().unwrap_or(0),
                            message: format!(
                                "field {:?} has type {target} which the schema does not define",
                                field.name
                            ),
                        });
                    }
                }
            }
        }
        let registry = Registry { root, types };
        if let Some(cycle_at) = registry.find_cycle() {
            return Err(MsgDefError {
                type_name: cycle_at,
                line: 0,
                message: "message type contains itself".into(),
            });
        }
        Ok(registry)
    }

    /// The canonical name of the schema's main type.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The main type's definition.
    pub fn root_def(&self) -> &MessageDef {
        &self.types[&self.root]
    }

    /// A type by canonical name.
    pub fn get(&self, name: &str) -> Option<&MessageDef> {
        self.types.get(name)
    }

    /// Number of message types known.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether no types are known (never true for a parsed registry).
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    fn find_cycle(&self) -> Option<String> {
        // 0 = unvisited, 1 = on stack, 2 = done
        fn visit<'a>(
            reg: &'a Registry,
            name: &'a str,
            state: &mut HashMap<&'a str, u8>,
        ) -> Option<String> {
            match state.get(name) {
                Some(1) => return Some(name.to_string()),
                Some(_) => return None,
                None => {}
            }
            state.insert(name, 1);
            if let Some(def) = reg.types.get(name) {
                for field in &def.fields {
                    if let BaseType::Message(target) = &field.ty.base {
                        if let Some(found) = visit(reg, target, state) {
                            return Some(found);
                        }
                    }
                }
            }
            state.insert(name, 2);
            None
        }
        let mut state = HashMap::new();
        let mut names: Vec<&String> = self.types.keys().collect();
        names.sort();
        names
            .into_iter()
            .find_map(|name| visit(self, name, &mut state))
    }
}

fn finish(
    types: &mut HashMap<String, MessageDef>,
    mut fields: Vec<Field>,
    name: &str,
) -> Result<(), String> {
    if types.contains_key(name) {
        return Err(format!("type {name} is defined twice"));
    }
    if fields.is_empty() {
        fields.push(Field {
            name: EMPTY_MESSAGE_FIELD.into(),
            ty: FieldType {
                base: BaseType::Primitive(Primitive::UInt8),
                array: ArrayKind::Single,
            },
        });
    }
    types.insert(
        name.to_string(),
        MessageDef {
            name: name.to_string(),
            fields,
        },
    );
    Ok(())
}

/// Parse one non-empty, non-comment line; `Ok(None)` for a constant.
/// The message types the definition `text` of type `type_name` (`pkg/Type`)
/// uses in its fields, each once, in the order they first appear (names
/// resolved as in a schema: `pkg/Type`, a bare `Type` of the same package,
/// `Header`). Comments, constants and blank lines are skipped.
pub fn referenced_types(type_name: &str, text: &str) -> Result<Vec<String>, MsgDefError> {
    let mut out: Vec<String> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let field = parse_field_line(line, type_name).map_err(|message| MsgDefError {
            type_name: type_name.to_string(),
            line: idx + 1,
            message,
        })?;
        if let Some(Field {
            ty:
                FieldType {
                    base: BaseType::Message(target),
                    ..
                },
            ..
        }) = field
        {
            if !out.contains(&target) {
                out.push(target);
            }
        }
    }
    Ok(out)
}

fn parse_field_line(line: &str, current: &str) -> Result<Option<Field>, String> {
    let (type_token, rest) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => return Err(format!("line {line:?} has a type but no field name")),
    };
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    let after = rest[name_len..].trim_start();
    if name.is_empty() || !valid_ident(name) {
        return Err(format!("invalid field name in {line:?}"));
    }
    if after.starts_with('=') {
        // A constant: `TYPE NAME=VALUE`.
        return Ok(None);
    }
    if !(after.is_empty()
        || after.starts_with('#')
        || rest[name_len..].starts_with(char::is_whitespace))
    {
        return Err(format!("unexpected text after field name in {line:?}"));
    }
    let ty = parse_type(type_token, current)?;
    Ok(Some(Field {
        name: name.to_string(),
        ty,
    }))
}

fn parse_type(token: &str, current: &str) -> Result<FieldType, String> {
    let (base_text, array) = match token.find('[') {
        Some(open) => {
            let inner = token[open + 1..]
                .strip_suffix(']')
                .ok_or_else(|| format!("type {token:?} has an unclosed `[`"))?;
            let array = if inner.is_empty() {
                ArrayKind::Unbounded
            } else if let Some(bound) = inner.strip_prefix("<=") {
                ArrayKind::Bounded(
                    bound
                        .parse()
                        .map_err(|_| format!("type {token:?} has an invalid sequence bound"))?,
                )
            } else {
                ArrayKind::Fixed(
                    inner
                        .parse()
                        .map_err(|_| format!("type {token:?} has an invalid array size"))?,
                )
            };
            (&token[..open], array)
        }
        None => (token, ArrayKind::Single),
    };
    let base = if let Some(p) = Primitive::from_name(base_text) {
        BaseType::Primitive(p)
    } else if base_text.contains('/') {
        BaseType::Message(
            canonical_name(base_text).ok_or_else(|| format!("invalid type name {base_text:?}"))?,
        )
    } else if base_text == "time" || base_text == "duration" {
        // ROS 1 spellings, which some tools still write for the builtin types.
        let name = if base_text == "time" {
            "Time"
        } else {
            "Duration"
        };
        BaseType::Message(format!("builtin_interfaces/{name}"))
    } else if base_text == "Header" && !current.starts_with("std_msgs/") {
        BaseType::Message("std_msgs/Header".into())
    } else if valid_ident(base_text) && base_text.starts_with(|c: char| c.is_ascii_uppercase()) {
        let pkg = current.split('/').next().unwrap_or_default();
        BaseType::Message(format!("{pkg}/{base_text}"))
    } else {
        return Err(format!("unknown type {base_text:?}"));
    };
    Ok(FieldType { base, array })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prim(p: Primitive, array: ArrayKind) -> FieldType {
        FieldType {
            base: BaseType::Primitive(p),
            array,
        }
    }

    #[test]
    fn constants_defaults_comments_and_bounds() {
        let text = "\
# A leading comment
uint8 MODE_A=1  # constant with comment
string NAME = \"x # not a comment\"
int32 x 5  # default value
int32[3] fixed [1, 2, 3]
float64[] values
string<=10 short_name
string<=4[<=3] names
uint8[<=16] bytes
wstring wide
bool flag # trailing comment
char c
byte b
";
        let reg = Registry::parse("pkg/msg/Thing", text).unwrap();
        assert_eq!(reg.root(), "pkg/Thing");
        let fields = &reg.root_def().fields;
        let got: Vec<(&str, &FieldType)> =
            fields.iter().map(|f| (f.name.as_str(), &f.ty)).collect();
        assert_eq!(
            got,
            vec![
                ("x", &prim(Primitive::Int32, ArrayKind::Single)),
                ("fixed", &prim(Primitive::Int32, ArrayKind::Fixed(3))),
                ("values", &prim(Primitive::Float64, ArrayKind::Unbounded)),
                (
                    "short_name",
                    &prim(Primitive::String(Some(10)), ArrayKind::Single)
                ),
                (
                    "names",
                    &prim(Primitive::String(Some(4)), ArrayKind::Bounded(3))
                ),
                ("bytes", &prim(Primitive::UInt8, ArrayKind::Bounded(16))),
                ("wide", &prim(Primitive::WString(None), ArrayKind::Single)),
                ("flag", &prim(Primitive::Bool, ArrayKind::Single)),
                ("c", &prim(Primitive::Char, ArrayKind::Single)),
                ("b", &prim(Primitive::Byte, ArrayKind::Single)),
            ]
        );
    }

    #[test]
    fn dependencies_and_name_resolution() {
        let text = "\
Header header
Point p
geometry_msgs/msg/Point[] points
builtin_interfaces/Duration d
time t
duration[2] ds
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: my_pkg/Point
float64 x
================================================================================
MSG: geometry_msgs/Point
float64 x
float64 y
float64 z
";
        let reg = Registry::parse("my_pkg/msg/Thing", text).unwrap();
        let f = &reg.root_def().fields;
        assert_eq!(f[0].ty.base, BaseType::Message("std_msgs/Header".into()));
        assert_eq!(f[1].ty.base, BaseType::Message("my_pkg/Point".into()));
        assert_eq!(
            f[2].ty,
            FieldType {
                base: BaseType::Message("geometry_msgs/Point".into()),
                array: ArrayKind::Unbounded
            }
        );
        assert_eq!(
            f[4].ty.base,
            BaseType::Message("builtin_interfaces/Time".into())
        );
        assert_eq!(
            f[5].ty,
            FieldType {
                base: BaseType::Message("builtin_interfaces/Duration".into()),
                array: ArrayKind::Fixed(2)
            }
        );
        // Time and Duration were not in the text: built in.
        assert_eq!(reg.get("builtin_interfaces/Time").unwrap().fields.len(), 2);
        assert_eq!(
            reg.get("builtin_interfaces/Duration").unwrap().fields[1].name,
            "nanosec"
        );
    }

    #[test]
    fn empty_message_gets_placeholder_field() {
        let reg = Registry::parse("std_msgs/msg/Empty", "# nothing\n").unwrap();
        assert_eq!(reg.root_def().fields[0].name, EMPTY_MESSAGE_FIELD);
    }

    #[test]
    fn errors_name_type_and_line() {
        let e = Registry::parse("pkg/msg/A", "int32 a\nfloat128 b\n").unwrap_err();
        assert_eq!((e.type_name.as_str(), e.line), ("pkg/A", 2));
        assert!(e.to_string().contains("float128"), "{e}");

        let e = Registry::parse("pkg/msg/A", "int32 a\nOther b\n").unwrap_err();
        assert_eq!((e.type_name.as_str(), e.line), ("pkg/A", 2));
        assert!(e.to_string().contains("pkg/Other"), "{e}");

        let e = Registry::parse("pkg/msg/A", "int32 a\n=====\nint32 b\n").unwrap_err();
        assert_eq!(e.line, 3);

        let e = Registry::parse("pkg/msg/A", "int32[x] a\n").unwrap_err();
        assert!(e.to_string().contains("array size"), "{e}");

        let e = Registry::parse("pkg/msg/A", "int32\n").unwrap_err();
        assert_eq!(e.line, 1);

        let e = Registry::parse("A", "int32 a\n").unwrap_err();
        assert!(e.to_string().contains("pkg/Type"), "{e}");

        let e = Registry::parse("pkg/msg/A", "B b\n=====\nMSG: pkg/B\nA a\n").unwrap_err();
        assert!(e.to_string().contains("contains itself"), "{e}");
    }

    #[test]
    fn duplicate_field_names_are_refused() {
        let e = Registry::parse("pkg/msg/T", "int8 a\nint8 a\n").unwrap_err();
        assert!(e.to_string().contains("field a is defined twice"), "{e}");
    }
}
