//! `ocirender-peer tar|dir|squashfs IMAGE_DIR OUTPUT`: upstream ocirender 0.3's own conversions,
//! timed by scripts/bench-peers.sh against ours. Upstream takes the first manifest of
//! index.json, so the script hands it a layout whose index lists only the wanted manifest.
//! `tar` to `/dev/stdout` streams the merged tar into a pipe (e.g. into tar2sqfs).

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: ocirender-peer tar|dir|squashfs IMAGE_DIR OUTPUT");
        return ExitCode::from(2);
    }
    let image = PathBuf::from(&args[2]);
    let output = PathBuf::from(&args[3]);
    let result = match args[1].as_str() {
        "tar" => upstream::convert_tar(&image, &output).await,
        "dir" => upstream::convert_dir(&image, &output).await,
        "squashfs" => upstream::convert_mksquashfs(&image, &output, None).await,
        other => {
            eprintln!("unknown format {other}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocirender-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
