//! An image's life after its build, through the binary, on the local store and on Azurite:
//! promoted (served from there), its staging location cleaned up (never served again), its
//! end of life (never `latest` after it), retention (`prune`: a plan, the `az` commands, and
//! the deletions recorded only once `az` confirmed them), and yank's excludeFromLatest.
//! `az` is a stand-in that records its arguments; what it is asked is checked against the
//! commands the Azure CLI documents.

use crate::util::{Azurite, scratch, sigcat, text};
use std::path::{Path, PathBuf};
use std::process::Output;

const SUB: &str = "00000000-1111-2222-3333-444444444444";

/// A catalog (local or in Azurite), a stand-in `az` and a working directory.
struct Setup {
    name: &'static str,
    catalog: String,
    dir: PathBuf,
    path: String,
}

impl Setup {
    fn new(name: &'static str, catalog: String, dir: PathBuf) -> Setup {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let az = bin.join("az");
        // Records each call as one line; fails when its arguments contain $AZ_FAIL_ON.
        std::fs::write(
            &az,
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$AZ_LOG\"\nif [ -n \"$AZ_FAIL_ON\" ]; then case \"$*\" in *\"$AZ_FAIL_ON\"*) echo \"ERROR: (ResourceNotFound) not found\" >&2; exit 3;; esac; fi\nexit 0\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        Setup {
            name,
            catalog,
            dir,
            path,
        }
    }

    fn az_log(&self) -> PathBuf {
        self.dir.join("az.log")
    }

    fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--catalog", &self.catalog]);
        let log = self.az_log().display().to_string();
        let mut env = vec![("PATH", self.path.as_str()), ("AZ_LOG", log.as_str())];
        env.extend_from_slice(extra);
        sigcat(&all, &env, None)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} {args:?}: {}",
            self.name,
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Publishes build `n` (gallery version `0.3.<n>`, managed image `capi-ubuntu-2404-<n>`) for
    /// Kubernetes `k8s`; returns its catalog id and its sig-publishing-info.json.
    fn publish(&self, n: usize, k8s: &str) -> (String, PathBuf) {
        let log = self.dir.join(format!("{n}.log"));
        std::fs::write(&log, log_for(n)).unwrap();
        let log = log.display().to_string();
        self.ok(&["publish", &log, "--kubernetes-version", k8s]);
        let info = self.dir.join(format!("{n}-sig-publishing-info.json"));
        let out = sigcat(
            &[
                "parse",
                &log,
                "-o",
                "sig-publishing-info",
                "--output-file",
                info.to_str().unwrap(),
            ],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let list = self.ok(&["catalog", "list", "-o", "json"]);
        let id = list
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["gallery_image_version"] == format!("0.3.{n}"))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        (id, info)
    }

    /// `latest --kubernetes MINOR`'s template's image section, or the exit code.
    fn latest(&self, minor: &str, extra: &[&str]) -> Result<serde_json::Value, i32> {
        let mut args = vec!["catalog", "latest", "--kubernetes", minor, "-o", "json"];
        args.extend(extra);
        let out = self.run(&args);
        match out.status.code() {
            Some(0) => {
                let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                Ok(t["spec"]["template"]["spec"]["image"]["computeGallery"].clone())
            }
            code => Err(code.unwrap_or(-1)),
        }
    }

    fn row(&self, id: &str) -> String {
        let table = self.ok(&["catalog", "list"]);
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in {table}"))
            .to_string()
    }
}

fn log_for(n: usize) -> String {
    crate::util::log_for(n).replace(
        "capi-ubuntu-2404-1721037000",
        &format!("capi-ubuntu-2404-{n}"),
    )
}

fn staging_version(n: usize) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.{n}"
    )
}

fn managed_image(n: usize) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/images/capi-ubuntu-2404-{n}"
    )
}

fn production_version(version: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/prod-rg/providers/Microsoft.Compute/galleries/prod_gallery/images/capi-ubuntu-2404/versions/{version}"
    )
}

/// What `az sig image-version create` prints, trimmed to what a promotion reads.
fn created(dir: &Path, version: &str, end_of_life: &str) -> PathBuf {
    let file = dir.join(format!("created-{version}.json"));
    let json = serde_json::json!({
        "id": production_version(version),
        "location": "northcentralus",
        "name": version,
        "provisioningState": "Succeeded",
        "publishingProfile": {
            "endOfLifeDate": end_of_life,
            "excludeFromLatest": false,
            "replicaCount": 1,
            "targetRegions": [
                {"name": "North Central US", "regionalReplicaCount": 1},
                {"name": "West Europe", "regionalReplicaCount": 1}
            ]
        },
        "type": "Microsoft.Compute/galleries/images/versions"
    });
    std::fs::write(&file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    file
}

fn date_in(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn setups(azurite: &Azurite, name: &str) -> Vec<Setup> {
    let local = scratch(&format!("lifecycle-{name}-local"));
    let remote = scratch(&format!("lifecycle-{name}-azurite"));
    vec![
        Setup::new("local", local.join("catalog").display().to_string(), local),
        Setup::new("azurite", azurite.url(&format!("lifecycle-{name}")), remote),
    ]
}

#[test]
fn build_promote_clean_and_end_of_life_and_latest_follows_each() {
    let azurite = Azurite::start("lifecycle-flow");
    for s in setups(&azurite, "flow") {
        let (older, _) = s.publish(1, "1.30.1");
        let (newer, info) = s.publish(2, "1.30.2");
        // Built: served from the staging gallery.
        let built = s.latest("1.30", &[]).unwrap();
        assert_eq!(built["gallery"], "ClusterAPI1721036000abcd", "{}", s.name);
        assert_eq!(built["version"], "0.3.2");

        // Promoted to a private production gallery, from the promote job's files.
        // Computed once: a test that runs across midnight must not compare two dates.
        let (eol, eol_again) = (date_in(180), date_in(170));
        let az_out = created(&s.dir, "1.30.2", &eol);
        let promote_step = [
            "catalog",
            "promote",
            "--publishing-info",
            info.to_str().unwrap(),
            "--image-version",
            az_out.to_str().unwrap(),
        ];
        s.ok(&promote_step);
        let promoted = s.latest("1.30", &[]).unwrap();
        assert_eq!(
            promoted,
            serde_json::json!({
                "subscriptionID": SUB,
                "resourceGroup": "prod-rg",
                "gallery": "prod_gallery",
                "name": "capi-ubuntu-2404",
                "version": "1.30.2",
            }),
            "{}",
            s.name
        );
        // The same step retried: recorded already, nothing changes.
        let again = s.run(&promote_step);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
        assert!(
            text(&again.stderr).contains("already") && !s.row(&newer).contains("times"),
            "{}",
            text(&again.stderr)
        );
        // A create that failed (or output that does not say it succeeded) is not a promotion.
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&az_out).unwrap()).unwrap();
        for (name, state, says) in [
            ("failed.json", Some("Failed"), "Failed"),
            ("unsaid.json", None, "provisioningState"),
        ] {
            let file = s.dir.join(name);
            let mut json = json.clone();
            match state {
                Some(v) => json["provisioningState"] = v.into(),
                None => drop(json.as_object_mut().unwrap().remove("provisioningState")),
            }
            std::fs::write(&file, json.to_string()).unwrap();
            let out = s.run(&[
                "catalog",
                "promote",
                &newer,
                "--image-version",
                file.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
            let err = text(&out.stderr);
            assert!(err.contains(name) && err.contains(says), "{err}");
        }
        // Where another image was built is not a promotion target.
        let out = s.run(&["catalog", "promote", &newer, "--to", &staging_version(1)]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("was built"),
            "{}",
            text(&out.stderr)
        );
        // In the regions the promotion replicated to, not (any more) only the build's.
        assert!(s.latest("1.30", &["--region", "westeurope"]).is_ok());
        let row = s.row(&newer);
        assert!(
            row.contains("production") && row.contains(&format!("end of life {eol}")),
            "{row}"
        );
        // The staging stage still has it until it is deleted.
        assert_eq!(
            s.latest("1.30", &["--stage", "staging"]).unwrap()["version"],
            "0.3.2"
        );

        // Cleaned up as image-builder's clean job does: never served from staging again.
        s.ok(&[
            "catalog",
            "clean",
            "--publishing-info",
            info.to_str().unwrap(),
        ]);
        assert_eq!(
            s.latest("1.30", &["--stage", "staging"]).unwrap()["version"],
            "0.3.1",
            "the other image is still in staging"
        );
        assert_eq!(s.latest("1.30", &[]).unwrap()["gallery"], "prod_gallery");
        // Cleaning again changes nothing, and says so.
        let again = s.run(&[
            "catalog",
            "clean",
            "--publishing-info",
            info.to_str().unwrap(),
        ]);
        assert_eq!(again.status.code(), Some(0));
        assert!(
            text(&again.stderr).contains("already"),
            "{}",
            text(&again.stderr)
        );

        // Promoted again to the same version (image-builder deletes and recreates it): recorded
        // and flagged, never merged.
        s.ok(&[
            "catalog",
            "promote",
            &newer,
            "--to",
            &production_version("1.30.2"),
            "--region",
            "westeurope",
            "--end-of-life",
            &eol_again,
        ]);
        let row = s.row(&newer);
        assert!(
            row.contains("promoted 2 times") && row.contains(&format!("end of life {eol_again}")),
            "{row}"
        );
        let verify = s.run(&["catalog", "verify"]);
        assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
        assert!(
            text(&verify.stdout).contains("promoted 2 times"),
            "{}",
            text(&verify.stdout)
        );

        // End of life: within the warning window, a warning; past it, never latest.
        let soon = s.run_with(
            &[
                "catalog",
                "latest",
                "--kubernetes",
                "1.30",
                "--eol-warning",
                "365d",
            ],
            &[],
        );
        assert_eq!(soon.status.code(), Some(0));
        assert!(
            text(&soon.stderr).contains("end of life"),
            "{}",
            text(&soon.stderr)
        );
        s.ok(&["catalog", "end-of-life", &newer, &date_in(-1)]);
        assert_eq!(s.latest("1.30", &[]).unwrap()["version"], "0.3.1");
        assert!(s.row(&newer).contains("past end of life"));
        s.ok(&["catalog", "end-of-life", &older, &date_in(-1)]);
        assert_eq!(s.latest("1.30", &[]), Err(3), "{}", s.name);
        let verify = s.run(&["catalog", "verify"]);
        assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    }
}

#[test]
fn prune_plans_runs_az_and_records_only_what_az_deleted() {
    let azurite = Azurite::start("lifecycle-prune");
    for s in setups(&azurite, "prune") {
        let (old_minor, _) = s.publish(3, "1.29.5");
        let (old_patch, _) = s.publish(1, "1.30.1");
        let (newest, _) = s.publish(2, "1.30.2");
        // A cluster still runs 1.30.1: its template references that gallery version.
        let in_use = s.dir.join("clusters.yaml");
        std::fs::write(
            &in_use,
            format!(
                "apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\nkind: AzureMachineTemplate\nmetadata:\n  name: md-0\n  namespace: default\nspec:\n  template:\n    spec:\n      image:\n        id: {}\n",
                staging_version(1)
            ),
        )
        .unwrap();
        // The plan, with what clusters run (`in_use`) or not, in a format.
        let prune = |in_use: Option<&Path>, extra: &[&str], env: &[(&str, &str)]| -> Output {
            let mut args = vec![
                "catalog",
                "prune",
                "--keep-minors",
                "1",
                "--keep-patches",
                "1",
            ];
            if let Some(f) = in_use {
                args.extend(["--in-use", f.to_str().unwrap()]);
            }
            args.extend(extra);
            s.run_with(&args, env)
        };
        let plan = |in_use: Option<&Path>| -> Vec<(String, String)> {
            let out = prune(in_use, &["-o", "json"], &[]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut v: Vec<(String, String)> = plan["delete"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap().to_string(),
                        r["resource_id"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let mut expected = vec![
            (old_minor.clone(), staging_version(3)),
            (old_minor.clone(), managed_image(3)),
            (old_patch.clone(), staging_version(1)),
            (old_patch.clone(), managed_image(1)),
        ];
        expected.sort();
        assert_eq!(plan(None), expected, "{}", s.name);
        // With what clusters run: 1.30.1's gallery version stays.
        expected.retain(|(_, rid)| rid != &staging_version(1));
        assert_eq!(plan(Some(&in_use)), expected, "{}", s.name);
        // The same from a FIFO (`--in-use <(kubectl get ...)`); a directory is exit 5.
        let fifo = s.dir.join("in-use.fifo");
        crate::util::mkfifo(&fifo);
        let writer = {
            let (fifo, in_use) = (fifo.clone(), in_use.clone());
            std::thread::spawn(move || {
                std::fs::write(&fifo, std::fs::read(&in_use).unwrap()).unwrap();
            })
        };
        assert_eq!(plan(Some(&fifo)), expected, "{}", s.name);
        writer.join().unwrap();
        let out = prune(Some(&s.dir), &["-o", "json"], &[]);
        assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
        // As a script: each az delete, then the clean that records it.
        let script = text(&prune(Some(&in_use), &["-o", "az"], &[]).stdout);
        assert!(
            script.contains(&format!(
                "az sig image-version delete --ids {}",
                staging_version(3)
            )) && script.contains(&format!("az image delete --ids {}", managed_image(3))),
            "{script}"
        );
        assert!(!script.contains(&staging_version(1)), "{script}");
        assert!(!std::fs::exists(s.az_log()).unwrap(), "a plan runs nothing");

        // Run through az; az fails on one of them: that one stays as it was, the rest is
        // recorded, and the exit says the Azure side failed (8).
        let out = prune(
            Some(&in_use),
            &["--run-az"],
            &[("AZ_FAIL_ON", "capi-ubuntu-2404-1")],
        );
        assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
        let calls = std::fs::read_to_string(s.az_log()).unwrap();
        assert_eq!(
            calls.lines().count(),
            3,
            "one az call per location in the plan: {calls}"
        );
        assert!(calls.contains(&format!(
            "sig image-version delete --ids {}",
            staging_version(3)
        )));
        assert_eq!(
            plan(Some(&in_use)),
            vec![(old_patch.clone(), managed_image(1))],
            "only what az failed to delete is left"
        );
        assert_eq!(s.latest("1.29", &[]), Err(3), "1.29.5 has no location left");
        assert_eq!(s.latest("1.30", &[]).unwrap()["version"], "0.3.2");
        assert!(
            s.row(&old_minor).contains("deleted"),
            "{}",
            s.row(&old_minor)
        );

        // Yank with --run-az: Azure's own "latest" is told too.
        std::fs::remove_file(s.az_log()).unwrap();
        s.ok(&["catalog", "yank", &newest, "--reason", "CVE", "--run-az"]);
        assert_eq!(
            std::fs::read_to_string(s.az_log()).unwrap(),
            format!(
                "sig image-version update --ids {} --set publishingProfile.excludeFromLatest=true\n",
                staging_version(2)
            )
        );
        assert_eq!(s.latest("1.30", &[]).unwrap()["version"], "0.3.1");
    }
}
