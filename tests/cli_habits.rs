//! What kubectl and az users expect of a CLI: `-o FORMAT` and `--output-file`, `-n`, shell
//! completions, man pages, `--version` with the commit, and a word when `parse` waits on a
//! terminal.

use crate::util::{BIN, json_docs, kubectl_agrees, repo, scratch, sigcat, text, yaml_as_json};
use std::process::Command;

const LOG: &str = "fixtures/console/sig-ubuntu-2404.log";

fn ok(args: &[&str]) -> String {
    let out = sigcat(args, &[], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn o_names_a_format_and_a_path_there_is_refused_with_the_right_flag() {
    let dir = scratch("habits-o");
    for args in [
        vec!["parse", LOG, "-o", "records.json"],
        vec!["render", LOG, "--vm-size", "x", "-o", "out/template.yaml"],
    ] {
        let out = sigcat(&args, &[], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--output-file"), "{err}");
    }
    assert!(
        !repo().join("records.json").exists(),
        "no file named after a format"
    );
    // The old spelling still works.
    assert_eq!(
        ok(&["parse", LOG, "--format", "env"]),
        ok(&["parse", LOG, "-o", "env"])
    );
    // --output-file writes what stdout would have shown.
    let file = dir.join("records.json");
    assert_eq!(
        ok(&["parse", LOG, "--output-file", file.to_str().unwrap()]),
        ""
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ok(&["parse", LOG]));
}

/// The same records or objects in every format: each format read back must equal the JSON.
#[test]
fn yaml_and_json_outputs_say_the_same() {
    let json = json_docs(&ok(&["parse", LOG]));
    assert_eq!(yaml_as_json(&ok(&["parse", LOG, "-o", "yaml"])), json);

    let args = ["render", LOG, "--vm-size", "Standard_D2s_v3", "-n", "capz"];
    let yaml = kubectl_agrees(&ok(&args));
    assert_eq!(
        yaml[0]["metadata"]["namespace"], "capz",
        "-n is --namespace"
    );
    assert_eq!(json_docs(&ok(&[&args[..], &["-o", "json"]].concat())), yaml);
    // Several objects: a List, as `kubectl get -o json` prints them.
    let several = [
        "render",
        LOG,
        "--manifest",
        "fixtures/manifest/manifest.json",
        "--from",
        "fixtures/capz/cp.yaml",
        "--from",
        "fixtures/capz/md-0.yaml",
        "--upgrade",
        "fixtures/capz/current-v1beta1.yaml",
    ];
    let list = json_docs(&ok(&[&several[..], &["-o", "json"]].concat())).remove(0);
    assert_eq!(list["kind"], "List");
    assert_eq!(
        list["items"].as_array().unwrap(),
        &kubectl_agrees(&ok(&several))
    );
}

#[test]
fn catalog_commands_print_in_every_format() {
    let dir = scratch("habits-catalog");
    let cat = dir.join("catalog");
    let cat = cat.to_str().unwrap();
    ok(&[
        "publish",
        LOG,
        "--manifest",
        "fixtures/manifest/manifest.json",
        "--catalog",
        cat,
    ]);
    let lines = json_docs(&ok(&["catalog", "list", "-o", "json", "--catalog", cat]));
    assert_eq!(
        yaml_as_json(&ok(&["catalog", "list", "-o", "yaml", "--catalog", cat])),
        lines
    );
    let table = ok(&["catalog", "list", "--catalog", cat]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[0], "ID");
    assert_eq!(
        table.lines().nth(1).unwrap().split_whitespace().next(),
        lines[0]["id"].as_str()
    );
    // latest: the template as YAML (default) or JSON; the record as JSON (default) or YAML.
    let latest = [
        "catalog",
        "latest",
        "--kubernetes",
        "1.30",
        "--catalog",
        cat,
    ];
    let template = kubectl_agrees(&ok(&latest));
    assert_eq!(
        json_docs(&ok(&[&latest[..], &["-o", "json"]].concat())),
        template
    );
    let record = json_docs(&ok(&[&latest[..], &["--record"]].concat()));
    assert_eq!(
        yaml_as_json(&ok(&[&latest[..], &["--record", "-o", "yaml"]].concat())),
        record
    );
    let id = lines[0]["id"].as_str().unwrap();
    let file = dir.join("shown.yaml");
    ok(&[
        "catalog",
        "show",
        id,
        "--template",
        "--catalog",
        cat,
        "--output-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        kubectl_agrees(&std::fs::read_to_string(&file).unwrap()),
        template
    );
    assert_eq!(
        yaml_as_json(&ok(&["catalog", "verify", "-o", "yaml", "--catalog", cat])),
        json_docs(&ok(&["catalog", "verify", "-o", "json", "--catalog", cat]))
    );
}

#[test]
fn shell_completions_load_in_bash_and_exist_for_the_others() {
    let script = ok(&["completion", "bash"]);
    let dir = scratch("habits-completion");
    let file = dir.join("sigcat.bash");
    std::fs::write(&file, &script).unwrap();
    // The real bash loads it and registers a completion for sigcat; asking it to complete
    // `sigcat cat` offers `catalog`.
    let probe = format!(
        "source {}; complete -p sigcat >/dev/null && COMP_WORDS=(sigcat cat) COMP_CWORD=1 COMP_LINE='sigcat cat' COMP_POINT=10 && _sigcat sigcat cat sigcat && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(
        out.status.success(),
        "bash could not load the completion: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).lines().any(|l| l == "catalog"),
        "{}",
        text(&out.stdout)
    );
    // A flag's values are offered, not file names: -o FORMAT, --as FORMAT.
    let complete = |words: &[&str]| {
        let line = words.join(" ");
        let probe = format!(
            "source {}; COMP_WORDS=({line}) COMP_CWORD={} COMP_LINE='{line}' COMP_POINT={} && _sigcat sigcat '{}' '{}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        let mut offered: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        offered.sort();
        offered
    };
    assert_eq!(
        complete(&["sigcat", "parse", "-o", ""]),
        [
            "azure-devops",
            "env",
            "github",
            "json",
            "sig-publishing-info",
            "yaml"
        ]
    );
    assert_eq!(
        complete(&["sigcat", "render", "--as", ""]),
        ["kustomize", "objects"]
    );
    assert_eq!(
        complete(&["sigcat", "catalog", "list", "-o", ""]),
        ["json", "table", "yaml"]
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = ok(&["completion", shell]);
        assert!(
            script.contains("sigcat") && script.contains("catalog"),
            "{shell}"
        );
    }
    let out = sigcat(&["completion", "tcsh"], &[], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_render_with_man() {
    let page = ok(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH sigcat"),
        "{page}"
    );
    let dir = scratch("habits-man");
    ok(&["man", "--dir", dir.to_str().unwrap()]);
    for name in [
        "sigcat.1",
        "sigcat-parse.1",
        "sigcat-render.1",
        "sigcat-catalog-list.1",
    ] {
        let path = dir.join(name);
        assert!(path.exists(), "{name}");
        // The real man formats it (plain text, no pager).
        let out = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man is needed to check the pages (Debian: apt-get install man-db)");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("sigcat"), "{name}");
    }
    let parse = Command::new("man")
        .arg("-l")
        .arg(dir.join("sigcat-parse.1"))
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    assert!(text(&parse.stdout).contains("--output-file"));
}

#[test]
fn version_names_the_commit() {
    let version = ok(&["--version"]);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .unwrap();
    let head = text(&head.stdout).trim().to_string();
    assert!(
        version.starts_with(&format!("sigcat {} ({head}", env!("CARGO_PKG_VERSION"))),
        "{version} vs {head}"
    );
}

/// build.rs asks git whether the tree is dirty without letting git rewrite `.git/index` (a
/// plain `git status` refreshes it, on a fresh clone every time), which would make the build
/// after the first one rebuild sigcat. Checked on a fresh clone, with the arguments build.rs uses.
#[test]
fn the_build_script_leaves_a_fresh_clones_index_alone() {
    let build_rs = std::fs::read_to_string(repo().join("build.rs")).unwrap();
    let start = build_rs
        .find("const STATUS")
        .expect("build.rs names its git status call");
    let list = &build_rs[start..];
    let list = &list[list.find("= [").unwrap() + 3..list.find("];").unwrap()];
    let args: Vec<String> = list
        .split(',')
        .map(|a| a.trim().trim_matches('"').to_string())
        .filter(|a| !a.is_empty())
        .collect();
    assert!(
        args.contains(&"--no-optional-locks".to_string()),
        "{args:?}"
    );
    assert!(
        !build_rs.contains("rerun-if-changed={dir}/index"),
        "build.rs must not watch the index"
    );
    let dir = scratch("fresh-clone");
    let clone = dir.join("sigcat");
    let git = |args: &[&str], cwd: &std::path::Path| {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(
        &[
            "clone",
            "-q",
            "--no-hardlinks",
            repo().to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
        &dir,
    );
    let stamp = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.modified().unwrap(), std::fs::read(p).unwrap())
    };
    let index = clone.join(".git/index");
    let before = stamp(&index);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    git(&refs, &clone);
    assert!(stamp(&index) == before, "git {args:?} rewrote .git/index");
}

/// `sigcat parse` with nothing piped in waits on the terminal: it says so. A pty from Python's
/// standard library stands in for the terminal.
#[test]
fn parse_on_a_terminal_says_it_reads_stdin() {
    let script = r#"
import os, pty, subprocess, sys, time
master, slave = pty.openpty()
p = subprocess.Popen([sys.argv[1], "parse"], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(slave)
time.sleep(0.5)
os.write(master, b"\x04")
out, err = p.communicate(timeout=10)
sys.stderr.write(err.decode())
sys.exit(p.returncode)
"#;
    let out = Command::new("python3")
        .args(["-c", script, BIN])
        .output()
        .expect("python3 is needed for a pseudo-terminal");
    let err = text(&out.stderr);
    assert!(err.contains("reading build output from stdin"), "{err}");
    assert_eq!(out.status.code(), Some(3), "{err}");
    // Piped input: no such word.
    let piped = sigcat(&["parse"], &[], Some(b""));
    assert!(!text(&piped.stderr).contains("reading build output"));
}
