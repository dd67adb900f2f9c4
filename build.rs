//! Stamps the commit sigcat is built from into `--version`, so a bug report names the exact
//! code. Outside a git checkout (a crates.io download) it says so instead.

use std::process::Command;

/// Whether the tree differs from HEAD. `--no-optional-locks`: a plain `git status` refreshes
/// and rewrites `.git/index` (on a fresh clone it always does), which would change what this
/// script watches and make every build after the first rebuild sigcat.
const STATUS: [&str; 4] = [
    "--no-optional-locks",
    "status",
    "--porcelain",
    "--untracked-files=no",
];

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&STATUS).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=SIGCAT_COMMIT={commit}");
    // Stamp again when HEAD moves (a commit, a checkout) or the sources change (dirty or not).
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        // HEAD and the branch it points at: a commit or a checkout. (Not the index: staging
        // changes nothing the stamp says, and `git status` elsewhere rewrites it.)
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{head}");
        }
    }
}
