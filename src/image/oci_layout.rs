//! OCI image layout directories: `oci-layout`, `index.json`, nested indexes, blobs.
