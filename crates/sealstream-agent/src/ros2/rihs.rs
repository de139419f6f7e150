//! The ROS 2 type hash `RIHS01` (REP 2011) of a message type, computed from
//! the definitions of a [`MessageLibrary`]: what `rmw_zenoh` puts in the key
//! expressions of a topic's publications and in its liveliness tokens, so an
//! agent that speaks Zenoh to ROS 2 nodes names the type as they do.
//!
//! The hash is `RIHS01_` followed by the lowercase hex SHA-256 of the JSON
//! text
//!
//! ```text
//! {"type_description": TD, "referenced_type_descriptions": [TD, ...]}
//! ```
//!
//! written as Python's `json.dumps` writes it by default (separators `, `
//! and `: `, members in the order below), where each `TD` is
//!
//! ```text
//! {"type_name": "pkg/msg/Type", "fields": [
//!   {"name": "x", "type": {"type_id": 11, "capacity": 0, "string_capacity": 0,
//!                          "nested_type_name": ""}}, ...]}
//! ```
//!
//! the first for the type itself, the others for every type it uses
//! (directly or not), each once, sorted by name. Constants, default values
//! and comments are not part of it; a message without fields has the
//! `uint8 structure_needs_at_least_one_member` field ROS 2 gives it.
//! `type_id` is the `type_description_interfaces/msg/FieldType` number of the
//! element type, plus 48 for a fixed array `T[N]`, 96 for a bounded sequence
//! `T[<=N]`, 144 for a sequence `T[]`; `capacity` is `N` (else 0),
//! `string_capacity` the bound of `string<=N` / `wstring<=N` (else 0),
//! `nested_type_name` the message type of the element (else empty).
//!
//! A `.msg` `char` is an IDL `uint8` (rosidl_adapter), so it hashes as
//! `FIELD_TYPE_UINT8`, as the code rosidl generates for `std_msgs/msg/Char`
//! does.
//!
//! ```
//! use sealstream_agent::ros2::{rihs, MessageLibrary};
//!
//! let hash = rihs::type_hash(&MessageLibrary::shipped(), "std_msgs/msg/String").unwrap();
//! assert_eq!(
//!     hash,
//!     "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::library::{LibraryError, MessageLibrary};
use super::msgdef::{ArrayKind, BaseType, MessageDef, Primitive, Registry};

/// The prefix of a hash of this version.
const PREFIX: &str = "RIHS01_";

/// `RIHS01_` + 64 lowercase hex: the type hash rmw_zenoh puts in key
/// expressions and liveliness tokens, of `type_name` (`pkg/msg/Type` or
/// `pkg/Type`) as `library` defines it and the types it uses.
pub fn type_hash(library: &MessageLibrary, type_name: &str) -> Result<String, LibraryError> {
    let registry = library.registry(type_name)?;
    let digest = sealstream_core::chunk::sha256_hex(hashed_text(&registry).as_bytes());
    let hex = digest.strip_prefix("0x").unwrap_or(&digest);
    Ok(format!("{PREFIX}{hex}"))
}

/// The JSON text whose SHA-256 is the hash of the registry's root type.
fn hashed_text(registry: &Registry) -> String {
    let root = registry.root_def();
    // Every type the root uses, directly or not, by its `pkg/msg/Type` name
    // (the order of the referenced descriptions).
    let mut used: BTreeMap<String, &MessageDef> = BTreeMap::new();
    let mut stack: Vec<&MessageDef> = vec![root];
    while let Some(def) = stack.pop() {
        for field in &def.fields {
            if let BaseType::Message(name) = &field.ty.base {
                // A parsed registry defines every type its fields name and
                // has no cycles, so the root is never among them.
                if let Some(nested) = registry.get(name) {
                    if used.insert(ros2_name(name), nested).is_none() {
                        stack.push(nested);
                    }
                }
            }
        }
    }
    let mut out = String::from("{\"type_description\": ");
    push_description(&mut out, root);
    out.push_str(", \"referenced_type_descriptions\": [");
    for (i, def) in used.values().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_description(&mut out, def);
    }
    out.push_str("]}");
    out
}

/// `pkg/msg/Type` of the canonical `pkg/Type`.
fn ros2_name(canonical: &str) -> String {
    match canonical.split_once('/') {
        Some((pkg, ty)) => format!("{pkg}/msg/{ty}"),
        None => canonical.to_string(),
    }
}

/// Appends one type description. Names need no escaping: the parser admits
/// only identifiers (`[A-Za-z_][A-Za-z0-9_]*`) as field, package and type
/// names.
fn push_description(out: &mut String, def: &MessageDef) {
    out.push_str("{\"type_name\": \"");
    out.push_str(&ros2_name(&def.name));
    out.push_str("\", \"fields\": [");
    for (i, field) in def.fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let (element_id, string_capacity, nested) = match &field.ty.base {
            BaseType::Message(name) => (NESTED_TYPE, 0, ros2_name(name)),
            BaseType::Primitive(p) => {
                let (id, bound) = primitive_id(*p);
                (id, bound, String::new())
            }
        };
        let (offset, capacity) = match field.ty.array {
            ArrayKind::Single => (0, 0),
            ArrayKind::Fixed(n) => (ARRAY_OFFSET, n),
            ArrayKind::Bounded(n) => (BOUNDED_SEQUENCE_OFFSET, n),
            ArrayKind::Unbounded => (UNBOUNDED_SEQUENCE_OFFSET, 0),
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{{\"name\": \"{}\", \"type\": {{\"type_id\": {}, \"capacity\": {capacity}, \
             \"string_capacity\": {string_capacity}, \"nested_type_name\": \"{nested}\"}}}}",
            field.name,
            element_id + offset,
        );
    }
    out.push_str("]}");
}

/// `FieldType.FIELD_TYPE_NESTED_TYPE`.
const NESTED_TYPE: u64 = 1;
/// Added to the element's id for a fixed array `T[N]`.
const ARRAY_OFFSET: u64 = 48;
/// Added to the element's id for a bounded sequence `T[<=N]`.
const BOUNDED_SEQUENCE_OFFSET: u64 = 96;
/// Added to the element's id for a sequence `T[]`.
const UNBOUNDED_SEQUENCE_OFFSET: u64 = 144;

/// The `type_description_interfaces/msg/FieldType` id of a primitive and
/// its string capacity (the bound of a bounded string, else 0).
fn primitive_id(p: Primitive) -> (u64, u64) {
    match p {
        Primitive::Int8 => (2, 0),
        // `.msg` `char` is IDL `uint8`.
        Primitive::UInt8 | Primitive::Char => (3, 0),
        Primitive::Int16 => (4, 0),
        Primitive::UInt16 => (5, 0),
        Primitive::Int32 => (6, 0),
        Primitive::UInt32 => (7, 0),
        Primitive::Int64 => (8, 0),
        Primitive::UInt64 => (9, 0),
        Primitive::Float32 => (10, 0),
        Primitive::Float64 => (11, 0),
        Primitive::Bool => (15, 0),
        Primitive::Byte => (16, 0),
        Primitive::String(None) => (17, 0),
        Primitive::WString(None) => (18, 0),
        Primitive::String(Some(bound)) => (21, bound),
        Primitive::WString(Some(bound)) => (22, bound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(type_name: &str) -> String {
        type_hash(&MessageLibrary::shipped(), type_name).unwrap()
    }

    /// Hashes of shipped types, from rosbags 0.11.9's ROS 2 Jazzy type
    /// store, except `std_msgs/msg/Char`: the hash in the code rosidl
    /// generates for Jazzy (`char__description.c`), where the field is
    /// `FIELD_TYPE_UINT8` (rosbags says `FIELD_TYPE_CHAR`).
    #[test]
    fn golden_hashes_of_shipped_types() {
        for (name, hash) in [
            (
                "sensor_msgs/msg/NavSatFix",
                "RIHS01_62223ab3fe210a15976021da7afddc9e200dc9ec75231c1b6a557fc598a65404",
            ),
            (
                "std_msgs/String",
                "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
            ),
            (
                "std_msgs/msg/Empty",
                "RIHS01_20b625256f32d5dbc0d04fee44f43c41e51c70d3502f84b4a08e7a9c26a96312",
            ),
            (
                "std_msgs/msg/Byte",
                "RIHS01_41e1a3345f73fe93ede006da826a6ee274af23dd4653976ff249b0f44e3e798f",
            ),
            (
                "std_msgs/msg/Char",
                "RIHS01_3ad2d04dd29ba19d04b16659afa3ccaedd691914b02a64e82e252f2fa6a586a9",
            ),
        ] {
            assert_eq!(shipped(name), hash, "{name}");
        }
    }

    #[test]
    fn the_hashed_text_of_a_nested_type() {
        let library = MessageLibrary::shipped();
        let registry = library.registry("geometry_msgs/msg/PointStamped").unwrap();
        let t = |name: &str, id: u64, nested: &str| {
            format!(
                "{{\"name\": \"{name}\", \"type\": {{\"type_id\": {id}, \"capacity\": 0, \
                 \"string_capacity\": 0, \"nested_type_name\": \"{nested}\"}}}}"
            )
        };
        let expected = format!(
            "{{\"type_description\": {{\"type_name\": \"geometry_msgs/msg/PointStamped\", \
             \"fields\": [{}, {}]}}, \"referenced_type_descriptions\": [\
             {{\"type_name\": \"builtin_interfaces/msg/Time\", \"fields\": [{}, {}]}}, \
             {{\"type_name\": \"geometry_msgs/msg/Point\", \"fields\": [{}, {}, {}]}}, \
             {{\"type_name\": \"std_msgs/msg/Header\", \"fields\": [{}, {}]}}]}}",
            t("header", 1, "std_msgs/msg/Header"),
            t("point", 1, "geometry_msgs/msg/Point"),
            t("sec", 6, ""),
            t("nanosec", 7, ""),
            t("x", 11, ""),
            t("y", 11, ""),
            t("z", 11, ""),
            t("stamp", 1, "builtin_interfaces/msg/Time"),
            t("frame_id", 17, ""),
        );
        assert_eq!(hashed_text(&registry), expected);
    }

    fn custom_library() -> MessageLibrary {
        let mut library = MessageLibrary::shipped();
        library
            .add(
                "my_robot/msg/Battery",
                "uint8 STATE_OK=0\nfloat32 voltage\nstring<=10 label\n",
            )
            .unwrap();
        library
            .add(
                "my_robot/msg/Status",
                "\
std_msgs/Header header
Battery battery
Battery[<=2] spares
string<=10 mode
float64[3] position
int32[<=5] codes
string<=8[] tags
string<=4[2] short_names
byte[] blob
geometry_msgs/Point[] path
",
            )
            .unwrap();
        library
    }

    /// Bounded strings, arrays and sequences of primitives, bounded strings
    /// and messages; golden hashes from rosbags 0.11.9 (the same
    /// definitions registered with `get_types_from_msg`).
    #[test]
    fn golden_hashes_of_bounded_strings_arrays_and_sequences() {
        let library = custom_library();
        assert_eq!(
            type_hash(&library, "my_robot/msg/Battery").unwrap(),
            "RIHS01_2607b42a7d55c35cd35fb139434a66e5ef583ce82ce5592def11bcb24c821969"
        );
        assert_eq!(
            type_hash(&library, "my_robot/Status").unwrap(),
            "RIHS01_75f1e9c94576923c21cbdc10bcb69fb3f3d0b4b15c2734761af576b627824506"
        );
    }

    #[test]
    fn constants_defaults_and_comments_do_not_change_the_hash() {
        let mut library = custom_library();
        let before = type_hash(&library, "my_robot/msg/Status").unwrap();
        library
            .add(
                "my_robot/msg/Battery",
                "# a battery\nuint8 STATE_OK=0\nuint8 STATE_LOW=1\nstring NAME=\"a # b\"\n\
                 float32 voltage 12.5 # volts\nstring<=10 label \"main\"\n",
            )
            .unwrap();
        assert_eq!(type_hash(&library, "my_robot/msg/Status").unwrap(), before);
        // A field's bound does change it.
        library
            .add(
                "my_robot/msg/Battery",
                "float32 voltage\nstring<=11 label\n",
            )
            .unwrap();
        assert_ne!(type_hash(&library, "my_robot/msg/Status").unwrap(), before);
    }

    #[test]
    fn field_type_ids() {
        let mut library = MessageLibrary::default();
        library
            .add(
                "p/msg/T",
                "bool a\nbyte b\nchar c\nint8 d\nuint8 e\nint16 f\nuint16 g\nint32 h\n\
                 uint32 i\nint64 j\nuint64 k\nfloat32 l\nfloat64 m\nstring n\nwstring o\n\
                 string<=3 p\nwstring<=4 q\nint8[2] r\nint8[<=2] s\nint8[] t\n\
                 wstring<=4[<=7] u\nstd_msgs/Empty[] v\n",
            )
            .unwrap();
        let registry = library.registry("p/T").unwrap();
        let text = hashed_text(&registry);
        let ids: Vec<(u64, u64, u64)> = registry
            .root_def()
            .fields
            .iter()
            .map(|f| {
                let at = text.find(&format!("\"name\": \"{}\"", f.name)).unwrap();
                let number = |key: &str| -> u64 {
                    let rest = &text[at..];
                    let start = rest.find(key).unwrap() + key.len();
                    let digits: String = rest[start..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits.parse().unwrap()
                };
                (
                    number("\"type_id\": "),
                    number("\"capacity\": "),
                    number("\"string_capacity\": "),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                (15, 0, 0),
                (16, 0, 0),
                (3, 0, 0),
                (2, 0, 0),
                (3, 0, 0),
                (4, 0, 0),
                (5, 0, 0),
                (6, 0, 0),
                (7, 0, 0),
                (8, 0, 0),
                (9, 0, 0),
                (10, 0, 0),
                (11, 0, 0),
                (17, 0, 0),
                (18, 0, 0),
                (21, 0, 3),
                (22, 0, 4),
                (50, 2, 0),
                (98, 2, 0),
                (146, 0, 0),
                (118, 7, 4),
                (145, 0, 0),
            ]
        );
        assert!(text.contains(
            "\"name\": \"v\", \"type\": {\"type_id\": 145, \"capacity\": 0, \
             \"string_capacity\": 0, \"nested_type_name\": \"std_msgs/msg/Empty\"}"
        ));
    }

    #[test]
    fn errors_are_the_librarys() {
        let library = MessageLibrary::shipped();
        assert!(matches!(
            type_hash(&library, "NavSatFix"),
            Err(LibraryError::BadName(_))
        ));
        assert!(matches!(
            type_hash(&library, "nope/msg/Missing"),
            Err(LibraryError::Unknown { .. })
        ));
    }
}
