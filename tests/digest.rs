//! procwarden's `input_digest` encoder against vectors made by real Go (`tests/go_digest`,
//! committed as `tests/digest_vectors.json`), and, where `go` is installed, the vectors
//! against a fresh run of that program.

use std::path::Path;
use std::process::Command;

use procwarden::api::digest::{DigestInput, GoTime, go_json, start_digest};
use serde_json::Value;

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn vectors_file() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/digest_vectors.json");
    serde_json::from_slice(&std::fs::read(path).expect("read vectors")).expect("vectors JSON")
}

#[test]
fn the_encoder_reproduces_every_go_vector() {
    let file = vectors_file();
    let vectors = file["vectors"].as_array().expect("vectors");
    assert!(vectors.len() >= 10, "too few vectors: {}", vectors.len());
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let command = unhex(v["command_hex"].as_str().unwrap());
        let workdir = unhex(v["workdir_hex"].as_str().unwrap());
        let env: Vec<(Vec<u8>, Vec<u8>)> = v["env_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    unhex(pair[0].as_str().unwrap()),
                    unhex(pair[1].as_str().unwrap()),
                )
            })
            .collect();
        let deadline = match v["deadline"].as_str().unwrap() {
            "" => None,
            text => Some(GoTime::parse_rfc3339(text).unwrap_or_else(|| panic!("{name}: {text}"))),
        };
        let input = DigestInput {
            command: &command,
            workdir: &workdir,
            // Reversed, so the encoder's own sorting is what puts them in Go's order.
            env: env
                .iter()
                .rev()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect(),
            background: v["background"].as_bool().unwrap(),
            deadline,
        };
        let expected_json = unhex(v["json_hex"].as_str().unwrap());
        let json = go_json(&input).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&json),
            String::from_utf8_lossy(&expected_json),
            "{name}: JSON differs"
        );
        assert_eq!(json, expected_json, "{name}: JSON bytes differ");
        assert_eq!(
            start_digest(&input),
            v["digest"].as_str().unwrap(),
            "{name}"
        );
    }
}

/// Regenerates the vectors with `go run` and compares them with the committed ones. Skipped
/// without `go` on the PATH, unless `PROCWARDEN_REQUIRE_GO` is set (CI sets it).
#[test]
fn the_committed_vectors_are_what_go_makes() {
    let required = std::env::var_os("PROCWARDEN_REQUIRE_GO").is_some();
    if Command::new("go").arg("version").output().is_err() {
        assert!(
            !required,
            "PROCWARDEN_REQUIRE_GO is set but `go` is not installed"
        );
        eprintln!("skipped: no `go` on the PATH");
        return;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    let out = Command::new("go")
        .arg("run")
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_digest"))
        .env("GOCACHE", &cache)
        .env("GOPATH", cache.join("path"))
        // Nothing to fetch: standard library only, and never a toolchain download.
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("go run");
    assert!(
        out.status.success(),
        "go run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh: Value = serde_json::from_slice(&out.stdout).expect("go output JSON");
    assert_eq!(
        fresh["vectors"],
        vectors_file()["vectors"],
        "tests/digest_vectors.json is stale: regenerate it with `cd tests/go_digest && go run . > ../digest_vectors.json`"
    );
}
