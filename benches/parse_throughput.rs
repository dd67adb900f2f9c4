//! `cargo bench --bench parse_throughput`: sigcat against the tools it replaces, on one
//! generated build log of at least 1 GiB (set SIGCAT_BENCH_BYTES to change the size).
//!
//! Measured, not asserted: prints a Markdown table for the README. Each command runs on the
//! same file, after one read to warm the page cache. Peak memory is the child's VmHWM.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUILD: &str = "azure-arm.sig-ubuntu-2404";
const KEYS: [&str; 10] = [
    "OSType",
    "ManagedImageResourceGroupName",
    "ManagedImageName",
    "ManagedImageId",
    "ManagedImageLocation",
    "ManagedImageSharedImageGalleryId",
    "SharedImageGalleryResourceGroup",
    "SharedImageGalleryName",
    "SharedImageGalleryImageName",
    "SharedImageGalleryImageVersion",
];

fn main() {
    let bytes: u64 = std::env::var("SIGCAT_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("build-{bytes}.log"));
    if std::fs::metadata(&log)
        .map(|m| m.len() < bytes)
        .unwrap_or(true)
    {
        eprintln!("generating {} ...", log.display());
        generate(&log, bytes);
    }
    let size = std::fs::metadata(&log).unwrap().len();
    let quoted = log.display().to_string();
    run_shell(&format!("cat '{quoted}' > /dev/null")); // warm the page cache

    let sigcat = env!("CARGO_BIN_EXE_sigcat");
    let sed_script: String = KEYS
        .iter()
        .map(|k| format!("sed -n 's/^{k}: \\(.*\\)/\\1/p' '{quoted}' | tail -1 > /dev/null; "))
        .collect();
    let rows = [
        (
            "sigcat parse",
            format!("'{sigcat}' parse '{quoted}' > /dev/null"),
            3,
        ),
        (
            "grep -c (one pass, the floor)",
            format!("grep -c ManagedImageSharedImageGalleryId '{quoted}' > /dev/null"),
            3,
        ),
        ("image-builder sed, tail -1 (10 keys)", sed_script, 1),
    ];
    let mut results = Vec::new();
    for (name, cmd, runs) in rows {
        let (best, peak) = (0..runs)
            .map(|_| run_shell(&cmd))
            .min_by_key(|(t, _)| *t)
            .unwrap();
        eprintln!("{name}: {:.2} s", best.as_secs_f64());
        results.push((name, best, peak));
    }
    let grep = results[1].1.as_secs_f64();
    println!(
        "\nInput: {:.2} GiB, {} ({})\n",
        size as f64 / (1u64 << 30) as f64,
        log.display(),
        machine()
    );
    println!("| command | time (best of runs) | throughput | peak memory | vs grep -c |");
    println!("|---|---|---|---|---|");
    for (name, t, peak_kib) in &results {
        let secs = t.as_secs_f64();
        println!(
            "| {name} | {secs:.2} s | {:.0} MiB/s | {:.1} MiB | {:.2}x |",
            size as f64 / secs / (1 << 20) as f64,
            *peak_kib as f64 / 1024.0,
            secs / grep
        );
    }
}

/// Runs `sh -c cmd`, returning wall time and the highest VmHWM seen (KiB) of the shell's
/// process tree: sigcat runs as the shell's only child (sh execs it), so this is its peak.
fn run_shell(cmd: &str) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(kib) = vm_hwm(pid) {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (start.elapsed(), peak)
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// A build log like `make build-azure-sig-ubuntu-2404` prints with colour on: ansible
/// provisioner noise as four-space message lines, per-build say lines, then the result and the
/// (duplicated) artifact block at the end.
fn generate(path: &PathBuf, bytes: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    writeln!(
        out,
        "\x1b[1;32m{BUILD}: output will be in this color.\x1b[0m"
    )
    .unwrap();
    let tasks = [
        "sysprep : Truncate machine id",
        "providers : Install cloud-init packages",
        "kubernetes : Install Kubernetes binaries",
        "containerd : Unpack containerd",
        "node : Set and persist kernel params",
        "setup : Perform a dist-upgrade",
    ];
    let mut written = 0u64;
    let mut i = 0u64;
    while written < bytes {
        let task = tasks[(i % tasks.len() as u64) as usize];
        let chunk = format!(
            "\x1b[0;32m    {BUILD}: TASK [{task}] *****************************************************\x1b[0m\n\
             \x1b[0;32m    {BUILD}: changed: [default] => (item={{'name': 'pkg-{i}', 'state': 'present'}})\x1b[0m\n\
             \x1b[0;32m    {BUILD}: ok: [default] => (item={{'key': 'net.ipv4.ip_forward', 'value': {i}}})\x1b[0m\n\
             \x1b[1;32m==> {BUILD}: Provisioning with Ansible step {i}...\x1b[0m\n\
             \x1b[0;32m    {BUILD}: Get:{i} http://azure.archive.ubuntu.com/ubuntu noble-updates/main amd64 libc6 amd64 2.39-0ubuntu8.{i} [3263 kB]\x1b[0m\n"
        );
        out.write_all(chunk.as_bytes()).unwrap();
        written += chunk.len() as u64;
        i += 1;
    }
    let sub = "00000000-1111-2222-3333-444444444444";
    let block = format!(
        "--> {BUILD}: Azure.ResourceManagement.VMImage:\n\nOSType: Linux\nManagedImageResourceGroupName: cluster-api-gallery\nManagedImageName: capi-ubuntu-2404-1721037000\nManagedImageId: /subscriptions/{sub}/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/images/capi-ubuntu-2404-1721037000\nManagedImageLocation: northcentralus\nManagedImageSharedImageGalleryId: /subscriptions/{sub}/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000\nSharedImageGalleryResourceGroup: cluster-api-gallery\nSharedImageGalleryName: ClusterAPI1721036000abcd\nSharedImageGalleryImageName: capi-ubuntu-2404\nSharedImageGalleryImageVersion: 0.3.1721037000\nSharedImageGalleryReplicatedRegions: northcentralus, eastus2\n\n"
    );
    write!(
        out,
        "\x1b[1;32mBuild '{BUILD}' finished after 27 minutes 12 seconds.\x1b[0m\n\n==> Wait completed after 27 minutes 12 seconds\n\n==> Builds finished. The artifacts of successful builds are:\n{block}{block}"
    )
    .unwrap();
    out.flush().unwrap();
}
