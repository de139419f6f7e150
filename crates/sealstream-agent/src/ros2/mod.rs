//! ROS 2 messages without ROS: message definitions ([`msgdef`], the shipped
//! [`library`]), CDR payload decoding ([`cdr`]) into
//! [`sealstream_core::json::Map`], and the type hash `RIHS01` ([`rihs`]).
//!
//! ```
//! use sealstream_agent::ros2::{cdr, msgdef::Registry};
//!
//! let registry = Registry::parse("std_msgs/msg/String", "string data\n").unwrap();
//! let payload = [0, 1, 0, 0, 3, 0, 0, 0, b'h', b'i', 0];
//! let fields = cdr::decode(&registry, &payload).unwrap();
//! assert_eq!(fields["data"].as_str(), Some("hi"));
//! ```

pub mod cdr;
pub mod library;
pub mod msgdef;
pub mod rihs;
pub mod rmw_zenoh;

pub use cdr::{decode, CdrError};
pub use library::{LibraryError, MessageLibrary};
pub use msgdef::{MsgDefError, Registry};
