//! Shared test helpers: canonical dumps ([`dump`]), images built from code ([`builder`]), the
//! reference model of the overlay rules ([`model`]), conversions read back ([`outputs`]), the
//! squashfs oracles ([`oracle`]: unsquashfs and backhand), the Linux kernel as an oracle
//! ([`kernel`]), a real registry on 127.0.0.1 ([`registry`]) and the real image of the corpus
//! ([`skip::real_image`]), and skips that CI turns into failures ([`skip`]).

pub mod builder;
pub mod dump;
pub mod kernel;
pub mod model;
pub mod oracle;
#[macro_use]
pub mod outputs;
pub mod registry;
pub mod skip;

/// An error as the user reads it: its message and each cause once (what the CLI prints,
/// `ocirender::Report`). `Display` alone gives only the outermost message.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    ocirender::Report::new(err).to_string()
}
