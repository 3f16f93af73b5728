//! Shared test helpers: canonical dumps ([`dump`]); image builders and oracles join them.
#![allow(dead_code)]

pub mod dump;
