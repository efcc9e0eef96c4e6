//! Landed migrations are never edited: every migration file must match the SHA-256 recorded in
//! `landed.sha256` when it landed, and every migration file must be recorded there. A database
//! migrated before an edit would keep the old schema while new ones get the edited one (this
//! happened to 000007; 000008 brought them level). A new migration is recorded with
//! `sha256sum src/m2*.rs > landed.sha256` (in `migrations/`) when it is committed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::{collections::BTreeMap, fs, path::Path};

use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn landed_migrations_are_unchanged_and_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let recorded: BTreeMap<String, String> = fs::read_to_string(root.join("landed.sha256"))
        .expect("landed.sha256")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (sum, file) = line.split_once("  ").expect("`<sha256>  <file>` lines");
            (file.to_owned(), sum.to_owned())
        })
        .collect();
    let mut files: Vec<String> = fs::read_dir(root.join("src"))
        .expect("src")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with('m') && name.ends_with(".rs"))
        .map(|name| format!("src/{name}"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "migrations found: {files:?}");
    for file in &files {
        let sum = hex(&Sha256::digest(fs::read(root.join(file)).expect("read")));
        match recorded.get(file) {
            Some(expected) => assert_eq!(
                &sum, expected,
                "{file} changed after it landed: add a new migration instead"
            ),
            None => panic!("{file} is not recorded in landed.sha256"),
        }
    }
    for file in recorded.keys() {
        assert!(files.contains(file), "{file} is recorded but missing");
    }
}
