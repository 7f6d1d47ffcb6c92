//! Device selection. CPU by default; for CUDA the libtorch_cuda library is
//! loaded at run time (the binary links only libtorch_cpu), so one binary
//! serves both, and a missing GPU is a clear error.

use tch::Device;

/// Parses "cpu", "cuda" or "cuda:N" and checks that the device is usable.
pub fn resolve(spec: &str) -> Result<Device, String> {
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = match spec.strip_prefix("cuda") {
        Some("") => 0usize,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("device {spec:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""))?,
        None => return Err(format!("device {spec:?}: expected \"cpu\", \"cuda\" or \"cuda:N\"")),
    };
    load_cuda_library().map_err(|e| format!("device {spec:?}: {e}"))?;
    if !tch::Cuda::is_available() {
        return Err(format!("device {spec:?} asked for, but libtorch sees no CUDA GPU on this machine"));
    }
    let n = tch::Cuda::device_count() as usize;
    if index >= n {
        return Err(format!("device {spec:?} asked for, but only {n} CUDA device(s) are visible"));
    }
    Ok(Device::Cuda(index))
}

/// dlopen()s libtorch_cuda.so so that libtorch registers its CUDA backend.
fn load_cuda_library() -> Result<(), String> {
    let name = c"libtorch_cuda.so";
    // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept for
    // the life of the process on purpose (the backend must stay registered).
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let err = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(format!(
            "CUDA asked for, but libtorch_cuda.so could not be loaded ({err}); install the CUDA build of libtorch with `make setup-cuda`, or use device = \"cpu\""
        ));
    }
    Ok(())
}
