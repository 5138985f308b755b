//! Gives libviommu.so its soname: the library name with the major version, so a VMM links
//! against `libviommu.so.<major>` and picks up compatible updates.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libviommu.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
