//! The layouts `docker save` writes: `manifest.json` in a directory or in a tar file.
