//! Link flags for the cdylib.
fn main() {
    // `-z nodelete`: dlclose() must not unmap code that thread-exit destructors still
    // point to (a dlclose'd Rust cdylib with live thread-local destructors crashes).
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        target_os.as_str(),
        "linux" | "freebsd" | "netbsd" | "openbsd" | "android"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
