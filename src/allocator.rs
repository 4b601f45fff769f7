//! glibc's allocator, tuned for a long-running process that idles most of
//! the time and now and then syncs a large space. The operator binary sets
//! it up at start; the benchmarks do the same, so that their memory figures
//! are the operator's.
//!
//! Each thread that meets contention gets an arena of its own (up to 8 per
//! core), and freed memory stays in the arena that freed it: after a burst of
//! syncs across tokio's workers and the blocking pool (where the index
//! writes), an idle operator kept most of its peak resident. Two arenas, and
//! giving free pages back once work is done, keep idle RSS near what is live.
//!
//! glibc also raises its mmap threshold to the size of every mapped block
//! that is freed (up to 32 MiB). One sync frees many large blocks (listing
//! answers, page bodies, the index writer's arena pages), after which blocks
//! of that size come from the arenas instead, where they fragment the heap
//! and stay resident once freed: a 100,000-page sync peaked 25–30 MB higher in
//! anonymous memory that way. A fixed threshold keeps large blocks mapped,
//! so freeing one returns it to the system at once.

use std::time::Duration;

/// Blocks from this size up are mapped on their own (glibc's starting value,
/// kept fixed).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Arenas the allocator may use.
pub const ARENAS: usize = 2;

/// How often [`trim_periodically`] hands free memory back by default. On an
/// idle heap a trim finds little to do: with 1,000 idle spaces the process
/// used 0.05 % of a core (hack/bench).
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    /// Parameters of `mallopt`, from glibc's `malloc.h`.
    pub const M_MMAP_THRESHOLD: c_int = -3;
    pub const M_ARENA_MAX: c_int = -8;

    unsafe extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
        pub fn malloc_trim(pad: usize) -> c_int;
    }
}

/// Sets the arena limit and the fixed mmap threshold. Call before any other
/// thread starts (arenas already handed out stay). `MALLOC_ARENA_MAX` and
/// `MALLOC_MMAP_THRESHOLD_` in the environment win over these settings.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |variable: &str, param, value: usize| {
            if std::env::var_os(variable).is_some() {
                return;
            }
            let value = std::ffi::c_int::try_from(value).unwrap_or(std::ffi::c_int::MAX);
            // SAFETY: mallopt only sets a tunable of the allocator; called
            // before other threads exist.
            unsafe {
                glibc::mallopt(param, value);
            }
        };
        set("MALLOC_ARENA_MAX", glibc::M_ARENA_MAX, ARENAS);
        set(
            "MALLOC_MMAP_THRESHOLD_",
            glibc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        );
    }
}

/// Returns free pages of every arena to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        glibc::malloc_trim(0);
    }
}

/// Trims every `every`, for ever (spawn it on the runtime).
pub async fn trim_periodically(every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}
