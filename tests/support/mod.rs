//! Shared test helpers: canonical dumps ([`dump`]), images built from code ([`builder`]), the
//! reference model of the overlay rules ([`model`]), conversions read back ([`outputs`]), and the
//! Linux kernel as an oracle ([`kernel`]).
#![allow(dead_code)]

pub mod builder;
pub mod dump;
pub mod kernel;
pub mod model;
pub mod outputs;
