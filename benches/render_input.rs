//! `cargo bench --bench render_input`: reading `--from` / `--upgrade` YAML. sigcat's reader
//! (parser events, kubectl's YAML 1.1 resolution, a depth limit) against serde_norway's, the
//! reader it replaced, on (a) a large realistic input: a `kubectl get -o yaml` List of N
//! MachineDeployments, and (b) deeply nested flow sequences, which took the old reader
//! quadratic time. Measured, not asserted: prints a Markdown table for the README. The old
//! reader stops being measured once one run passes 20 s.

use serde::Deserialize;
use std::time::{Duration, Instant};

fn list(n: usize) -> String {
    let mut s = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..n {
        s.push_str(&format!(
            "- apiVersion: cluster.x-k8s.io/v1beta1\n  kind: MachineDeployment\n  metadata:\n    name: md-{i}\n    namespace: default\n    labels: {{pool: \"on\", tier: \"{i}\"}}\n  spec:\n    clusterName: my-cluster\n    replicas: 3\n    template:\n      spec:\n        bootstrap:\n          configRef: {{apiVersion: bootstrap.cluster.x-k8s.io/v1beta1, kind: KubeadmConfigTemplate, name: md-{i}}}\n        clusterName: my-cluster\n        infrastructureRef:\n          apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n          kind: AzureMachineTemplate\n          name: md-{i}\n        version: v1.29.7\n"
        ));
    }
    s
}

fn nested(depth: usize) -> String {
    format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth))
}

fn time(f: impl Fn()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed());
        if best > Duration::from_secs(20) {
            break;
        }
    }
    best
}

fn show(d: Option<Duration>) -> String {
    match d {
        None => "(not run: the smaller size passed 20 s)".into(),
        Some(d) if d.as_secs_f64() >= 1.0 => format!("{:.1} s", d.as_secs_f64()),
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
    }
}

fn main() {
    println!("| input | size | sigcat | serde_norway (before) |");
    println!("|---|---|---|---|");
    for n in [100, 1_000, 10_000] {
        let text = list(n);
        let ours = time(|| {
            sigcat::yaml::read_objects(&text, "bench").unwrap();
        });
        let theirs = time(|| {
            for d in serde_norway::Deserializer::from_str(&text) {
                serde_norway::Value::deserialize(d).unwrap();
            }
        });
        println!(
            "| List of {n} MachineDeployments | {} KiB | {} | {} |",
            text.len() / 1024,
            show(Some(ours)),
            show(Some(theirs))
        );
    }
    let mut old_too_slow = false;
    for depth in [1_000, 10_000, 25_000, 100_000] {
        let text = nested(depth);
        let ours = time(|| {
            assert!(sigcat::yaml::read_objects(&text, "bench").is_err());
        });
        let theirs = (!old_too_slow).then(|| {
            time(|| {
                for d in serde_norway::Deserializer::from_str(&text) {
                    let _ = serde_norway::Value::deserialize(d);
                }
            })
        });
        old_too_slow |= theirs.is_some_and(|t| t > Duration::from_secs(20));
        println!(
            "| `[` nested {depth} deep (refused by sigcat) | {} KiB | {} | {} |",
            text.len() / 1024,
            show(Some(ours)),
            show(theirs)
        );
    }
}
