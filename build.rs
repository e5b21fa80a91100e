//! Link settings for the release binary (nothing is generated).
//!
//! A release `runbook` is linked as a non-PIE executable on Linux: a PIE
//! binary of this size carries ~39,000 relative relocations that the
//! dynamic loader applies on every start (about a sixth of a trivial run's
//! instructions, and a copy-on-write fault on each page of `.data.rel.ro`);
//! a non-PIE one has none. The loader still randomizes the stack, the heap
//! and the shared libraries; only the executable's own image sits at a
//! fixed address. `-z pack-relative-relocs` (DT_RELR) would keep it PIE
//! but needs glibc 2.36 on the machine that runs it, which the GitHub
//! runners this binary is downloaded onto (ubuntu-22.04: glibc 2.35) do
//! not all have. Debug builds (the tests) are left as rustc links them.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") == "release"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
