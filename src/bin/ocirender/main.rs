//! The `ocirender` command.
fn main() {}
