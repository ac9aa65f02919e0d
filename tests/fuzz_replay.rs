//! Replays every committed fuzz corpus file through its harness on the stable toolchain, so
//! `cargo test` covers the corpus without libFuzzer (DESIGN.md §2.7 "fuzz" row). A harness
//! panics on a bug; the file that made it panic is named in the failure.

use std::fs;
use std::path::Path;

use viprouter::fuzzing;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for f in &files {
        let data = fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| harness(&data)).is_err() {
            panic!("{target}: harness failed on {}", f.display());
        }
    }
}

#[test]
fn greeting() {
    replay("greeting", fuzzing::fuzz_greeting);
}

#[test]
fn frame_stream() {
    replay("frame_stream", fuzzing::fuzz_frame_stream);
}

#[test]
fn command_metadata() {
    replay("command_metadata", fuzzing::fuzz_command_metadata);
}

#[test]
fn vip_route() {
    replay("vip_route", fuzzing::fuzz_vip_route);
}

#[test]
fn session_curve() {
    replay("session_curve", fuzzing::fuzz_session_curve);
}

#[test]
fn session_plain() {
    replay("session_plain", fuzzing::fuzz_session_plain);
}

#[test]
fn modular_home() {
    replay("modular_home", fuzzing::fuzz_modular_home);
}

#[test]
fn json_scan() {
    replay("json_scan", fuzzing::fuzz_json_scan);
}

#[test]
fn auth_json() {
    replay("auth_json", fuzzing::fuzz_auth_json);
}

#[test]
fn decode_key() {
    replay("decode_key", fuzzing::fuzz_decode_key);
}

#[test]
fn links() {
    replay("links", fuzzing::fuzz_links);
}

#[test]
fn discovery() {
    replay("discovery", fuzzing::fuzz_discovery);
}

#[cfg(feature = "rabbitmq")]
#[test]
fn amqp_client() {
    replay("amqp_client", fuzzing::fuzz_amqp_client);
}
