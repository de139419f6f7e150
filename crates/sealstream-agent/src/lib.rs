//! The sealstream edge agent: reads a machine's topics and, as its Data Event
//! Map says, applies field rules, signs every data package, groups packages
//! into bounded chunks and appends them to one continuous chain per topic,
//! kept in a crash-safe spool and forwarded to its destinations.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod forward;
pub mod journal;
pub mod killpoint;
pub use sealstream_client::market;
pub mod mcap_source;
pub mod mqtt;
pub mod pipeline;
pub mod queue;
pub mod ros2;
pub mod ros2_live;
mod signing;
pub mod sink;
pub mod spool;
pub mod state;
pub mod status;
pub mod window;
