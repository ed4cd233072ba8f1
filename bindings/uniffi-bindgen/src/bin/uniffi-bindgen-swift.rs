//! `uniffi-bindgen-swift <lib> <out-dir> --swift-sources --headers --modulemap ...`
//! The Swift-only generator: unlike `uniffi-bindgen generate`, it writes one
//! modulemap for every crate's header, so the C declarations of all the
//! crates the library exports from form one module; see scripts/gen-bindings.

fn main() {
    uniffi::uniffi_bindgen_swift()
}
