//! The agent's RIHS01 type hashes ([`sealstream_agent::ros2::rihs`]) equal
//! those of an independent implementation, `rosbags` 0.11.9, for every
//! shipped message type (rosbags' ROS 2 Jazzy type store) and for custom
//! types registered in both from the same `.msg` text.
//!
//! rosbags runs under `SEALSTREAM_REF_PYTHON` (else `<repo>/.venv/bin/python`,
//! [`reference_python`]); the test fails, never skips, when it or rosbags
//! 0.11.9 is missing.
//!
//! One correction is applied to rosbags: ROS 2 turns a `.msg` `char` into an
//! IDL `uint8` (rosidl_adapter), so the code rosidl generates hashes a `char`
//! field as `FIELD_TYPE_UINT8` (3), while rosbags 0.11.9 says
//! `FIELD_TYPE_CHAR` (13). The script maps `char` to 3 in rosbags' table; the
//! unit tests of `rihs` pin rosidl's own hash of `std_msgs/msg/Char`.

use std::io::Write;
use std::process::{Command, Stdio};

use sealstream_agent::ros2::{rihs, MessageLibrary};
use sealstream_core::json::{self, write::to_python_compact, Map, Value};
use sealstream_testkit::reference_python;

/// Reads `{"types": [...], "custom": [[name, text], ...]}` on standard input;
/// writes `{type: hash or null}` (null: a type rosbags does not know).
const SCRIPT: &str = r#"
import importlib.metadata, json, sys
version = importlib.metadata.version('rosbags')
if version != '0.11.9':
    sys.exit(f'rosbags {version} is installed; this test compares with rosbags 0.11.9')
import rosbags.typesys.store as store
from rosbags.typesys import Stores, get_typestore, get_types_from_msg
# .msg `char` is IDL `uint8` (rosidl_adapter): FIELD_TYPE_UINT8, not FIELD_TYPE_CHAR.
assert store.TIDMAP['char'] == 13, store.TIDMAP
store.TIDMAP['char'] = store.TIDMAP['uint8']
request = json.load(sys.stdin)
ts = get_typestore(Stores.ROS2_JAZZY)
custom = {}
for name, text in request['custom']:
    custom.update(get_types_from_msg(text, name))
ts.register(custom)
json.dump({t: ts.hash_rihs01(t) if t in ts.fielddefs else None for t in request['types']}, sys.stdout)
"#;

/// A custom type with constants (one a string holding `#` and `=`), a
/// default value, comments, a bounded string and a `char`.
const BATTERY: &str = "\
# The state of one battery.
uint8 STATE_OK=0
uint8 STATE_LOW=1 # below 20 %
string LABEL_PREFIX=\"bat # = \"
float32 voltage 12.5  # volts, defaulted
string<=10 label
char grade
";

/// [`BATTERY`] without its constants, default value and comments.
const BATTERY_PLAIN: &str = "float32 voltage\nstring<=10 label\nchar grade\n";

/// A custom type using [`BATTERY`] (bare name, same package), shipped
/// types, a bounded string, a fixed array, bounded sequences and constants.
const STATUS: &str = "\
int32 ANSWER=42
std_msgs/Header header
Battery battery
Battery[<=2] spares
string<=10 mode
float64[3] position
int32[<=5] codes
string<=8[] tags
geometry_msgs/Point[] path
string NAME=\"status\"
";

/// [`STATUS`] without its constants.
const STATUS_PLAIN: &str = "\
std_msgs/Header header
Battery battery
Battery[<=2] spares
string<=10 mode
float64[3] position
int32[<=5] codes
string<=8[] tags
geometry_msgs/Point[] path
";

/// `pkg/msg/Type` of `pkg/Type`.
fn ros2_name(name: &str) -> String {
    let (pkg, ty) = name.split_once('/').expect("pkg/Type");
    format!("{pkg}/msg/{ty}")
}

/// rosbags' hash of each of `types`, with `custom` definitions registered.
fn rosbags_hashes(types: &[String], custom: &[(&str, &str)]) -> Map {
    let mut request = Map::new();
    request.insert(
        "types".into(),
        Value::from(types.iter().cloned().map(Value::from).collect::<Vec<_>>()),
    );
    request.insert(
        "custom".into(),
        Value::from(
            custom
                .iter()
                .map(|(name, text)| Value::from(vec![Value::from(*name), Value::from(*text)]))
                .collect::<Vec<_>>(),
        ),
    );
    let python = reference_python();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .expect("the script's standard input")
        .write_all(to_python_compact(&Value::from(request)).as_bytes())
        .expect("write to the script");
    let output = child.wait_with_output().expect("wait for the script");
    assert!(
        output.status.success(),
        "rosbags (under {}) failed ({}); it needs rosbags==0.11.9 (scripts/setup-test-peers):\n{}",
        python.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    match json::parse(&output.stdout).expect("the script's JSON") {
        Value::Object(map) => map,
        other => panic!("the script answered {other:?}"),
    }
}

#[test]
fn every_shipped_type_hashes_as_rosbags_jazzy_store_does() {
    let library = MessageLibrary::shipped();
    let types: Vec<String> = library.types().map(ros2_name).collect();
    assert!(types.len() > 100, "{} shipped types", types.len());
    let theirs = rosbags_hashes(&types, &[]);
    let mut unknown = Vec::new();
    let mut compared = 0;
    for name in &types {
        match &theirs[name.as_str()] {
            Value::String(hash) => {
                let ours = rihs::type_hash(&library, name).unwrap();
                assert_eq!(&ours, hash, "{name}");
                compared += 1;
            }
            Value::Null => unknown.push(name.as_str()),
            other => panic!("{name}: rosbags answered {other:?}"),
        }
    }
    // Jazzy's store knows every type the agent ships.
    assert_eq!(unknown, Vec::<&str>::new());
    assert_eq!(compared, types.len());
}

#[test]
fn custom_types_hash_as_rosbags_does_and_constants_do_not_count() {
    let mut library = MessageLibrary::shipped();
    library.add("my_robot/msg/Battery", BATTERY).unwrap();
    library.add("my_robot/msg/Status", STATUS).unwrap();
    let mut plain = MessageLibrary::shipped();
    plain.add("my_robot/msg/Battery", BATTERY_PLAIN).unwrap();
    plain.add("my_robot/msg/Status", STATUS_PLAIN).unwrap();

    let types = [
        "my_robot/msg/Battery".to_string(),
        "my_robot/msg/Status".into(),
    ];
    let theirs = rosbags_hashes(
        &types,
        &[
            ("my_robot/msg/Battery", BATTERY),
            ("my_robot/msg/Status", STATUS),
        ],
    );
    let theirs_plain = rosbags_hashes(
        &types,
        &[
            ("my_robot/msg/Battery", BATTERY_PLAIN),
            ("my_robot/msg/Status", STATUS_PLAIN),
        ],
    );
    for name in &types {
        let hash = theirs[name.as_str()]
            .as_str()
            .unwrap_or_else(|| panic!("rosbags has no hash of {name}"));
        assert_eq!(rihs::type_hash(&library, name).unwrap(), hash, "{name}");
        assert_eq!(rihs::type_hash(&plain, name).unwrap(), hash, "{name}");
        assert_eq!(theirs_plain[name.as_str()].as_str(), Some(hash), "{name}");
    }
    // The two types differ, and a nested type's change reaches its user.
    assert_ne!(
        theirs["my_robot/msg/Battery"],
        theirs["my_robot/msg/Status"]
    );
    plain
        .add(
            "my_robot/msg/Battery",
            "float32 voltage\nstring<=9 label\nchar grade\n",
        )
        .unwrap();
    assert_ne!(
        Some(rihs::type_hash(&plain, "my_robot/Status").unwrap().as_str()),
        theirs["my_robot/msg/Status"].as_str()
    );
}
