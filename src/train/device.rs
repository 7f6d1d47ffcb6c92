//! Device selection. CPU by default; for CUDA the libtorch_cuda library is
//! loaded at run time (the binary links only libtorch_cpu), so one binary
//! serves both, and a missing GPU is a clear error. The device is parsed
//! when the grid is read ([`DeviceSpec`]); whether it exists is known only
//! on the machine that trains.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tch::Device;

/// `train.device`: parsed when the grid is read, written back as the same
/// string ("cpu", "cuda", "cuda:N"), so config hashes keep their form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// "cuda" (`None`: the first GPU) or "cuda:N".
    Cuda(Option<usize>),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let bad = || format!("expected \"cpu\", \"cuda\" or \"cuda:N\" (N a GPU index), got {spec:?}");
        match spec {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(None)),
            _ => {
                let n = spec.strip_prefix("cuda:").ok_or_else(bad)?;
                // Digits only: `usize::from_str` would also take "+1".
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                n.parse().map(|i| DeviceSpec::Cuda(Some(i))).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(None) => write!(f, "cuda"),
            DeviceSpec::Cuda(Some(i)) => write!(f, "cuda:{i}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks that the device is usable and returns it.
pub fn resolve(spec: DeviceSpec) -> Result<Device, String> {
    let index = match spec {
        DeviceSpec::Cpu => return Ok(Device::Cpu),
        DeviceSpec::Cuda(i) => i.unwrap_or(0),
    };
    let spec = spec.to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for (text, want) in [("cpu", DeviceSpec::Cpu), ("cuda", DeviceSpec::Cuda(None)), ("cuda:0", DeviceSpec::Cuda(Some(0))), ("cuda:12", DeviceSpec::Cuda(Some(12)))] {
            assert_eq!(text.parse::<DeviceSpec>(), Ok(want));
            assert_eq!(want.to_string(), text);
        }
        for bad in ["cuda:abc", "cuda:", "cuda:+1", "cuda:-1", "gpu", "CPU", "", "cuda:1:2", "cuda0"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(e.contains("expected \"cpu\", \"cuda\" or \"cuda:N\"") && e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
