//! Skipping a test that cannot run here: a notice on stderr (a passing run hides stdout), or a
//! failure when `OCIRENDER_REQUIRE_<WHAT>=1` says the skip must not happen (CI sets them).

/// Whether `OCIRENDER_REQUIRE_<what>=1` asks for a skip to be a failure.
pub fn required(what: &str) -> bool {
    std::env::var(format!("OCIRENDER_REQUIRE_{what}")).as_deref() == Ok("1")
}

/// Skips `test` with a notice on stderr (a passing run hides stdout), or fails it when
/// `OCIRENDER_REQUIRE_<what>=1` says the skip must not happen here.
pub fn skip(test: &str, what: &str, why: &str) {
    assert!(
        !required(what),
        "{test}: OCIRENDER_REQUIRE_{what}=1 but {why}"
    );
    eprintln!("SKIPPED {test}: {why} (OCIRENDER_REQUIRE_{what}=1 makes this a failure)");
}

/// The real image that `../shared/corpus/build-deb-image.sh DIR` builds, from
/// `OCIRENDER_REAL_IMAGE=DIR`; `None` after the notice when it is not set.
pub fn real_image(test: &str) -> Option<std::path::PathBuf> {
    let Some(dir) = std::env::var_os("OCIRENDER_REAL_IMAGE").map(std::path::PathBuf::from) else {
        skip(
            test,
            "REAL_IMAGE",
            "OCIRENDER_REAL_IMAGE is not set (a build-deb-image.sh output directory)",
        );
        return None;
    };
    assert!(
        dir.join("oci/index.json").exists() && dir.join("ref/rootfs").is_dir(),
        "OCIRENDER_REAL_IMAGE={} has no oci/index.json and ref/rootfs: run build-deb-image.sh",
        dir.display()
    );
    Some(dir)
}
