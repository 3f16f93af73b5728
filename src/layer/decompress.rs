//! Codec choice: media type first, magic bytes as the fallback; gzip (multi-member), zstd
//! (multi-frame), xz, bzip2 and plain tar.
