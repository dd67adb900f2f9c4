//! Property tests: no input makes the parser panic, and no signature survives into a record.

use proptest::prelude::*;
use sigcat::parse::{self, lines::LineReader};
use sigcat::record::InputFormat;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut out = Vec::new();
    for sub in ["console", "machine-readable", "manifest", "invalid"] {
        for entry in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
            out.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    out.sort();
    out
}

/// Lines that steer the state machine, to reach deep states more often than random bytes do.
const VOCABULARY: &[&str] = &[
    "--> azure-arm.sig-x: Azure.ResourceManagement.VMImage:",
    "--> azure-chroot.x: Azure resources created:",
    "--> sig-x: some error",
    "",
    "OSType: Linux",
    "OSType: Plan9",
    "ManagedImageResourceGroupName: rg",
    "ManagedImageName: img",
    "ManagedImageId: /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/img",
    "ManagedImageSharedImageGalleryId: /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.30.3",
    "SharedImageGalleryName: g",
    "SharedImageGalleryImageVersion: 1.30.3",
    "SharedImageGalleryReplicatedRegions: a, b",
    "OSDiskUriReadOnlySas: https://a/b.vhd?sv=1&sig=SECRETSECRET",
    "AdditionalDiskUri (datadisk-1): https://a/d.vhd?sig=SECRETSECRET",
    "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/images/x",
    "Build 'azure-arm.sig-x' finished after 1 second.",
    "Build 'sig-x' errored: boom sig=SECRETSECRET",
    "==> Builds finished. The artifacts of successful builds are:",
    "==> Some builds didn't complete successfully and had errors:",
    "Cleanly cancelled builds after being interrupted.",
    "azure-arm.sig-x: output will be in this color.",
    "\x1b[1;32m2024-07-15T10:21:33Z: ==> sig-x: hi\x1b[0m",
    "1721038893,,ui,say,--> sig-x: Azure.ResourceManagement.VMImage:\\n\\nOSType: Linux",
    "1721038893,sig-x,artifact,0,end",
];

fn check(input: &[u8]) {
    for format in [
        None,
        Some(InputFormat::Console),
        Some(InputFormat::MachineReadable),
        Some(InputFormat::Manifest),
    ] {
        if let Ok(parsed) = parse::parse_stream(&mut LineReader::new(input), "prop", format) {
            let json = serde_json::to_string(&parsed.records).unwrap();
            assert!(!json.contains("SECRETSECRET"), "a signature leaked: {json}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(input in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&input);
    }

    #[test]
    fn random_sequences_of_meaningful_lines(
        lines in proptest::collection::vec(proptest::sample::select(VOCABULARY), 0..40),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let input: String = lines.iter().map(|l| format!("{l}{end}")).collect();
        check(input.as_bytes());
    }

    #[test]
    fn mutated_fixtures(
        which in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..12),
        cut in any::<proptest::sample::Index>(),
    ) {
        let all = fixtures();
        let mut input = all[which.index(all.len())].clone();
        for (at, byte, kind) in edits {
            if input.is_empty() { break; }
            let i = at.index(input.len());
            match kind {
                0 => input[i] = byte,
                1 => input.insert(i, byte),
                _ => { input.remove(i); }
            }
        }
        let keep = cut.index(input.len() + 1);
        input.truncate(keep);
        check(&input);
    }
}
