//! A run's memory, bounded whatever the script does.
//!
//! Rhai's size limits bound one string, one array, one map; they do not
//! bound how many of them a script keeps (`m[k] = big + "b"` for 2,000
//! keys is 2,000 strings of 16 MiB each). So the process counts the bytes
//! it has allocated ([`Counting`], the global allocator: one relaxed
//! atomic add per allocation), and:
//!
//! - the **soft cap** (`RUNBOOK_MAX_MEMORY`, default [`DEFAULT_CAP`]) is
//!   read by every engine's `on_progress`, between two operations: over it,
//!   the script is terminated with [`MEMORY_MARK`], its values are dropped,
//!   and the run ends as any failed run does (clean-up, ledger, exit 1) with
//!   a message naming the setting;
//! - the **hard cap** (the soft cap plus half of it) catches what one
//!   operation or a primitive allocates between two checks: the allocator
//!   writes one line to stderr and ends the process with exit 1 at once,
//!   never an abort. A lock held is then released by its ttl.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The soft cap when `RUNBOOK_MAX_MEMORY` is not set: 2 GiB.
pub const DEFAULT_CAP: usize = 2 * 1024 * 1024 * 1024;

/// What `on_progress` returns when the process is over the soft cap.
pub const MEMORY_MARK: &str = "runbook: memory cap";

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static SOFT: AtomicUsize = AtomicUsize::new(DEFAULT_CAP);
static HARD: AtomicUsize = AtomicUsize::new(DEFAULT_CAP + DEFAULT_CAP / 2);
static READ_ENV: AtomicBool = AtomicBool::new(false);

/// The global allocator: the system's, counting the bytes in use.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Count `size` more bytes; past the hard cap, end the process.
#[inline]
fn grow(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed).wrapping_add(size);
    if now > HARD.load(Ordering::Relaxed) {
        over_hard_cap();
    }
}

/// The last resort: no allocation here (the allocator is the caller), one
/// preformatted line to stderr and `_exit(1)`.
#[cold]
fn over_hard_cap() -> ! {
    const MSG: &[u8] = b"error: runbook used far more memory than RUNBOOK_MAX_MEMORY allows (one step allocated past the cap before the script could be stopped); stopped at once, without clean-up: a lock it held is freed by its ttl. Raise RUNBOOK_MAX_MEMORY (e.g. 4G) if the playbook really needs more\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe and allocate nothing.
    unsafe {
        nix::libc::write(2, MSG.as_ptr().cast(), MSG.len());
        nix::libc::_exit(1)
    }
}

// SAFETY: every call is forwarded to `System`; the count is bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        let p = System.alloc(layout);
        if p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            grow(new_size - old);
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > old {
                IN_USE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            IN_USE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Bytes the process has allocated and not freed.
pub fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// The soft cap in bytes.
pub fn cap() -> usize {
    init();
    SOFT.load(Ordering::Relaxed)
}

/// Parse a size: bytes, or a number with `K`, `M`, `G` (powers of 1024,
/// an optional `i`/`iB`/`B` after it).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: usize = s[..digits].parse().ok()?;
    let unit = s[digits..].trim().to_ascii_uppercase();
    let mult: usize = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&n| n > 0)
}

/// Read `RUNBOOK_MAX_MEMORY` once. An unreadable value keeps the default,
/// with a warning naming the form.
fn init() {
    if READ_ENV.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(v) = std::env::var("RUNBOOK_MAX_MEMORY") else {
        return;
    };
    match parse_size(&v) {
        Some(n) => set_cap(n),
        None => tracing::warn!(
            "RUNBOOK_MAX_MEMORY={v:?} is not a size (give bytes or a number with K, M or G, e.g. 512M); the cap stays at {}",
            crate::fsread::fmt_bytes(DEFAULT_CAP as u64)
        ),
    }
}

/// Set the soft cap (the hard cap follows it, half as much again).
pub fn set_cap(bytes: usize) {
    READ_ENV.store(true, Ordering::Relaxed);
    SOFT.store(bytes, Ordering::Relaxed);
    HARD.store(bytes.saturating_add(bytes / 2), Ordering::Relaxed);
}

/// The check every engine's `on_progress` makes: [`MEMORY_MARK`] once the
/// process is over the soft cap. One atomic load per operation.
#[inline]
pub fn check() -> Option<rhai::Dynamic> {
    (IN_USE.load(Ordering::Relaxed) > SOFT.load(Ordering::Relaxed)).then(|| MEMORY_MARK.into())
}

/// The message for a script ended by [`MEMORY_MARK`].
pub fn message() -> String {
    format!(
        "the run used more than {} of memory (a script keeping ever more or ever larger values?); if it really needs more, raise RUNBOOK_MAX_MEMORY (e.g. 4G)",
        crate::fsread::fmt_bytes(cap() as u64)
    )
}

/// Put the size limits every engine shares on `engine` (the run's, the
/// check's and `runbook test`'s alike), and an `on_progress` that ends the
/// script over the memory cap. An engine that sets its own `on_progress`
/// afterwards calls [`check`] in it.
pub fn limit(engine: &mut rhai::Engine) {
    init();
    engine
        .set_max_call_levels(64)
        .set_max_expr_depths(64, 64)
        .set_max_string_size(16 * 1024 * 1024)
        .set_max_array_size(100_000)
        .set_max_map_size(100_000)
        .set_max_modules(64)
        .set_max_variables(10_000)
        .set_max_functions(10_000);
    engine.on_progress(|_| check());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_a_person_writes_them() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("2 kb"), Some(2048));
        for bad in ["", "0", "G", "1X", "-1", "1.5G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_count_follows_allocations() {
        // Other tests allocate concurrently: a 64 MiB block stands out.
        let before = in_use();
        let v: Vec<u8> = Vec::with_capacity(64 << 20);
        assert!(in_use() >= before + (32 << 20));
        drop(v);
    }
}
