//! Fuzz target `image_layout`: an image directory written from arbitrary `index.json`,
//! `manifest.json`, `oci-layout`, `repositories` and blob JSON (see
//! `ocirender_fuzz::layout_input`), as a directory or packed in a tar file, opened with
//! `Image::open` (with or without a `DIR:REF`) and listed with `list_manifests`; an image that
//! opens is converted to a tar stream into nothing.
//!
//! Invariants under test:
//! - Errors are fine; panics are bugs. No document makes the layout detection, the JSON
//!   readers, manifest selection (nested indexes, refs, platforms), digest and size checks,
//!   blob lookup, the layer decoder or the merge panic, hang, or allocate in proportion to a
//!   number in a document (a `size`, a count) rather than to the input's length.
//! - An opened image numbers its layers 0.. oldest first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender_fuzz::layout_input::LayoutInput;

fuzz_target!(|input: LayoutInput| ocirender_fuzz::layout_check::check(&input));
