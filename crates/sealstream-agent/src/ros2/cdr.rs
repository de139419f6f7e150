//! Decoding of ROS 2 CDR message payloads into JSON objects.
//!
//! A payload starts with a 4-byte encapsulation header: `00 01 xx xx` is plain
//! CDR little-endian, `00 00 xx xx` plain CDR big-endian (the option bytes are
//! ignored). Other representations (parameter lists, XCDR2) are rejected.
//! The body follows the XCDR1 rules: alignment is counted from the first byte
//! after the header, every primitive is aligned to its own size (8 at most),
//! a string is a `uint32` length that includes the terminating NUL followed by
//! the bytes, a sequence is a `uint32` element count followed by the elements,
//! and a fixed array is just its elements.
//!
//! Mapping to JSON ([`Value`]):
//! - integers (`int8`..`uint64`, `byte`, `char`, `uint8`) are exact JSON integers;
//! - `float32`/`float64` are JSON numbers (a `float32` is widened to `f64`
//!   exactly); **NaN and ±infinity become `null`**, since JSON cannot carry them;
//! - `bool` is a JSON boolean (a byte other than 0 or 1 is an error);
//! - `string` must be valid UTF-8 and becomes a JSON string (the trailing NUL
//!   is removed; a length of 0 is accepted as the empty string);
//! - `wstring` is read as Fast-CDR 1.x writes it for ROS 2 Humble: a `uint32`
//!   count of characters, each a `uint32` holding a UTF-16 code unit (values
//!   above `0xFFFF` are taken as Unicode scalar values), no terminator;
//! - arrays and sequences (including `uint8[]`) are JSON arrays;
//! - nested messages are JSON objects; fields keep their definition order.
//!
//! Decoding never panics: truncated data, lengths larger than what is left,
//! bounds exceeded, invalid UTF-8 and unknown types give a [`CdrError`] naming
//! the field path (`status.status`, `position_covariance[3]`) and the byte
//! offset in the payload (counting the 4-byte header).

use std::fmt;

use sealstream_core::json::{Map, Number, Value};

use super::msgdef::{ArrayKind, BaseType, MessageDef, Primitive, Registry};

/// Nesting deeper than this is rejected (definitions are acyclic, so this only
/// bounds pathological schemas).
const MAX_DEPTH: usize = 64;

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdrError {
    /// The field path, e.g. `header.stamp.sec` or `position_covariance[3]`
    /// (empty for errors in the encapsulation header).
    pub path: String,
    /// Byte offset in the payload (including the 4-byte header) where the
    /// problem was found.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "CDR at byte {}: {}", self.offset, self.message)
        } else {
            write!(
                f,
                "CDR field {} at byte {}: {}",
                self.path, self.offset, self.message
            )
        }
    }
}

impl std::error::Error for CdrError {}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Field(&'a str),
    Index(u64),
}

struct Reader<'a> {
    data: &'a [u8],
    /// Position in `data` (which includes the header).
    pos: usize,
    little: bool,
}

const HEADER: usize = 4;

struct Decoder<'a, 'r> {
    reader: Reader<'a>,
    registry: &'r Registry,
    path: Vec<Seg<'r>>,
    /// Minimum encoded size per message type, computed once: without it a
    /// schema whose types each use the next one twice takes exponential time.
    min_sizes: std::cell::RefCell<std::collections::HashMap<&'r str, usize>>,
}

/// Decode `payload` (encapsulation header + body) as the registry's root type.
pub fn decode(registry: &Registry, payload: &[u8]) -> Result<Map, CdrError> {
    if payload.len() < HEADER {
        return Err(CdrError {
            path: String::new(),
            offset: 0,
            message: format!(
                "payload of {} bytes is shorter than the 4-byte encapsulation header",
                payload.len()
            ),
        });
    }
    let little = match (payload[0], payload[1]) {
        (0, 1) => true,
        (0, 0) => false,
        (a, b) => {
            return Err(CdrError {
                path: String::new(),
                offset: 0,
                message: format!(
                    "unsupported encapsulation {a:02x} {b:02x} (only plain CDR 00 00 / 00 01)"
                ),
            })
        }
    };
    let mut decoder = Decoder {
        reader: Reader {
            data: payload,
            pos: HEADER,
            little,
        },
        registry,
        path: Vec::new(),
        min_sizes: Default::default(),
    };
    decoder.message(registry.root_def(), 0)
}

impl<'a, 'r> Decoder<'a, 'r> {
    fn error(&self, message: impl Into<String>) -> CdrError {
        let mut path = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Seg::Index(i) => {
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                }
            }
        }
        CdrError {
            path,
            offset: self.reader.pos,
            message: message.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.reader.data.len().saturating_sub(self.reader.pos)
    }

    fn align(&mut self, n: usize) -> Result<(), CdrError> {
        let rel = self.reader.pos - HEADER;
        let pad = (n - rel % n) % n;
        if pad > self.remaining() {
            return Err(self.error(format!("truncated: {pad} bytes of padding missing")));
        }
        self.reader.pos += pad;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CdrError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "truncated: need {n} bytes, {} left",
                self.remaining()
            )));
        }
        let data = self.reader.data;
        let out = &data[self.reader.pos..self.reader.pos + n];
        self.reader.pos += n;
        Ok(out)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CdrError> {
        self.align(N)?;
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        if !self.reader.little {
            out.reverse();
        }
        // `out` is now little-endian.
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, CdrError> {
        Ok(u32::from_le_bytes(self.fixed::<4>()?))
    }

    fn message(&mut self, def: &'r MessageDef, depth: usize) -> Result<Map, CdrError> {
        if depth > MAX_DEPTH {
            return Err(self.error("messages nested too deeply"));
        }
        let mut map = Map::with_capacity(def.fields.len());
        for field in &def.fields {
            self.path.push(Seg::Field(&field.name));
            let value = self.field(&field.ty.base, field.ty.array, depth)?;
            self.path.pop();
            map.insert(field.name.clone(), value);
        }
        Ok(map)
    }

    fn field(
        &mut self,
        base: &'r BaseType,
        array: ArrayKind,
        depth: usize,
    ) -> Result<Value, CdrError> {
        let count = match array {
            ArrayKind::Single => return self.element(base, depth),
            ArrayKind::Fixed(n) => n,
            ArrayKind::Unbounded | ArrayKind::Bounded(_) => {
                let n = u64::from(self.u32()?);
                if let ArrayKind::Bounded(bound) = array {
                    if n > bound {
                        return Err(self.error(format!(
                            "sequence of {n} elements exceeds its bound of {bound}"
                        )));
                    }
                }
                n
            }
        };
        // Every element takes at least `min` bytes (at least one, for the
        // guard), so a sequence count the remaining bytes cannot hold is
        // rejected before anything is allocated. A fixed array is not checked
        // up front, so that truncation is reported at the exact element; its
        // allocation is capped by the remaining bytes instead.
        let min_size = self.min_size(base, 0);
        let min = min_size.max(1) as u64;
        let available = self.remaining() as u64;
        let is_sequence = !matches!(array, ArrayKind::Fixed(_));
        if (is_sequence || min_size == 0) && count.saturating_mul(min) > available {
            return Err(self.error(format!(
                "array of {count} elements cannot fit in the {available} bytes left"
            )));
        }
        let capacity = count.min(available / min + 1);
        let mut out = Vec::with_capacity(capacity as usize);
        for i in 0..count {
            self.path.push(Seg::Index(i));
            out.push(self.element(base, depth)?);
            self.path.pop();
        }
        Ok(Value::Array(out))
    }

    /// A lower bound of the wire size of one element (ignoring alignment).
    fn min_size(&self, base: &'r BaseType, depth: usize) -> usize {
        match base {
            BaseType::Primitive(p) => p.fixed_size().unwrap_or(4),
            BaseType::Message(name) => {
                if depth > MAX_DEPTH {
                    return 0;
                }
                if let Some(size) = self.min_sizes.borrow().get(name.as_str()) {
                    return *size;
                }
                let Some(def) = self.registry.get(name) else {
                    return 0;
                };
                let size = def
                    .fields
                    .iter()
                    .map(|f| match f.ty.array {
                        ArrayKind::Single => self.min_size(&f.ty.base, depth + 1),
                        ArrayKind::Fixed(n) => {
                            (n as usize).saturating_mul(self.min_size(&f.ty.base, depth + 1))
                        }
                        ArrayKind::Unbounded | ArrayKind::Bounded(_) => 4,
                    })
                    .fold(0usize, usize::saturating_add);
                self.min_sizes.borrow_mut().insert(name.as_str(), size);
                size
            }
        }
    }

    fn element(&mut self, base: &'r BaseType, depth: usize) -> Result<Value, CdrError> {
        match base {
            BaseType::Message(name) => {
                let Some(def) = self.registry.get(name) else {
                    return Err(self.error(format!("unknown message type {name}")));
                };
                Ok(Value::Object(self.message(def, depth + 1)?))
            }
            BaseType::Primitive(p) => self.primitive(*p),
        }
    }

    fn primitive(&mut self, p: Primitive) -> Result<Value, CdrError> {
        let int_u = |v: u64| Value::Number(Number::from(v));
        let int_i = |v: i64| Value::Number(Number::from(v));
        let float = |v: f64| Number::from_f64(v).map_or(Value::Null, Value::Number);
        Ok(match p {
            Primitive::Bool => {
                let [b] = self.fixed::<1>()?;
                match b {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    other => {
                        self.reader.pos -= 1;
                        return Err(self.error(format!("invalid bool byte {other}")));
                    }
                }
            }
            Primitive::Byte | Primitive::Char | Primitive::UInt8 => {
                int_u(u64::from(self.fixed::<1>()?[0]))
            }
            Primitive::Int8 => int_i(i64::from(i8::from_le_bytes(self.fixed::<1>()?))),
            Primitive::Int16 => int_i(i64::from(i16::from_le_bytes(self.fixed::<2>()?))),
            Primitive::UInt16 => int_u(u64::from(u16::from_le_bytes(self.fixed::<2>()?))),
            Primitive::Int32 => int_i(i64::from(i32::from_le_bytes(self.fixed::<4>()?))),
            Primitive::UInt32 => int_u(u64::from(u32::from_le_bytes(self.fixed::<4>()?))),
            Primitive::Int64 => int_i(i64::from_le_bytes(self.fixed::<8>()?)),
            Primitive::UInt64 => int_u(u64::from_le_bytes(self.fixed::<8>()?)),
            Primitive::Float32 => float(f64::from(f32::from_le_bytes(self.fixed::<4>()?))),
            Primitive::Float64 => float(f64::from_le_bytes(self.fixed::<8>()?)),
            Primitive::String(bound) => Value::String(self.string(bound)?),
            Primitive::WString(bound) => Value::String(self.wstring(bound)?),
        })
    }

    fn string(&mut self, bound: Option<u64>) -> Result<String, CdrError> {
        let len_at = self.reader.pos;
        let len = self.u32()? as usize;
        let start = self.reader.pos;
        let bytes = self.take(len).inspect_err(|_| {
            self.reader.pos = len_at;
        })?;
        let text = match bytes.split_last() {
            Some((0, text)) => text,
            _ => bytes,
        };
        if let Some(bound) = bound {
            if text.len() as u64 > bound {
                self.reader.pos = start;
                return Err(self.error(format!(
                    "string of {} bytes exceeds its bound of {bound}",
                    text.len()
                )));
            }
        }
        match std::str::from_utf8(text) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => {
                self.reader.pos = start + e.valid_up_to();
                Err(self.error("string is not valid UTF-8"))
            }
        }
    }

    fn wstring(&mut self, bound: Option<u64>) -> Result<String, CdrError> {
        let count = u64::from(self.u32()?);
        if let Some(bound) = bound {
            if count > bound {
                return Err(self.error(format!(
                    "wstring of {count} characters exceeds its bound of {bound}"
                )));
            }
        }
        if count.saturating_mul(4) > self.remaining() as u64 {
            return Err(self.error(format!(
                "wstring of {count} characters cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        let mut units: Vec<u16> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let unit = self.u32()?;
            if let Ok(small) = u16::try_from(unit) {
                units.push(small);
            } else if let Some(c) = char::from_u32(unit) {
                let mut buf = [0u16; 2];
                units.extend_from_slice(c.encode_utf16(&mut buf));
            } else {
                self.reader.pos -= 4;
                return Err(self.error(format!("invalid wide character {unit:#x}")));
            }
        }
        if units.last() == Some(&0) {
            units.pop();
        }
        String::from_utf16(&units).map_err(|_| self.error("wstring is not valid UTF-16"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, text: &str) -> Registry {
        Registry::parse(name, text).unwrap()
    }

    fn navsat() -> Registry {
        reg(
            "sensor_msgs/msg/NavSatFix",
            "\
std_msgs/Header header
NavSatStatus status
float64 latitude
float64[9] position_covariance
uint8 position_covariance_type
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: sensor_msgs/NavSatStatus
int8 STATUS_FIX=0
int8 status
uint16 service
",
        )
    }

    fn navsat_payload() -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0];
        b.extend_from_slice(&5i32.to_le_bytes()); // sec @0
        b.extend_from_slice(&7u32.to_le_bytes()); // nanosec @4
        b.extend_from_slice(&4u32.to_le_bytes()); // frame_id len @8
        b.extend_from_slice(b"gps\0"); // @12
        b.push(0xFF); // status -1 @16
        b.push(0); // pad @17
        b.extend_from_slice(&2u16.to_le_bytes()); // service @18
        b.extend_from_slice(&[0; 4]); // pad to 8 @20
        b.extend_from_slice(&48.5f64.to_le_bytes()); // latitude @24
        for i in 0..9 {
            let v = if i == 4 { f64::NAN } else { i as f64 * 0.5 };
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(2); // covariance type
        b
    }

    #[test]
    fn decodes_nested_fixed_arrays_and_alignment() {
        let reg = navsat();
        let map = decode(&reg, &navsat_payload()).unwrap();
        let json = sealstream_core::json::write::to_python_compact(&Value::Object(map));
        assert_eq!(
            json,
            "{\"header\":{\"stamp\":{\"sec\":5,\"nanosec\":7},\"frame_id\":\"gps\"},\
             \"status\":{\"status\":-1,\"service\":2},\"latitude\":48.5,\
             \"position_covariance\":[0.0,0.5,1.0,1.5,null,2.5,3.0,3.5,4.0],\
             \"position_covariance_type\":2}"
        );
    }

    #[test]
    fn big_endian() {
        let reg = reg("p/msg/A", "uint16 a\nint64 b\nstring s\n");
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(&513u16.to_be_bytes());
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&(-3i64).to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(b"hi\0");
        let map = decode(&reg, &b).unwrap();
        assert_eq!(map["a"], Value::from(513u64));
        assert_eq!(map["b"], Value::from(-3i64));
        assert_eq!(map["s"], Value::from("hi"));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let reg = navsat();
        let full = navsat_payload();
        for len in 0..full.len() {
            let err = decode(&reg, &full[..len]).unwrap_err();
            assert!(err.offset <= len, "{err} for len {len}");
        }
        let err = decode(&reg, &full[..100]).unwrap_err();
        assert!(
            err.path.starts_with("position_covariance["),
            "unexpected path {}",
            err.path
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn error_names_path_and_offset() {
        let reg = navsat();
        let full = navsat_payload();
        // Cut inside position_covariance[3] (element 3 starts at body offset 32+24).
        let cut = 4 + 32 + 3 * 8 + 4;
        let err = decode(&reg, &full[..cut]).unwrap_err();
        assert_eq!(err.path, "position_covariance[3]");
        assert_eq!(err.offset, 4 + 32 + 3 * 8);
    }

    #[test]
    fn absurd_lengths_are_rejected_before_allocating() {
        let reg = reg(
            "p/msg/A",
            "float64[] v\nstring s\np/B[] bs\n===\nMSG: p/B\nint32[0] none\n",
        );
        let mut b = vec![0, 1, 0, 0];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = decode(&reg, &b).unwrap_err();
        assert_eq!(err.path, "v");
        assert!(err.to_string().contains("cannot fit"), "{err}");

        let mut b = vec![0, 1, 0, 0];
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = decode(&reg, &b).unwrap_err();
        assert_eq!((err.path.as_str(), err.offset), ("s", 12));

        // Elements with no bytes on the wire still cannot outnumber the bytes left.
        let mut b = vec![0, 1, 0, 0];
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(0);
        b.extend_from_slice(&[0; 3]);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = decode(&reg, &b).unwrap_err();
        assert_eq!(err.path, "bs");
    }

    #[test]
    fn corrupted_values() {
        let reg = reg("p/msg/A", "bool b\nstring<=3 s\nuint8[<=2] q\n");
        let err = decode(&reg, &[0, 1, 0, 0, 2]).unwrap_err();
        assert_eq!((err.path.as_str(), err.offset), ("b", 4));

        let mut b = vec![0, 1, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&[b'a', 0xFF, 0]);
        let err = decode(&reg, &b).unwrap_err();
        assert_eq!((err.path.as_str(), err.offset), ("s", 13));
        assert!(err.to_string().contains("UTF-8"));

        let mut b = vec![0, 1, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(b"abcde\0");
        let err = decode(&reg, &b).unwrap_err();
        assert!(err.to_string().contains("bound"), "{err}");

        let mut b = vec![0, 1, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&[1, 2, 3]);
        let err = decode(&reg, &b).unwrap_err();
        assert_eq!(err.path, "q");
        assert!(err.to_string().contains("bound"), "{err}");

        let err = decode(&reg, &[0, 2, 0, 0, 1]).unwrap_err();
        assert!(err.to_string().contains("encapsulation"), "{err}");
    }

    #[test]
    fn random_garbage_never_panics() {
        let reg = navsat();
        let mut state = 0x1234_5678_9abc_def0u64;
        for round in 0..2000 {
            let len = round % 120;
            let mut data = vec![0, 1, 0, 0];
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                data.push(state as u8);
            }
            let _ = decode(&reg, &data);
        }
        // Flip every byte of a valid payload.
        let full = navsat_payload();
        for i in 0..full.len() {
            let mut data = full.clone();
            data[i] ^= 0xA5;
            let _ = decode(&reg, &data);
        }
    }

    #[test]
    fn wstring_and_empty_string() {
        let reg = reg("p/msg/A", "wstring w\nstring s\n");
        let mut b = vec![0, 1, 0, 0];
        b.extend_from_slice(&3u32.to_le_bytes());
        for unit in [0x48u32, 0xE9, 0x1F600] {
            b.extend_from_slice(&unit.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        let map = decode(&reg, &b).unwrap();
        assert_eq!(map["w"], Value::from("Hé😀"));
        assert_eq!(map["s"], Value::from(""));
    }

    #[test]
    fn uint8_sequence_is_an_integer_array() {
        let reg = reg("p/msg/A", "uint8[] data\nchar c\n");
        let mut b = vec![0, 1, 0, 0];
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[7, 255, b'x']);
        let map = decode(&reg, &b).unwrap();
        assert_eq!(
            map["data"],
            Value::Array(vec![Value::from(7u64), Value::from(255u64)])
        );
        assert_eq!(map["c"], Value::from(120u64));
    }

    /// Types that each use the next one twice: sizes are computed once per
    /// type, not once per path (2^40 paths here).
    #[test]
    fn shared_nested_types_decode_in_linear_time() {
        let mut text = String::from("fuzz/T0[] x\n");
        for i in 0..40 {
            text.push_str(&format!(
                "================================================================================\nMSG: fuzz/T{i}\nfuzz/T{n} a\nfuzz/T{n} b\n",
                n = i + 1
            ));
        }
        text.push_str("================================================================================\nMSG: fuzz/T40\nuint8 v\n");
        let registry = Registry::parse("fuzz/Root", &text).unwrap();
        // One element would need 2^40 bytes: the length check refuses it at once.
        let e = decode(&registry, &[0, 1, 0, 0, 1, 0, 0, 0]).unwrap_err();
        assert!(e.to_string().contains('x'), "{e}");
    }
}
