// Link options for the library the apps ship (profile release-ffi, see the
// workspace Cargo.toml).
//
// Relative relocations packed (DT_RELR): a PIC library full of vtables and
// pointer tables carries one 24-byte `R_X86_64_RELATIVE` entry per pointer,
// over 700 KB here; packed they take 8 KB. The loader needs to support it:
// glibc 2.36 and later (the linker records the requirement as the version
// GLIBC_ABI_DT_RELR, so an older glibc refuses the library with a clear
// message instead of misloading it). Android is left to the NDK's linker,
// which packs relocations itself in the form the app's minSdk supports.
// Only the release-ffi profile gets it, so test builds load on any glibc;
// cargo tells a build script its profile only as debug/release, hence the
// output directory's name.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
    let release_ffi = std::path::Path::new(&out_dir)
        .components()
        .any(|part| part.as_os_str() == "release-ffi");
    if os == "linux" && env == "gnu" && release_ffi {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    }
}
