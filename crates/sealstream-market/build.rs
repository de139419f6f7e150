//! Rebuild when a migration changes: `sqlx::migrate!` embeds the files at
//! compile time and cannot tell cargo about them on stable Rust.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
