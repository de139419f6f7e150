//! The sealstream edge agent: reads a machine's topics and, as its Data Event
//! Map says, applies field rules, signs every data package, groups packages
//! into bounded chunks and appends them to one continuous chain per topic.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod mcap_source;
pub mod pipeline;
pub mod ros2;
pub mod state;
