//! `cdr::decode` of arbitrary payloads with fixed, real schemas, so that the
//! fuzzer spends its time deep in the decoder rather than on definitions. The
//! first input byte picks the schema (modulo 3), the rest is the payload
//! (encapsulation header + body):
//!
//! 0. `sensor_msgs/msg/NavSatFix` (nested messages, fixed array, constants),
//!    as rosbags' ROS 2 Humble typestore generates it;
//! 1. `diagnostic_msgs/msg/DiagnosticArray` (sequences of messages holding
//!    strings and sequences), likewise;
//! 2. `fuzz_msgs/msg/AllTypes`: every primitive, `wstring`, bounded strings
//!    and sequences, fixed arrays and sequences of messages, an empty message.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealstream_agent::ros2::{cdr, msgdef::Registry};

const NAV_SAT_FIX: &str = "\
uint8 COVARIANCE_TYPE_UNKNOWN=0
uint8 COVARIANCE_TYPE_APPROXIMATED=1
uint8 COVARIANCE_TYPE_DIAGONAL_KNOWN=2
uint8 COVARIANCE_TYPE_KNOWN=3
std_msgs/Header header
sensor_msgs/NavSatStatus status
float64 latitude
float64 longitude
float64 altitude
float64[9] position_covariance
uint8 position_covariance_type
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
================================================================================
MSG: sensor_msgs/NavSatStatus
int8 STATUS_NO_FIX=-1
int8 STATUS_FIX=0
int8 STATUS_SBAS_FIX=1
int8 STATUS_GBAS_FIX=2
uint16 SERVICE_GPS=1
uint16 SERVICE_GLONASS=2
uint16 SERVICE_COMPASS=4
uint16 SERVICE_GALILEO=8
int8 status
uint16 service
";

const DIAGNOSTIC_ARRAY: &str = "\
std_msgs/Header header
diagnostic_msgs/DiagnosticStatus[] status
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
================================================================================
MSG: diagnostic_msgs/DiagnosticStatus
byte OK=0
byte WARN=1
byte ERROR=2
byte STALE=3
byte level
string name
string message
string hardware_id
diagnostic_msgs/KeyValue[] values
================================================================================
MSG: diagnostic_msgs/KeyValue
string key
string value
";

const ALL_TYPES: &str = "\
bool b
byte by
char c
int8 i8
uint8 u8
int16 i16
uint16 u16
int32 i32
uint32 u32
int64 i64
uint64 u64
float32 f32
float64 f64
string s
string<=5 sb
wstring ws
wstring<=3 wsb
int16[3] fixed
float64[] seq
uint8[<=4] bseq
string[2] strs
string<=3[<=2] bstrs
fuzz_msgs/Inner[2] inners
fuzz_msgs/Inner[] inner_seq
fuzz_msgs/Inner[<=2] inner_bseq
builtin_interfaces/Duration d
fuzz_msgs/Empty e
fuzz_msgs/Empty[] empties
================================================================================
MSG: fuzz_msgs/Inner
builtin_interfaces/Time t
bool[] flags
wstring[] names
================================================================================
MSG: fuzz_msgs/Empty
";

fn registries() -> &'static [Registry; 3] {
    static REGISTRIES: OnceLock<[Registry; 3]> = OnceLock::new();
    REGISTRIES.get_or_init(|| {
        [
            ("sensor_msgs/msg/NavSatFix", NAV_SAT_FIX),
            ("diagnostic_msgs/msg/DiagnosticArray", DIAGNOSTIC_ARRAY),
            ("fuzz_msgs/msg/AllTypes", ALL_TYPES),
        ]
        .map(|(name, text)| Registry::parse(name, text).expect("fixed schema parses"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let registry = &registries()[usize::from(which % 3)];
    match cdr::decode(registry, payload) {
        Ok(fields) => assert_eq!(fields.len(), registry.root_def().fields.len()),
        Err(e) => {
            assert!(e.offset <= payload.len(), "error offset past the payload");
            let _ = e.to_string();
        }
    }
});
