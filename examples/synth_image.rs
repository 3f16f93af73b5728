//! Writes a synthetic OCI image layout (gzip layers) for the scaling benchmarks:
//!
//!     cargo run --release --example synth_image -- OUT_DIR FILES BYTES LAYERS
//!
//! e.g. `... /tmp/synth 100000 1000000000 10` — 100,000 base files holding about 1 GB, 10
//! layers. The layout's only manifest is tagged `latest`. The layer content is described in
//! `benches/support/synth.rs`; the same arguments always give the same bytes.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

#[path = "../benches/support/synth.rs"]
mod synth;

fn blob(out: &Path, data: &[u8]) -> (String, usize) {
    let hex = format!("{:x}", Sha256::digest(data));
    fs::write(out.join("blobs/sha256").join(&hex), data).expect("write blob");
    (format!("sha256:{hex}"), data.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, files, bytes, layers] = &args[..] else {
        eprintln!("usage: synth_image OUT_DIR FILES BYTES LAYERS");
        std::process::exit(2);
    };
    let number = |s: &str| -> u64 {
        s.parse().unwrap_or_else(|_| {
            eprintln!("not a number: {s}");
            std::process::exit(2)
        })
    };
    let shape = synth::Shape {
        files: number(files) as usize,
        bytes: number(bytes),
        layers: number(layers).max(1) as usize,
    };
    let out = Path::new(out);
    fs::create_dir_all(out.join("blobs/sha256")).expect("create the layout");
    fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in synth::layers(&shape) {
        diff_ids.push(format!("\"sha256:{:x}\"", Sha256::digest(&layer.tar)));
        let (digest, size) = blob(out, &synth::gzip(&layer.tar, 6));
        descriptors.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":{size}}}"#
        ));
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let (cd, cn) = blob(out, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}},"layers":[{}]}}"#,
        descriptors.join(",")
    );
    let (md, mn) = blob(out, manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{mn},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
    );
    fs::write(out.join("index.json"), index).expect("index.json");
}
