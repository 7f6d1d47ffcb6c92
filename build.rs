//! Embeds an rpath to libtorch's lib directory so `bench` runs without
//! LD_LIBRARY_PATH (torch-sys, `links = "tch"`, publishes the directory to
//! its direct dependents as DEP_TCH_LIBTORCH_LIB), and records the libtorch
//! version for the run environment.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=migrations");
    let mut version = "unknown".to_string();
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        let root = Path::new(&lib).parent().map(Path::to_path_buf).unwrap_or_default();
        for candidate in [root.join("version.py"), root.join("build-version")] {
            if let Ok(text) = std::fs::read_to_string(&candidate) {
                let found = text
                    .lines()
                    .find_map(|l| l.strip_prefix("__version__ = "))
                    .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
                    .or_else(|| Some(text.trim().to_string()).filter(|s| !s.is_empty() && !s.contains('\n')));
                if let Some(v) = found {
                    version = v;
                    break;
                }
            }
        }
    }
    println!("cargo:rustc-env=MTLBENCH_LIBTORCH_VERSION={version}");
}
