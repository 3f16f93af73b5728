//! Shared test helpers: canonical dumps ([`dump`]), the kernel oracle ([`kernel`]); image builders
//! and other oracles join them.
#![allow(dead_code)]

pub mod dump;
pub mod kernel;
