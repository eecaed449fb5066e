//! Build facts `jobherd --version` prints: the git commit it is built from and the Kubernetes
//! API version k8s-openapi is built for (its `v1_NN` feature in Cargo.toml).

use std::path::Path;
use std::process::Command;

/// Where the commit comes from without a git checkout (a Docker build: `.git` stays outside the
/// build context); the Dockerfile passes its `REVISION` build argument here.
const REVISION_VAR: &str = "JOBHERD_BUILD_REVISION";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={REVISION_VAR}");
    let commit = git_commit()
        .or_else(|| {
            std::env::var(REVISION_VAR)
                .ok()
                .filter(|r| !r.trim().is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo::rustc-env=BUILD_GIT_COMMIT={}", commit.trim());
    println!("cargo::rustc-env=BUILD_K8S_API={}", k8s_api());
}

/// HEAD's commit when the crate is a git checkout, and what makes cargo look again when HEAD
/// moves (the HEAD file, and the branch it points to).
fn git_commit() -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if !Path::new(&dir).join(".git").exists() {
        return None;
    }
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(&dir)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = Path::new(&dir).join(path);
            // A path that does not exist would make cargo rebuild every time.
            if path.exists() {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

/// `1.33` for k8s-openapi's `v1_33`: k8s-openapi tells its dependents' build scripts its
/// version as `DEP_K8S_OPENAPI_<its version>_VERSION`, `0x00_MM_NN_00`.
fn k8s_api() -> String {
    let encoded = std::env::vars().find_map(|(key, value)| {
        (key.starts_with("DEP_K8S_OPENAPI_") && key.ends_with("_VERSION"))
            .then(|| value.parse::<u32>().ok())
            .flatten()
    });
    match encoded {
        Some(v) => format!("{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff),
        None => {
            println!("cargo::warning=k8s-openapi did not say its Kubernetes version");
            "unknown".to_string()
        }
    }
}
