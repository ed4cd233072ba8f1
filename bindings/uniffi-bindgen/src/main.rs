//! `cargo run -p uniffi-bindgen -- generate --library <lib> --language <kotlin|swift|python> ...`
//! Same uniffi version as the library it reads, which the generated code
//! requires; see scripts/gen-bindings.

fn main() {
    uniffi::uniffi_bindgen_main()
}
