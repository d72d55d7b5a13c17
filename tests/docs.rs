//! The repository is all a user gets: every key the config reader accepts
//! is explained in `docs/configuration.md`, and no document sends a reader
//! to material outside the repository.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every key name the config reader asks for (`s.string("key", …)` and the
/// like in `src/config/`).
fn keys_read() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for call in [
            ".string(\"",
            ".duration(\"",
            ".string_list(\"",
            ".section(\"",
            ".get(\"",
        ] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                if let Some(end) = rest.find('"') {
                    let key = &rest[..end];
                    if !key.is_empty() && !keys.iter().any(|k| k == key) {
                        keys.push(key.to_string());
                    }
                }
            }
        }
    }
    keys
}

#[test]
fn every_config_key_is_in_the_reference() {
    let doc = read("docs/configuration.md");
    let keys = keys_read();
    assert!(keys.len() > 60, "the key scan found too little: {keys:?}");
    // A key is documented where it stands in code spans: `key`, `a.key`,
    // `a.key[]…` or `a.key.b`.
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            !["`", "."].iter().any(|before| {
                ["`", "[", ".", ","]
                    .iter()
                    .any(|after| doc.contains(&format!("{before}{k}{after}")))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
    // …and the example file shows them too (commented or not).
    let example = read("config/example.yaml");
    let absent: Vec<&String> = keys
        .iter()
        .filter(|k| !example.contains(&format!("{k}:")) && !example.contains(&format!("{{{k}:")))
        .collect();
    assert!(
        absent.is_empty(),
        "keys missing from config/example.yaml: {absent:?}"
    );
}

#[test]
fn no_document_points_outside_the_repository() {
    let mut docs = vec!["README.md".to_string(), "deploy/README.md".to_string()];
    for dir in ["docs", "config"] {
        for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap() {
            docs.push(format!(
                "{dir}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    for doc in &docs {
        let text = read(doc);
        for outside in ["../shared", "SPEC §", "SPEC.md", "STYLE.md"] {
            assert!(!text.contains(outside), "{doc} refers to {outside}");
        }
    }
}
