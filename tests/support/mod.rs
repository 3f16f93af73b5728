//! Shared test helpers: canonical dumps ([`dump`]), images built from code ([`builder`]), the
//! reference model of the overlay rules ([`model`]), and conversions read back ([`outputs`]).
#![allow(dead_code)]

pub mod builder;
pub mod dump;
pub mod model;
pub mod outputs;
