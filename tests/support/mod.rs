//! Shared test helpers: canonical dumps ([`dump`]), squashfs oracles ([`oracle`]); image
//! builders join them.
#![allow(dead_code)]

pub mod dump;
pub mod oracle;
