//! The JSON Schemas published for consumers that are not sigcat (`src/record/record.schema.json`,
//! `src/catalog/index.schema.json`, also printed by `sigcat schema`), judged by PyPI's
//! `jsonschema` against what sigcat really writes.

use crate::util::{json_docs, repo, schema_violations, scratch, sigcat, text};

fn ok(args: &[&str]) -> String {
    let out = sigcat(args, &[], None);
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 3)),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn every_fixture_record_matches_the_record_schema() {
    let mut records = Vec::new();
    for dir in ["console", "machine-readable", "manifest"] {
        for entry in std::fs::read_dir(repo().join("fixtures").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            records.extend(json_docs(&ok(&["parse", path.to_str().unwrap()])));
        }
    }
    let joined = ok(&[
        "parse",
        "fixtures/console/sig-ubuntu-2404.log",
        "--manifest",
        "fixtures/manifest/manifest.json",
    ]);
    records.extend(json_docs(&joined));
    assert!(records.len() > 20, "{}", records.len());
    assert_eq!(
        schema_violations("src/record/record.schema.json", &records),
        Vec::<String>::new()
    );
    // The check can fail: a record with a wrong result and an unknown key is caught.
    let mut bad = records[0].clone();
    bad["result"] = "maybe".into();
    bad["surprise"] = 1.into();
    assert_eq!(
        schema_violations("src/record/record.schema.json", &[bad]).len(),
        2
    );
}

#[test]
fn a_real_catalog_matches_the_schemas_of_its_root_shards_and_pointers() {
    let dir = scratch("schemas-index");
    let cat = dir.join("catalog");
    let cat = cat.to_str().unwrap();
    for log in [
        "fixtures/console/sig-ubuntu-2404.log",
        "fixtures/console/multi-build.log",
        "fixtures/console/managed-image-only.log",
    ] {
        sigcat(
            &[
                "publish",
                log,
                "--catalog",
                cat,
                "--kubernetes-version",
                "1.30.3",
            ],
            &[],
            None,
        );
    }
    let list = json_docs(&ok(&["catalog", "list", "-o", "json", "--catalog", cat]));
    assert!(list.len() >= 3);
    let id = list[0]["id"].as_str().unwrap();
    ok(&["catalog", "yank", id, "--reason", "test", "--catalog", cat]);
    let read =
        |key: &str| json_docs(&std::fs::read_to_string(dir.join("catalog").join(key)).unwrap());
    let root = read("index.json");
    assert_eq!(
        schema_violations("src/catalog/index.schema.json", &root),
        Vec::<String>::new()
    );
    let sections: Vec<serde_json::Value> = root[0]["sections"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|s| read(s["key"].as_str().unwrap()))
        .collect();
    assert!(!sections.is_empty());
    assert_eq!(
        schema_violations("src/catalog/section.schema.json", &sections),
        Vec::<String>::new()
    );
    let shards: Vec<serde_json::Value> = sections
        .iter()
        .flat_map(|s| s["shards"].as_object().unwrap().values())
        .flat_map(|s| read(s["key"].as_str().unwrap()))
        .collect();
    assert!(!shards.is_empty());
    assert!(shards[0]["images"][0].get("published_at").is_some());
    assert_eq!(
        schema_violations("src/catalog/shard.schema.json", &shards),
        Vec::<String>::new()
    );
    let pointers: Vec<serde_json::Value> = sections
        .iter()
        .filter_map(|s| s.get("latest"))
        .flat_map(|p| read(p["key"].as_str().unwrap()))
        .collect();
    assert!(!pointers.is_empty());
    assert_eq!(
        schema_violations("src/catalog/latest.schema.json", &pointers),
        Vec::<String>::new()
    );
    // Microseconds or an offset would break common parsers; the schema says milliseconds, Z.
    let mut bad = shards[0].clone();
    bad["images"][0]["published_at"] = "2026-11-25T21:13:23.418123+00:00".into();
    assert_eq!(
        schema_violations("src/catalog/shard.schema.json", &[bad]).len(),
        1
    );
    let mut bad = root[0].clone();
    bad["images"] = serde_json::json!([{"id": "x"}]);
    assert_eq!(
        schema_violations("src/catalog/index.schema.json", &[bad]).len(),
        1
    );
    // What `sigcat schema` prints is the file.
    for (which, path) in [
        ("index", "src/catalog/index.schema.json"),
        ("shard", "src/catalog/shard.schema.json"),
        ("latest", "src/catalog/latest.schema.json"),
        ("record", "src/record/record.schema.json"),
    ] {
        assert_eq!(
            ok(&["schema", which]),
            std::fs::read_to_string(repo().join(path)).unwrap()
        );
    }
}
