//! Link options of the static binary: its relative relocations packed as
//! DT_RELR (`-z pack-relative-relocs`: 139 KB less, still
//! position-independent) when that is safe, in a `+crt-static` glibc build
//! for this very machine whose glibc, the one linked in, applies DT_RELR at
//! start-up (2.36 and later). With an older glibc (Ubuntu 22.04's 2.35) the
//! flag would link and the binary would crash at start, so it is left out
//! there, as in every other build.

use std::env::var;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let crt_static = var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|features| features.split(',').any(|f| f == "crt-static"));
    let gnu = var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    let native = var("HOST").ok() == var("TARGET").ok();
    if crt_static && gnu && native && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the builder's glibc (`getconf GNU_LIBC_VERSION`: `glibc 2.36`)
/// is `major.minor` or later; false when it cannot be told.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}
