//! Fuzz target `tar_entry`: arbitrary bytes as one layer's tar stream through
//! `ocirender::layer::tar::for_each_entry` (header checksum, octal and base-256 numbers, PAX
//! records, GNU long names and links, GNU and PAX sparse maps, ustar prefixes, whiteout names),
//! reading every entry's data.
//!
//! Invariants under test:
//! - Errors are fine; panics are bugs. No input makes the reader panic, hang, or allocate in
//!   proportion to a number in the input (a size field, a record length, a sparse region
//!   count): memory stays bounded by the input's length and the documented caps.
//! - Every entry handed out is normalized (no `..`, no empty or `.` components, no leading or
//!   trailing `/`), its mode has no type bits, its xattrs are sorted with unique names, and a
//!   sparse map lies inside the file, sorted, without overlaps.
//! - A file's reader yields exactly `size` bytes (holes expanded) or fails; anything else
//!   yields nothing. Bytes outside a sparse map's regions are zeros.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ocirender_fuzz::tar_check::check(data));
