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
//!
//! The price is that memory freed between phases (the loaded features once
//! the splits are built, the train split's tensors before the test split's,
//! one evaluation's buffers) stays resident, and big blocks of the next phase
//! rarely fit the holes: [`release_free_memory`] hands the free pages back at
//! those boundaries (a full-scale run peaked at 3.0 GB without it).

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

/// Returns the free pages of every heap to the system (glibc's
/// `malloc_trim`, which also releases whole free pages inside the heap, not
/// only at its top). Call between phases, never per step; returns whether
/// any memory was released (always false on other C libraries).
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free memory to the system; live
        // blocks are not touched.
        unsafe { libc::malloc_trim(0) == 1 }
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

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_blocks_leave_the_resident_set_once_released() {
        super::keep_freed_memory();
        let rss_mb = || {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().to_string();
            line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() / 1024
        };
        // 256 MiB in 16 MiB blocks, touched, then freed except the last one
        // (which pins the heap's top, so only an in-heap release helps).
        let mut blocks: Vec<Vec<u8>> = (0..16).map(|_| vec![1u8; 16 << 20]).collect();
        let keep = blocks.pop().unwrap();
        let _small = vec![1u8; 4096];
        let held = rss_mb();
        drop(blocks);
        assert!(super::release_free_memory());
        let after = rss_mb();
        assert!(held >= after + 200, "resident {held} MiB before the release, {after} MiB after");
        assert_eq!(keep[0], 1);
    }
}
