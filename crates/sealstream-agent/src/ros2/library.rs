//! The message definitions of the common ROS 2 packages, shipped with the
//! agent (`ros2-msgs/`, verbatim from the ROS 2 Jazzy sources; see its
//! README), and the schemas built from them: for a live ROS 2 topic there is
//! no bag to carry the definition of its type, so the agent assembles the
//! schema text a ROS 2 bag would store (the type's definition, then each
//! type it uses, each after a separator line and `MSG: pkg/Type`) and reads
//! it as it reads a bag's ([`Registry::parse`]). Definitions of other types
//! come from `.msg` files ([`MessageLibrary::add`]).

use std::collections::BTreeMap;

use super::msgdef::{canonical_name, referenced_types, MsgDefError, Registry};

/// The line between two definitions in a ROS 2 bag's schema.
const SEPARATOR: &str =
    "================================================================================";

/// Every shipped definition: `pkg/Type` and the `.msg` text.
const SHIPPED: &[(&str, &str)] = &[
    (
        "builtin_interfaces/Duration",
        include_str!("../../ros2-msgs/builtin_interfaces/Duration.msg"),
    ),
    (
        "builtin_interfaces/Time",
        include_str!("../../ros2-msgs/builtin_interfaces/Time.msg"),
    ),
    (
        "diagnostic_msgs/DiagnosticArray",
        include_str!("../../ros2-msgs/diagnostic_msgs/DiagnosticArray.msg"),
    ),
    (
        "diagnostic_msgs/DiagnosticStatus",
        include_str!("../../ros2-msgs/diagnostic_msgs/DiagnosticStatus.msg"),
    ),
    (
        "diagnostic_msgs/KeyValue",
        include_str!("../../ros2-msgs/diagnostic_msgs/KeyValue.msg"),
    ),
    (
        "geometry_msgs/Accel",
        include_str!("../../ros2-msgs/geometry_msgs/Accel.msg"),
    ),
    (
        "geometry_msgs/AccelStamped",
        include_str!("../../ros2-msgs/geometry_msgs/AccelStamped.msg"),
    ),
    (
        "geometry_msgs/AccelWithCovariance",
        include_str!("../../ros2-msgs/geometry_msgs/AccelWithCovariance.msg"),
    ),
    (
        "geometry_msgs/AccelWithCovarianceStamped",
        include_str!("../../ros2-msgs/geometry_msgs/AccelWithCovarianceStamped.msg"),
    ),
    (
        "geometry_msgs/Inertia",
        include_str!("../../ros2-msgs/geometry_msgs/Inertia.msg"),
    ),
    (
        "geometry_msgs/InertiaStamped",
        include_str!("../../ros2-msgs/geometry_msgs/InertiaStamped.msg"),
    ),
    (
        "geometry_msgs/Point",
        include_str!("../../ros2-msgs/geometry_msgs/Point.msg"),
    ),
    (
        "geometry_msgs/Point32",
        include_str!("../../ros2-msgs/geometry_msgs/Point32.msg"),
    ),
    (
        "geometry_msgs/PointStamped",
        include_str!("../../ros2-msgs/geometry_msgs/PointStamped.msg"),
    ),
    (
        "geometry_msgs/Polygon",
        include_str!("../../ros2-msgs/geometry_msgs/Polygon.msg"),
    ),
    (
        "geometry_msgs/PolygonInstance",
        include_str!("../../ros2-msgs/geometry_msgs/PolygonInstance.msg"),
    ),
    (
        "geometry_msgs/PolygonInstanceStamped",
        include_str!("../../ros2-msgs/geometry_msgs/PolygonInstanceStamped.msg"),
    ),
    (
        "geometry_msgs/PolygonStamped",
        include_str!("../../ros2-msgs/geometry_msgs/PolygonStamped.msg"),
    ),
    (
        "geometry_msgs/Pose",
        include_str!("../../ros2-msgs/geometry_msgs/Pose.msg"),
    ),
    (
        "geometry_msgs/Pose2D",
        include_str!("../../ros2-msgs/geometry_msgs/Pose2D.msg"),
    ),
    (
        "geometry_msgs/PoseArray",
        include_str!("../../ros2-msgs/geometry_msgs/PoseArray.msg"),
    ),
    (
        "geometry_msgs/PoseStamped",
        include_str!("../../ros2-msgs/geometry_msgs/PoseStamped.msg"),
    ),
    (
        "geometry_msgs/PoseWithCovariance",
        include_str!("../../ros2-msgs/geometry_msgs/PoseWithCovariance.msg"),
    ),
    (
        "geometry_msgs/PoseWithCovarianceStamped",
        include_str!("../../ros2-msgs/geometry_msgs/PoseWithCovarianceStamped.msg"),
    ),
    (
        "geometry_msgs/Quaternion",
        include_str!("../../ros2-msgs/geometry_msgs/Quaternion.msg"),
    ),
    (
        "geometry_msgs/QuaternionStamped",
        include_str!("../../ros2-msgs/geometry_msgs/QuaternionStamped.msg"),
    ),
    (
        "geometry_msgs/Transform",
        include_str!("../../ros2-msgs/geometry_msgs/Transform.msg"),
    ),
    (
        "geometry_msgs/TransformStamped",
        include_str!("../../ros2-msgs/geometry_msgs/TransformStamped.msg"),
    ),
    (
        "geometry_msgs/Twist",
        include_str!("../../ros2-msgs/geometry_msgs/Twist.msg"),
    ),
    (
        "geometry_msgs/TwistStamped",
        include_str!("../../ros2-msgs/geometry_msgs/TwistStamped.msg"),
    ),
    (
        "geometry_msgs/TwistWithCovariance",
        include_str!("../../ros2-msgs/geometry_msgs/TwistWithCovariance.msg"),
    ),
    (
        "geometry_msgs/TwistWithCovarianceStamped",
        include_str!("../../ros2-msgs/geometry_msgs/TwistWithCovarianceStamped.msg"),
    ),
    (
        "geometry_msgs/Vector3",
        include_str!("../../ros2-msgs/geometry_msgs/Vector3.msg"),
    ),
    (
        "geometry_msgs/Vector3Stamped",
        include_str!("../../ros2-msgs/geometry_msgs/Vector3Stamped.msg"),
    ),
    (
        "geometry_msgs/VelocityStamped",
        include_str!("../../ros2-msgs/geometry_msgs/VelocityStamped.msg"),
    ),
    (
        "geometry_msgs/Wrench",
        include_str!("../../ros2-msgs/geometry_msgs/Wrench.msg"),
    ),
    (
        "geometry_msgs/WrenchStamped",
        include_str!("../../ros2-msgs/geometry_msgs/WrenchStamped.msg"),
    ),
    (
        "nav_msgs/GridCells",
        include_str!("../../ros2-msgs/nav_msgs/GridCells.msg"),
    ),
    (
        "nav_msgs/MapMetaData",
        include_str!("../../ros2-msgs/nav_msgs/MapMetaData.msg"),
    ),
    (
        "nav_msgs/OccupancyGrid",
        include_str!("../../ros2-msgs/nav_msgs/OccupancyGrid.msg"),
    ),
    (
        "nav_msgs/Odometry",
        include_str!("../../ros2-msgs/nav_msgs/Odometry.msg"),
    ),
    (
        "nav_msgs/Path",
        include_str!("../../ros2-msgs/nav_msgs/Path.msg"),
    ),
    (
        "sensor_msgs/BatteryState",
        include_str!("../../ros2-msgs/sensor_msgs/BatteryState.msg"),
    ),
    (
        "sensor_msgs/CameraInfo",
        include_str!("../../ros2-msgs/sensor_msgs/CameraInfo.msg"),
    ),
    (
        "sensor_msgs/ChannelFloat32",
        include_str!("../../ros2-msgs/sensor_msgs/ChannelFloat32.msg"),
    ),
    (
        "sensor_msgs/CompressedImage",
        include_str!("../../ros2-msgs/sensor_msgs/CompressedImage.msg"),
    ),
    (
        "sensor_msgs/FluidPressure",
        include_str!("../../ros2-msgs/sensor_msgs/FluidPressure.msg"),
    ),
    (
        "sensor_msgs/Illuminance",
        include_str!("../../ros2-msgs/sensor_msgs/Illuminance.msg"),
    ),
    (
        "sensor_msgs/Image",
        include_str!("../../ros2-msgs/sensor_msgs/Image.msg"),
    ),
    (
        "sensor_msgs/Imu",
        include_str!("../../ros2-msgs/sensor_msgs/Imu.msg"),
    ),
    (
        "sensor_msgs/JointState",
        include_str!("../../ros2-msgs/sensor_msgs/JointState.msg"),
    ),
    (
        "sensor_msgs/Joy",
        include_str!("../../ros2-msgs/sensor_msgs/Joy.msg"),
    ),
    (
        "sensor_msgs/JoyFeedback",
        include_str!("../../ros2-msgs/sensor_msgs/JoyFeedback.msg"),
    ),
    (
        "sensor_msgs/JoyFeedbackArray",
        include_str!("../../ros2-msgs/sensor_msgs/JoyFeedbackArray.msg"),
    ),
    (
        "sensor_msgs/LaserEcho",
        include_str!("../../ros2-msgs/sensor_msgs/LaserEcho.msg"),
    ),
    (
        "sensor_msgs/LaserScan",
        include_str!("../../ros2-msgs/sensor_msgs/LaserScan.msg"),
    ),
    (
        "sensor_msgs/MagneticField",
        include_str!("../../ros2-msgs/sensor_msgs/MagneticField.msg"),
    ),
    (
        "sensor_msgs/MultiDOFJointState",
        include_str!("../../ros2-msgs/sensor_msgs/MultiDOFJointState.msg"),
    ),
    (
        "sensor_msgs/MultiEchoLaserScan",
        include_str!("../../ros2-msgs/sensor_msgs/MultiEchoLaserScan.msg"),
    ),
    (
        "sensor_msgs/NavSatFix",
        include_str!("../../ros2-msgs/sensor_msgs/NavSatFix.msg"),
    ),
    (
        "sensor_msgs/NavSatStatus",
        include_str!("../../ros2-msgs/sensor_msgs/NavSatStatus.msg"),
    ),
    (
        "sensor_msgs/PointCloud",
        include_str!("../../ros2-msgs/sensor_msgs/PointCloud.msg"),
    ),
    (
        "sensor_msgs/PointCloud2",
        include_str!("../../ros2-msgs/sensor_msgs/PointCloud2.msg"),
    ),
    (
        "sensor_msgs/PointField",
        include_str!("../../ros2-msgs/sensor_msgs/PointField.msg"),
    ),
    (
        "sensor_msgs/Range",
        include_str!("../../ros2-msgs/sensor_msgs/Range.msg"),
    ),
    (
        "sensor_msgs/RegionOfInterest",
        include_str!("../../ros2-msgs/sensor_msgs/RegionOfInterest.msg"),
    ),
    (
        "sensor_msgs/RelativeHumidity",
        include_str!("../../ros2-msgs/sensor_msgs/RelativeHumidity.msg"),
    ),
    (
        "sensor_msgs/Temperature",
        include_str!("../../ros2-msgs/sensor_msgs/Temperature.msg"),
    ),
    (
        "sensor_msgs/TimeReference",
        include_str!("../../ros2-msgs/sensor_msgs/TimeReference.msg"),
    ),
    (
        "std_msgs/Bool",
        include_str!("../../ros2-msgs/std_msgs/Bool.msg"),
    ),
    (
        "std_msgs/Byte",
        include_str!("../../ros2-msgs/std_msgs/Byte.msg"),
    ),
    (
        "std_msgs/ByteMultiArray",
        include_str!("../../ros2-msgs/std_msgs/ByteMultiArray.msg"),
    ),
    (
        "std_msgs/Char",
        include_str!("../../ros2-msgs/std_msgs/Char.msg"),
    ),
    (
        "std_msgs/ColorRGBA",
        include_str!("../../ros2-msgs/std_msgs/ColorRGBA.msg"),
    ),
    (
        "std_msgs/Empty",
        include_str!("../../ros2-msgs/std_msgs/Empty.msg"),
    ),
    (
        "std_msgs/Float32",
        include_str!("../../ros2-msgs/std_msgs/Float32.msg"),
    ),
    (
        "std_msgs/Float32MultiArray",
        include_str!("../../ros2-msgs/std_msgs/Float32MultiArray.msg"),
    ),
    (
        "std_msgs/Float64",
        include_str!("../../ros2-msgs/std_msgs/Float64.msg"),
    ),
    (
        "std_msgs/Float64MultiArray",
        include_str!("../../ros2-msgs/std_msgs/Float64MultiArray.msg"),
    ),
    (
        "std_msgs/Header",
        include_str!("../../ros2-msgs/std_msgs/Header.msg"),
    ),
    (
        "std_msgs/Int16",
        include_str!("../../ros2-msgs/std_msgs/Int16.msg"),
    ),
    (
        "std_msgs/Int16MultiArray",
        include_str!("../../ros2-msgs/std_msgs/Int16MultiArray.msg"),
    ),
    (
        "std_msgs/Int32",
        include_str!("../../ros2-msgs/std_msgs/Int32.msg"),
    ),
    (
        "std_msgs/Int32MultiArray",
        include_str!("../../ros2-msgs/std_msgs/Int32MultiArray.msg"),
    ),
    (
        "std_msgs/Int64",
        include_str!("../../ros2-msgs/std_msgs/Int64.msg"),
    ),
    (
        "std_msgs/Int64MultiArray",
        include_str!("../../ros2-msgs/std_msgs/Int64MultiArray.msg"),
    ),
    (
        "std_msgs/Int8",
        include_str!("../../ros2-msgs/std_msgs/Int8.msg"),
    ),
    (
        "std_msgs/Int8MultiArray",
        include_str!("../../ros2-msgs/std_msgs/Int8MultiArray.msg"),
    ),
    (
        "std_msgs/MultiArrayDimension",
        include_str!("../../ros2-msgs/std_msgs/MultiArrayDimension.msg"),
    ),
    (
        "std_msgs/MultiArrayLayout",
        include_str!("../../ros2-msgs/std_msgs/MultiArrayLayout.msg"),
    ),
    (
        "std_msgs/String",
        include_str!("../../ros2-msgs/std_msgs/String.msg"),
    ),
    (
        "std_msgs/UInt16",
        include_str!("../../ros2-msgs/std_msgs/UInt16.msg"),
    ),
    (
        "std_msgs/UInt16MultiArray",
        include_str!("../../ros2-msgs/std_msgs/UInt16MultiArray.msg"),
    ),
    (
        "std_msgs/UInt32",
        include_str!("../../ros2-msgs/std_msgs/UInt32.msg"),
    ),
    (
        "std_msgs/UInt32MultiArray",
        include_str!("../../ros2-msgs/std_msgs/UInt32MultiArray.msg"),
    ),
    (
        "std_msgs/UInt64",
        include_str!("../../ros2-msgs/std_msgs/UInt64.msg"),
    ),
    (
        "std_msgs/UInt64MultiArray",
        include_str!("../../ros2-msgs/std_msgs/UInt64MultiArray.msg"),
    ),
    (
        "std_msgs/UInt8",
        include_str!("../../ros2-msgs/std_msgs/UInt8.msg"),
    ),
    (
        "std_msgs/UInt8MultiArray",
        include_str!("../../ros2-msgs/std_msgs/UInt8MultiArray.msg"),
    ),
    (
        "tf2_msgs/TF2Error",
        include_str!("../../ros2-msgs/tf2_msgs/TF2Error.msg"),
    ),
    (
        "tf2_msgs/TFMessage",
        include_str!("../../ros2-msgs/tf2_msgs/TFMessage.msg"),
    ),
];

/// Message definitions by type: the shipped ones and any added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageLibrary {
    defs: BTreeMap<String, String>,
}

/// Why a type's schema could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LibraryError {
    /// A type name that is not `pkg/Type` or `pkg/msg/Type`.
    #[error("{0:?} is not a message type name (pkg/Type or pkg/msg/Type)")]
    BadName(String),
    /// A type with no definition in the library.
    #[error("no definition of {name}{}", .used_by.as_ref().map(|u| format!(" (used by {u})")).unwrap_or_default())]
    Unknown {
        /// The type.
        name: String,
        /// The type whose field uses it, if not the one asked for.
        used_by: Option<String>,
    },
    /// A definition that does not parse.
    #[error(transparent)]
    Definition(#[from] MsgDefError),
}

impl Default for MessageLibrary {
    fn default() -> Self {
        MessageLibrary::shipped()
    }
}

impl MessageLibrary {
    /// The definitions shipped with the agent.
    pub fn shipped() -> Self {
        MessageLibrary {
            defs: SHIPPED
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string()))
                .collect(),
        }
    }

    /// Adds (or replaces) the definition of `type_name` (`pkg/Type` or
    /// `pkg/msg/Type`), the text of its `.msg` file.
    pub fn add(&mut self, type_name: &str, text: &str) -> Result<(), LibraryError> {
        let name =
            canonical_name(type_name).ok_or_else(|| LibraryError::BadName(type_name.into()))?;
        referenced_types(&name, text)?;
        self.defs.insert(name, text.to_string());
        Ok(())
    }

    /// Whether the library defines `type_name`.
    pub fn contains(&self, type_name: &str) -> bool {
        canonical_name(type_name).is_some_and(|n| self.defs.contains_key(&n))
    }

    /// The types defined, as `pkg/Type`, in order.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    /// The schema of `type_name` as a ROS 2 bag stores it: its definition,
    /// then the definition of every type it uses (directly or not), each
    /// once, in the order first used.
    pub fn schema(&self, type_name: &str) -> Result<String, LibraryError> {
        let root =
            canonical_name(type_name).ok_or_else(|| LibraryError::BadName(type_name.into()))?;
        let text_of = |name: &str, used_by: Option<&str>| {
            self.defs.get(name).ok_or_else(|| LibraryError::Unknown {
                name: name.to_string(),
                used_by: used_by.map(str::to_string),
            })
        };
        let mut out = text_of(&root, None)?.trim_end().to_string();
        out.push('\n');
        let mut done = vec![root.clone()];
        let mut queue = vec![root];
        let mut next = 0;
        while let Some(name) = queue.get(next).cloned() {
            next += 1;
            for used in referenced_types(&name, text_of(&name, None)?)? {
                if done.contains(&used) {
                    continue;
                }
                let text = match text_of(&used, Some(&name)) {
                    Ok(text) => text,
                    // The decoder knows these two without a definition.
                    Err(_) if used.starts_with("builtin_interfaces/") => {
                        done.push(used);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                out.push_str(SEPARATOR);
                out.push_str("\nMSG: ");
                out.push_str(&used);
                out.push('\n');
                out.push_str(text.trim_end());
                out.push('\n');
                done.push(used.clone());
                queue.push(used);
            }
        }
        Ok(out)
    }

    /// The decoder's registry for `type_name` ([`MessageLibrary::schema`]
    /// read by [`Registry::parse`]).
    pub fn registry(&self, type_name: &str) -> Result<Registry, LibraryError> {
        Ok(Registry::parse(type_name, &self.schema(type_name)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_shipped_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ros2-msgs");
        let mut on_disk = Vec::new();
        for pkg in std::fs::read_dir(&dir).unwrap() {
            let pkg = pkg.unwrap();
            if !pkg.file_type().unwrap().is_dir() {
                continue;
            }
            for f in std::fs::read_dir(pkg.path()).unwrap() {
                let f = f.unwrap().file_name().into_string().unwrap();
                if let Some(ty) = f.strip_suffix(".msg") {
                    on_disk.push(format!("{}/{ty}", pkg.file_name().to_string_lossy()));
                }
            }
        }
        on_disk.sort();
        let listed: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn every_shipped_type_has_a_registry() {
        let library = MessageLibrary::shipped();
        assert!(library.types().count() > 100);
        for name in library.types() {
            let registry = library
                .registry(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(registry.root(), name);
        }
    }

    #[test]
    fn a_schema_holds_each_used_type_once() {
        let library = MessageLibrary::shipped();
        let schema = library.schema("sensor_msgs/msg/NavSatFix").unwrap();
        let sections: Vec<&str> = schema
            .lines()
            .filter_map(|l| l.strip_prefix("MSG: "))
            .collect();
        assert_eq!(
            sections,
            [
                "std_msgs/Header",
                "sensor_msgs/NavSatStatus",
                "builtin_interfaces/Time"
            ],
            "{schema}"
        );
        let odometry = library.schema("nav_msgs/Odometry").unwrap();
        for used in [
            "geometry_msgs/PoseWithCovariance",
            "geometry_msgs/Pose",
            "geometry_msgs/Point",
            "geometry_msgs/Quaternion",
            "geometry_msgs/TwistWithCovariance",
            "geometry_msgs/Twist",
            "geometry_msgs/Vector3",
        ] {
            assert_eq!(
                odometry.matches(&format!("MSG: {used}\n")).count(),
                1,
                "{used}"
            );
        }
    }

    /// The shipped definitions (ROS 2 Jazzy's `.msg` files) decode a
    /// recorded bag exactly as the bag's own schemas do: every `/gps/fix`
    /// (NavSatFix) and `/battery` (BatteryState) message of the demo's bag,
    /// written by `mcap-ros2-support` with the definitions of `rosbags`'
    /// ROS 2 Humble type store (`demo/make_bag.py`): independent sources.
    #[test]
    fn shipped_definitions_decode_a_recorded_bag_as_its_own_schemas_do() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/robot.mcap");
        let data = std::fs::read(path).unwrap();
        let library = MessageLibrary::shipped();
        let mut registries: BTreeMap<u16, (Registry, Registry)> = BTreeMap::new();
        let mut checked: BTreeMap<String, usize> = BTreeMap::new();
        for message in mcap::MessageStream::new(&data).unwrap() {
            let message = message.unwrap();
            let channel = &message.channel;
            let schema = channel.schema.as_ref().expect("a schema per channel");
            let (theirs, ours) = registries.entry(channel.id).or_insert_with(|| {
                let text = String::from_utf8(schema.data.to_vec()).unwrap();
                (
                    Registry::parse(&schema.name, &text).unwrap(),
                    library.registry(&schema.name).unwrap(),
                )
            });
            let expected = super::super::decode(theirs, &message.data).unwrap();
            let got = super::super::decode(ours, &message.data).unwrap();
            assert_eq!(got, expected, "{} {}", channel.topic, schema.name);
            *checked.entry(schema.name.clone()).or_default() += 1;
        }
        assert_eq!(
            checked.into_iter().collect::<Vec<_>>(),
            [
                ("sensor_msgs/msg/BatteryState".to_string(), 1_800),
                ("sensor_msgs/msg/NavSatFix".to_string(), 18_000)
            ]
        );
    }

    #[test]
    fn added_definitions_and_refusals() {
        let mut library = MessageLibrary::shipped();
        library
            .add(
                "my_robot/msg/Status",
                "std_msgs/Header header\nBattery battery\nstring mode\n",
            )
            .unwrap();
        let e = library.registry("my_robot/Status").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no definition of my_robot/Battery (used by my_robot/Status)"
        );
        library
            .add("my_robot/Battery", "float32 voltage\nuint8 percent\n")
            .unwrap();
        let registry = library.registry("my_robot/Status").unwrap();
        assert_eq!(registry.root_def().fields.len(), 3);
        assert!(matches!(
            library.add("not a name", "int32 x"),
            Err(LibraryError::BadName(_))
        ));
        assert!(matches!(
            library.add("my_robot/Bad", "int32[ x\n"),
            Err(LibraryError::Definition(_))
        ));
        assert!(matches!(
            library.schema("nope/Missing"),
            Err(LibraryError::Unknown { used_by: None, .. })
        ));
    }
}
