//! Unit tests of `credentials`: file parsing, garbage, the previous-entry rule, admission.

use super::*;
use crate::auth::keys::encode_key;
use crate::auth::{AuthMode, AuthRequest, Authenticator, Decision};
use crate::zmtp::mechanism::{Credentials, Mechanism};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::PathBuf;

fn pair(seed: u64) -> KeyPair {
    KeyPair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
}

/// A pair whose public key text starts with `-` (about 1 in 64 draws).
fn dash_pair() -> KeyPair {
    (0..10_000).map(pair).find(|p| encode_key(&p.public.0).starts_with('-')).unwrap()
}

fn file_text(identity: &str, p: &KeyPair) -> String {
    format!(
        "{{\"identity\": \"{identity}\", \"publickey\": \"{}\", \"secretkey\": \"{}\", \"domain\": \"\", \"address\": \"\"}}",
        encode_key(&p.public.0),
        encode_key(p.secret.as_bytes())
    )
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tmpdir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("viprouter-cred-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

#[test]
fn parses_modular_files_and_keeps_dash_keys() {
    let p = dash_pair();
    let c = parse_credential(file_text("agent.a", &p).as_bytes()).unwrap();
    assert_eq!(c, Credential { identity: "agent.a".into(), public: p.public, has_secret: true });
    let public_only = format!("{{\"identity\": \"remote\", \"publickey\": \"{}\"}}", encode_key(&p.public.0));
    assert!(!parse_credential(public_only.as_bytes()).unwrap().has_secret);

    let d = tmpdir("dash");
    let path = d.0.join("platform.json");
    let text = file_text("platform", &p);
    std::fs::write(&path, &text).unwrap();
    assert_eq!(platform_keys(&path).unwrap().public, p.public, "a '-' key is a valid modular key");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "platform.json is never rewritten");
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let p = pair(1);
    let good = file_text("x", &p);
    let cases: Vec<(Vec<u8>, KeyFileError)> = vec![
        (b"".to_vec(), KeyFileError::Json(Some(crate::json::JsonErrorKind::UnexpectedEnd))),
        (b"\xff\xfe".to_vec(), KeyFileError::Json(None)),
        (b"[1]".to_vec(), KeyFileError::NotAnObject),
        (b"{\"publickey\": \"x\"}".to_vec(), KeyFileError::MissingKey("identity")),
        (b"{\"identity\": 7, \"publickey\": \"x\"}".to_vec(), KeyFileError::MissingKey("identity")),
        (b"{\"identity\": \"x\"}".to_vec(), KeyFileError::MissingKey("publickey")),
        (
            b"{\"identity\": \"x\", \"publickey\": \"abc\"}".to_vec(),
            KeyFileError::BadKey("publickey", crate::auth::KeyError::UnknownEncoding { len: 3 }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_credential(&text), Err(want), "{}", String::from_utf8_lossy(&text));
    }
    // Every prefix and a byte flip at every position: an error or a credential, never a panic.
    for n in 0..good.len() {
        let _ = parse_credential(&good.as_bytes()[..n]);
        let mut b = good.clone().into_bytes();
        b[n] ^= 0x55;
        let _ = parse_credential(&b);
    }
    // A platform.json without a usable pair is an error (and is left alone).
    let d = tmpdir("badplat");
    let path = d.0.join("platform.json");
    std::fs::write(&path, format!("{{\"identity\": \"platform\", \"publickey\": \"{}\"}}", encode_key(&p.public.0)))
        .unwrap();
    assert_eq!(platform_keys(&path).unwrap_err(), KeyFileError::MissingKey("secretkey"));
    let other = pair(2);
    let mismatched = format!(
        "{{\"identity\": \"platform\", \"publickey\": \"{}\", \"secretkey\": \"{}\"}}",
        encode_key(&p.public.0),
        encode_key(other.secret.as_bytes())
    );
    std::fs::write(&path, mismatched).unwrap();
    assert_eq!(platform_keys(&path).unwrap_err(), KeyFileError::PublicMismatch);
    assert_eq!(platform_keys(&d.0.join("missing.json")).unwrap_err(), KeyFileError::Io(io::ErrorKind::NotFound));
}

#[test]
fn a_bad_file_keeps_its_previous_entry_and_the_others_load() {
    let d = tmpdir("reload");
    let (a, b) = (pair(3), pair(4));
    std::fs::write(d.0.join("agent.a.json"), file_text("agent.a", &a)).unwrap();
    std::fs::write(d.0.join("agent.b.json"), file_text("agent.b", &b)).unwrap();
    std::fs::write(d.0.join("notes.txt"), "ignored").unwrap();
    std::fs::write(d.0.join(".hidden.json"), "ignored").unwrap();
    let (first, report) = CredentialStore::load(&d.0, None).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(report, LoadReport::default());

    // agent.a caught half-written, a new agent.c broken from the start, agent.d being created.
    std::fs::write(d.0.join("agent.a.json"), "{\"identity\": \"agent.a\", \"publ").unwrap();
    std::fs::write(d.0.join("agent.c.json"), "{").unwrap();
    std::fs::write(d.0.join("agent.d.json"), "").unwrap();
    let (second, report) = CredentialStore::load(&d.0, Some(&first)).unwrap();
    assert_eq!(second.iter().map(|c| c.identity.as_str()).collect::<Vec<_>>(), ["agent.a", "agent.b"]);
    assert_eq!(report.problems.len(), 2);
    assert!(report.problems[0].kept_previous && report.problems[0].file == "agent.a.json");
    assert!(!report.problems[1].kept_previous && report.problems[1].file == "agent.c.json");

    // Without a previous store, a bad file is simply not admitted.
    let (fresh, _) = CredentialStore::load(&d.0, None).unwrap();
    assert_eq!(fresh.iter().map(|c| c.identity.as_str()).collect::<Vec<_>>(), ["agent.b"]);
    assert!(CredentialStore::load(&d.0.join("nope"), None).is_err());
}

#[test]
fn admission_is_by_key_and_bound_to_the_identity() {
    let d = tmpdir("admit");
    let (a, dup, remote) = (pair(5), pair(6), pair(7));
    std::fs::write(d.0.join("agent.a.json"), file_text("agent.a", &a)).unwrap();
    std::fs::write(d.0.join("x1.json"), file_text("x1", &dup)).unwrap();
    std::fs::write(d.0.join("x2.json"), file_text("x2", &dup)).unwrap();
    std::fs::write(
        d.0.join("remote.json"),
        format!("{{\"identity\": \"remote\", \"publickey\": \"{}\"}}", encode_key(&remote.public.0)),
    )
    .unwrap();
    let (store, report) = CredentialStore::load(&d.0, None).unwrap();
    assert_eq!(report.duplicate_keys, vec![("x2".to_owned(), "x1".to_owned())]);
    let mut auth = Authenticator::new(store.auth_store(), AuthMode::Enforced);
    auth.set_identity_binding(true);
    let decide = |auth: &Authenticator, key: &KeyPair, identity: &[u8]| -> Option<String> {
        let req = AuthRequest {
            domain: b"vip",
            address: "127.0.0.1",
            mechanism: Mechanism::Curve,
            credentials: Credentials::Curve(&key.public.0),
        };
        match auth.decide(&req) {
            Decision::Allow { user_id, entry: Some(e) } if auth.check_identity(e, identity) => {
                Some(user_id.to_string())
            }
            _ => None,
        }
    };
    assert_eq!(decide(&auth, &a, b"agent.a").as_deref(), Some("agent.a"));
    assert_eq!(decide(&auth, &a, b"platform.control"), None, "a key may not take another identity");
    assert_eq!(decide(&auth, &dup, b"x2").as_deref(), Some("x2"), "the later file wins a shared key");
    assert_eq!(decide(&auth, &dup, b"x1"), None);
    assert_eq!(decide(&auth, &remote, b"remote"), None, "public-only files are not admitted");
    assert_eq!(decide(&auth, &pair(8), b"agent.a"), None, "unknown key");
}

#[test]
fn at_most_max_files_are_read() {
    let d = tmpdir("many");
    let p = pair(9);
    let text = file_text("same", &p);
    for i in 0..=MAX_CREDENTIAL_FILES {
        std::fs::write(d.0.join(format!("a{i:05}.json")), &text).unwrap();
    }
    let (store, report) = CredentialStore::load(&d.0, None).unwrap();
    assert_eq!((store.len(), report.over_limit), (MAX_CREDENTIAL_FILES, 1));
    let d2 = tmpdir("big");
    std::fs::write(d2.0.join("zz.json"), vec![b' '; (1 << 20) + 1]).unwrap();
    let (_, report) = CredentialStore::load(&d2.0, None).unwrap();
    assert_eq!(report.problems.last().map(|p| (p.file.as_str(), p.error)), Some(("zz.json", KeyFileError::TooLarge)));
}
