//! Allocator settings for tensor training on CPU (glibc only).
//!
//! A training step allocates and frees the same large activation and
//! gradient buffers (megabytes each) every step. With glibc's defaults each
//! of those is a fresh `mmap` that the kernel must zero page by page and a
//! `munmap` on free, or the top of the heap is trimmed and regrown: on the
//! project's 2-core machine page faults and page clearing took 10-15% of a
//! PLE step. Raising the mmap and trim thresholds keeps freed buffers in the
//! heap for the next step. The process keeps its peak footprint instead of
//! returning memory to the system between steps; the peak itself does not
//! grow. Call once, at start-up, before the first tensor.

/// The largest block that is still served from the heap rather than its own mapping.
pub const MMAP_THRESHOLD: usize = 1 << 30;

/// Applies the settings; returns whether glibc accepted them (always false
/// on other C libraries, where this does nothing).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before the training allocates and is safe to call at any time.
        unsafe {
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                // Older glibc caps the threshold at 32 MiB (HEAP_MAX_SIZE / 2).
                || libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1;
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1;
            let pad = libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1;
            mmap && trim && pad
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings_and_large_blocks_come_back_from_the_heap() {
        assert!(super::keep_freed_memory());
        // A 64 MiB block freed and asked for again is served from the heap:
        // the second allocation does not fault its pages in afresh.
        let minflt = || {
            // SAFETY: getrusage only writes into the struct we pass.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
            u.ru_minflt
        };
        let touch = |v: &mut Vec<u8>| {
            for i in (0..v.len()).step_by(4096) {
                v[i] = 1;
            }
        };
        let mut a = vec![0u8; 64 << 20];
        touch(&mut a);
        drop(a);
        let before = minflt();
        let mut b = vec![0u8; 64 << 20];
        touch(&mut b);
        let faults = minflt() - before;
        assert!(faults < 1000, "{faults} page faults for a reused 64 MiB block");
    }
}
