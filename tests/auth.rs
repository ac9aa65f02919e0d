//! `src/auth`: key text forms (VIP.md §9.2), key files (§9.3), `auth.json` (§9.5), the decision
//! (§9.6), auto entries (§9.7) and identity binding (§9.8). Fixtures: `tests/data/auth/`.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use viprouter::auth::keystore::{self, KeyFileError, KeystoreOrigin};
use viprouter::auth::{
    AuthFileErrorKind, AuthMode, AuthRequest, AuthStore, Authenticator, Credentials, Decision, DenyReason, EntrySource,
    KeyError, KeyText, Location, MAX_AUTH_ENTRIES, SkipReason, UserId, auto_entries, decode_key, encode_key,
};
use viprouter::zmtp::mechanism::Mechanism;
use viprouter::zmtp::mechanism::curve::keys::{KeyPair, PublicKey, SecretKey};

// ---------------------------------------------------------------------------------------------
// Helpers

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(42)
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/auth").join(name)
}

fn load(name: &str) -> AuthStore {
    AuthStore::load(&data(name), &mut rng()).unwrap()
}

fn auth(name: &str) -> Authenticator {
    Authenticator::new(load(name), AuthMode::Enforced)
}

fn key(text: &str) -> [u8; 32] {
    decode_key(text).unwrap()
}

fn curve<'a>(domain: &'a str, address: &'a str, k: &'a [u8; 32]) -> AuthRequest<'a> {
    AuthRequest { domain: domain.as_bytes(), address, mechanism: Mechanism::Curve, credentials: Credentials::Curve(k) }
}

fn null<'a>(domain: &'a str, address: &'a str) -> AuthRequest<'a> {
    AuthRequest { domain: domain.as_bytes(), address, mechanism: Mechanism::Null, credentials: Credentials::Null }
}

/// The user id if allowed, else the deny reason.
fn outcome(a: &Authenticator, req: &AuthRequest<'_>) -> Result<String, DenyReason> {
    match a.decide(req) {
        Decision::Allow { user_id, .. } => Ok(user_id.to_string()),
        Decision::Deny(r) => Err(r),
    }
}

const LISTENER: &str = "xMBdQKjD68DrDE7c_11OmWSl-7XiSGBxGpKqFmaL-9c";
const REMOTE: &str = "txGZ69Bws2vqtzF5IMLC8dd3340F5VJ9hFj9pXyxeno";
const REGEX_FIRST: &str = "176uT6rWIxJBKI4riMpGbIRc4Dpxdxs9OwqVn_WvOtQ";
const NOUSER: &str = "fZzN3g8kUsj4qzyemndSyj82dW3quVLoPn1EgUY2Re4";
const EMPTY_UID: &str = "sQPvDc-ASqQu_sz-3LTZx9sUkCt6wrUBod600wx7MMI";
const FORWARDER: &str = "tLPoC1xsLjXopsmiQ3Vo3fTrT3Ob-thCcUEmGofLGGg";
const PADDED: &str = "oRbJ7UbWIHc0pDMX0w_Yj1KshjTDfZBLv05B2GX5BHU";
const DENIED: &str = "YtbCMwA29kvPcblXkXQ9bHfDjg18jL7cvFJcd8V88O4";
const UNKNOWN: &str = "u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg";

// ---------------------------------------------------------------------------------------------
// Key text forms (VIP.md §9.2, ZMTP.md §11.3, §12.1). Vectors from Python's base64/binascii.

/// libzmq test key C in every form `decode_key` accepts.
#[test]
fn decode_key_every_form_client_key() {
    let raw = hex::decode("bb88471d65e2659b30c55a5321cebb5aab2b70a398645c26dca2b2fcb43fc518").unwrap();
    let forms = [
        "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
        "u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg",
        "u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg=",
        "WW5lQCR3LXZvPGZWdmldYTxOWTZUMWVkOk0kZkNHKltJYUxWe2hJRA",
        "WW5lQCR3LXZvPGZWdmldYTxOWTZUMWVkOk0kZkNHKltJYUxWe2hJRA==",
        "bb88471d65e2659b30c55a5321cebb5aab2b70a398645c26dca2b2fcb43fc518",
        "BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518",
        "596e654024772d766f3c665676695d613c4e5936543165643a4d246643472a5b49614c567b684944",
    ];
    for f in forms {
        assert_eq!(decode_key(f).unwrap().to_vec(), raw, "form of length {}", f.len());
    }
    assert_eq!(encode_key(&raw.try_into().unwrap()), "u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg");
}

/// libzmq test key S: its base64-of-Z85 forms use `-` and `_` (URL-safe alphabet).
#[test]
fn decode_key_every_form_server_key() {
    let raw: [u8; 32] =
        hex::decode("54fcba24e93249969316fb617c872bb0c1d1ff14800427c594cbfacf1bc2d652").unwrap().try_into().unwrap();
    assert_eq!(encode_key(&raw), "VPy6JOkySZaTFvthfIcrsMHR_xSABCfFlMv6zxvC1lI");
    assert_eq!(KeyText::new(&raw).as_str(), encode_key(&raw));
    for f in [
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        "VPy6JOkySZaTFvthfIcrsMHR_xSABCfFlMv6zxvC1lI",
        "VPy6JOkySZaTFvthfIcrsMHR_xSABCfFlMv6zxvC1lI=",
        "cnE6ck0-fVU_QExuczQ3RTEla1Iub0BuJUZjbW1zTC9Ae0g4XXlmNw",
        "cnE6ck0-fVU_QExuczQ3RTEla1Iub0BuJUZjbW1zTC9Ae0g4XXlmNw==",
        "54fcba24e93249969316fb617c872bb0c1d1ff14800427c594cbfacf1bc2d652",
        &hex::encode("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"),
    ] {
        assert_eq!(decode_key(f).unwrap(), raw, "form of length {}", f.len());
    }
}

#[test]
fn decode_key_errors() {
    assert_eq!(decode_key("short"), Err(KeyError::UnknownEncoding { len: 5 }));
    assert_eq!(decode_key("u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy+LQ/xRg"), Err(KeyError::BadBase64));
    assert!(matches!(decode_key("~~~~~w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"), Err(KeyError::BadZ85(_))));
    assert_eq!(decode_key("zz".repeat(32)), Err(KeyError::BadHex));
    // 80 hex chars that decode to something that is not Z85.
    assert!(matches!(decode_key("7e".repeat(40)), Err(KeyError::BadZ85(_))));
}

// ---------------------------------------------------------------------------------------------
// Keystore (VIP.md §9.3)

#[test]
fn keystore_created_on_first_start_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = keystore::platform_keystore_path(dir.path());
    let ks = keystore::load_or_create(&path, &mut rng()).unwrap();
    assert_eq!(ks.origin, KeystoreOrigin::Created);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    let public = encode_key(&ks.keys.public.0);
    let secret = encode_key(ks.keys.secret.as_bytes());
    assert_eq!(text, format!("{{\n    \"public\": \"{public}\",\n    \"secret\": \"{secret}\"\n}}"));
    assert!(!public.starts_with('-') && !secret.starts_with('-'));
    // No temporary file left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn keystore_loaded_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore");
    let first = keystore::load_or_create(&path, &mut rng()).unwrap();
    let again = keystore::load_or_create(&path, &mut ChaCha20Rng::seed_from_u64(7)).unwrap();
    assert_eq!(again.origin, KeystoreOrigin::Loaded);
    assert_eq!(again.keys.public, first.keys.public);
    assert_eq!(keystore::load(&path).unwrap().public, first.keys.public);
}

#[test]
fn keystore_any_accepted_key_form_and_mode_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore");
    // libzmq's server pair written in Z85, mode 0644.
    fs::write(
        &path,
        r#"{"public": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
            "secret": "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"}"#,
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let ks = keystore::load_or_create(&path, &mut rng()).unwrap();
    assert_eq!(ks.origin, KeystoreOrigin::Loaded);
    assert_eq!(encode_key(&ks.keys.public.0), "VPy6JOkySZaTFvthfIcrsMHR_xSABCfFlMv6zxvC1lI");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

/// A secret whose text starts with `-` (first byte 0xF8..0xFB).
fn dash_pair() -> KeyPair {
    let mut s = [0x11u8; 32];
    s[0] = 0xf8;
    KeyPair::from_secret(SecretKey::from_bytes(s))
}

#[test]
fn keystore_dash_key_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore");
    let old = dash_pair();
    assert!(encode_key(old.secret.as_bytes()).starts_with('-'));
    fs::write(&path, keystore::keystore_json(&old)).unwrap();
    let ks = keystore::load_or_create(&path, &mut rng()).unwrap();
    assert_eq!(ks.origin, KeystoreOrigin::Regenerated);
    assert_ne!(ks.keys.public, old.public);
    assert_eq!(keystore::load(&path).unwrap().public, ks.keys.public);
}

/// An RNG that first yields 32 bytes of 0xF8 (a `-` secret), then ChaCha.
struct DashFirst(bool, ChaCha20Rng);
impl RngCore for DashFirst {
    fn next_u32(&mut self) -> u32 {
        self.1.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.1.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.0 {
            self.1.fill_bytes(dest)
        } else {
            self.0 = true;
            dest.fill(0xf8)
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for DashFirst {}

#[test]
fn generated_pair_redrawn_while_text_starts_with_dash() {
    let pair = keystore::generate_pair(&mut DashFirst(false, rng()));
    assert!(!encode_key(pair.secret.as_bytes()).starts_with('-'));
    assert_ne!(pair.secret.as_bytes(), &[0xf8; 32]);
}

#[test]
fn keystore_mismatch_or_corrupt_is_error_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore");
    let a = KeyPair::generate(&mut rng());
    let b = KeyPair::generate(&mut ChaCha20Rng::seed_from_u64(9));
    let text =
        format!("{{\"public\": \"{}\", \"secret\": \"{}\"}}", encode_key(&a.public.0), encode_key(b.secret.as_bytes()));
    fs::write(&path, &text).unwrap();
    assert_eq!(keystore::load_or_create(&path, &mut rng()).unwrap_err(), KeyFileError::PublicMismatch);
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    fs::write(&path, "{\"public\": ").unwrap();
    assert!(matches!(keystore::load_or_create(&path, &mut rng()), Err(KeyFileError::Json(Some(_)))));
    fs::write(&path, "{\"public\": \"x\"}").unwrap();
    assert_eq!(keystore::load_or_create(&path, &mut rng()).unwrap_err(), KeyFileError::MissingKey("secret"));
    assert_eq!(fs::read_to_string(&path).unwrap(), "{\"public\": \"x\"}");
}

// ---------------------------------------------------------------------------------------------
// known_hosts (VIP.md §9.3)

#[test]
fn known_hosts_merge_keeps_other_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = keystore::known_hosts_path(dir.path());
    let old = PublicKey(key(REMOTE));
    let mine = PublicKey(key(LISTENER));
    fs::write(
        &path,
        format!(
            "{{\"10.0.0.5:22916\": \"{REMOTE}\", \"@\": \"{REMOTE}\", \"odd\": {{\"x\": [1, 2]}}, \"caf\\u00e9\": \"k\"}}"
        ),
    )
    .unwrap();
    let tcp = keystore::known_hosts_key("tcp://127.0.0.1:22916?serverkey=abc");
    let ipc = keystore::known_hosts_key("ipc://@/home/v/.volttron/run/vip.socket");
    assert_eq!((tcp, ipc), ("127.0.0.1:22916", "@"));
    assert!(keystore::update_known_hosts(&path, &[(ipc, &mine), (tcp, &mine)]).unwrap());
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!(
            "{{\n    \"10.0.0.5:22916\": \"{REMOTE}\",\n    \"@\": \"{LISTENER}\",\n    \
             \"odd\": {{\"x\": [1, 2]}},\n    \"caf\\u00e9\": \"k\",\n    \
             \"127.0.0.1:22916\": \"{LISTENER}\"\n}}"
        )
    );
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    assert_eq!(keystore::known_host(&path, "@").unwrap(), Some(mine));
    assert_eq!(keystore::known_host(&path, "10.0.0.5:22916").unwrap(), Some(old));
    assert_eq!(keystore::known_host(&path, "nowhere").unwrap(), None);
    // Same content again: no write.
    assert!(!keystore::update_known_hosts(&path, &[(ipc, &mine)]).unwrap());
}

#[test]
fn known_hosts_created_and_invalid_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let k = PublicKey(key(LISTENER));
    assert!(keystore::update_known_hosts(&path, &[("@", &k)]).unwrap());
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{{\n    \"@\": \"{LISTENER}\"\n}}"));
    fs::write(&path, "[\"not an object\"]").unwrap();
    assert_eq!(keystore::update_known_hosts(&path, &[("@", &k)]).unwrap_err(), KeyFileError::NotAnObject);
    assert_eq!(fs::read_to_string(&path).unwrap(), "[\"not an object\"]");
}

// ---------------------------------------------------------------------------------------------
// auth.json loading (VIP.md §9.5)

#[test]
fn platform_file_loads_every_entry() {
    let s = load("platform.json");
    assert_eq!(s.len(), 8);
    assert!(s.skipped().is_empty());
    let ids: Vec<_> = s.entries().map(|e| e.user_id()).collect();
    assert_eq!(
        ids,
        [
            "platform",
            "control.connection",
            "config.store",
            "platform.auth",
            "control",
            "keydiscovery",
            "platform_web",
            "listener"
        ]
    );
    let listener = s.entries().last().unwrap();
    assert_eq!(listener.source(), EntrySource::File { index: 7 });
    assert_eq!(listener.identity(), Some("listener"));
    assert_eq!(listener.comments(), Some("Added by vctl install"));
    assert_eq!(s.entries().next().unwrap().identity(), None);
}

#[test]
fn comment_laden_file_loads() {
    let a = auth("comments.json");
    assert_eq!(a.store().len(), 1);
    let e = a.store().entries().next().unwrap();
    assert_eq!(e.comments(), Some("not a comment: # hash, // slashes, /* star */ and an escaped \" quote # here"));
    let k = key(LISTENER);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Ok("listener".into()));
}

#[test]
fn invalid_entries_skipped_rest_loads() {
    let s = load("skipped.json");
    let reasons: Vec<_> = s.skipped().iter().map(|k| (k.index, k.reason)).collect();
    assert_eq!(
        reasons,
        [
            (0, SkipReason::NotAnObject),
            (1, SkipReason::BadMechanism),
            (2, SkipReason::MissingCredentials),
            (3, SkipReason::BadCurveKey),
            (4, SkipReason::BadRegex { field: "credentials" }),
            (5, SkipReason::BadFieldType { field: "address" }),
            (6, SkipReason::BadCapability),
        ]
    );
    assert_eq!(s.len(), 1);
    assert_eq!(s.entries().next().unwrap().user_id(), "ok");
    assert_eq!(s.skipped()[3].to_string(), "allow[3] skipped: credentials: not a 43-character CURVE key or a /regex/");
}

#[test]
fn empty_and_missing_file_are_empty_stores() {
    assert!(AuthStore::parse(b"", &mut rng()).unwrap().is_empty());
    assert!(AuthStore::parse(b"# only a comment\n", &mut rng()).unwrap().is_empty());
    assert!(AuthStore::parse(b"{}", &mut rng()).unwrap().is_empty());
    assert!(AuthStore::load(&data("no-such-file.json"), &mut rng()).unwrap().is_empty());
}

#[test]
fn malformed_json_error_has_line_and_column() {
    let e = AuthStore::load(&data("bad_json.json"), &mut rng()).unwrap_err();
    // Python: "Expecting property name enclosed in double quotes: line 4 column 67".
    assert!(matches!(e.kind, AuthFileErrorKind::Json(_)));
    match e.location {
        Location::Text { line, column, .. } => assert_eq!((line, column), (4, 67)),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("auth.json: line 4, column 67: invalid JSON"));
}

#[test]
fn malformed_structure_errors_have_paths() {
    let cases = [
        ("bad_allow_type.json", "allow", AuthFileErrorKind::WrongType { expected: "an array" }),
        ("bad_version.json", "version.major", AuthFileErrorKind::UnsupportedVersion),
        ("bad_roles.json", "roles.admin", AuthFileErrorKind::WrongType { expected: "an array of strings" }),
        ("duplicate.json", "allow[2]", AuthFileErrorKind::DuplicateCredentials { first: 0 }),
    ];
    for (file, path, kind) in cases {
        let e = AuthStore::load(&data(file), &mut rng()).unwrap_err();
        assert_eq!(e.location, Location::Path(path.into()), "{file}");
        assert_eq!(e.kind, kind, "{file}");
    }
    let e = AuthStore::parse(b"[1]", &mut rng()).unwrap_err();
    assert_eq!(e.location, Location::File);
    let e = AuthStore::parse(b"{\"allow\": [\"\xff\"]}", &mut rng()).unwrap_err();
    assert_eq!(e.kind, AuthFileErrorKind::NotUtf8);
}

/// A failed reload returns an error, never half a store: the authenticator keeps the old one.
#[test]
fn failed_reload_keeps_previous_store() {
    let mut a = auth("platform.json");
    let k = key(LISTENER);
    assert_eq!(outcome(&a, &curve("vip", "1.2.3.4", &k)), Ok("listener".into()));
    let reload = AuthStore::load(&data("duplicate.json"), &mut rng());
    assert!(reload.is_err());
    if let Ok(s) = reload {
        a.replace_store(s);
    }
    assert_eq!(outcome(&a, &curve("vip", "1.2.3.4", &k)), Ok("listener".into()));
}

fn many_entries(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            let mut raw = [0u8; 32];
            raw[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            format!("{{\"credentials\": \"{}\", \"user_id\": \"agent{i}\"}}", encode_key(&raw))
        })
        .collect();
    format!("{{\"allow\": [{}], \"version\": {{\"major\": 1, \"minor\": 4}}}}", entries.join(", "))
}

#[test]
fn over_limit_entries_refuse_the_file() {
    let full = AuthStore::parse(many_entries(MAX_AUTH_ENTRIES).as_bytes(), &mut rng()).unwrap();
    assert_eq!(full.len(), MAX_AUTH_ENTRIES);
    let e = AuthStore::parse(many_entries(MAX_AUTH_ENTRIES + 1).as_bytes(), &mut rng()).unwrap_err();
    assert_eq!(e.location, Location::Path("allow".into()));
    assert_eq!(e.kind, AuthFileErrorKind::TooManyEntries { count: MAX_AUTH_ENTRIES + 1, max: MAX_AUTH_ENTRIES });
    // upsert into a full store fails and leaves it unchanged.
    let mut full = full;
    let kp = KeyPair::generate(&mut rng());
    let autos = auto_entries(&kp.public, &[]);
    assert!(full.upsert(&autos[0]).is_err());
    assert_eq!(full.len(), MAX_AUTH_ENTRIES);
}

// ---------------------------------------------------------------------------------------------
// The decision (VIP.md §9.6): one test per rule.

#[test]
fn rule_allow_auth_false_admits_everyone() {
    let a = Authenticator::new(AuthStore::empty(), AuthMode::Open);
    let k = key(UNKNOWN);
    for req in [null("", "10.9.8.7"), curve("vip", "1.1.1.1", &k)] {
        assert_eq!(a.decide(&req), Decision::Allow { user_id: UserId::Anonymous, entry: None });
    }
}

#[test]
fn rule_curve_key_compared_in_43_char_form() {
    let a = auth("platform.json");
    let k = key("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Err(DenyReason::UnknownKey));
    let k = key("0pT8zgzIhYeEMJnYXdgFru8bCaY7DbHdPk3GKjQ8HbU");
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Ok("platform".into()));
    // ipc address form.
    assert_eq!(outcome(&a, &curve("vip", "localhost:1000:1000:12197", &k)), Ok("platform".into()));
}

#[test]
fn rule_curve_credentials_must_be_43_chars() {
    // `"padded"` is written in the 44-char form: skipped at load, so the key is unknown.
    let a = auth("rules.json");
    assert!(a.store().skipped().iter().any(|s| s.index == 8 && s.reason == SkipReason::BadCurveKey));
    let doc = format!("{{\"allow\": [{{\"credentials\": \"{PADDED}=\", \"user_id\": \"padded\"}}]}}");
    let a = Authenticator::new(AuthStore::parse(doc.as_bytes(), &mut rng()).unwrap(), AuthMode::Enforced);
    assert!(a.store().is_empty());
    let k = key(PADDED);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Err(DenyReason::UnknownKey));
}

#[test]
fn rule_disabled_entries_ignored() {
    let a = auth("disabled.json");
    assert_eq!(a.store().disabled(), 1);
    let k = key(LISTENER);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Err(DenyReason::UnknownKey));
    let k = key(REMOTE);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Ok("remote".into()));
}

#[test]
fn rule_deny_entries_play_no_role() {
    let a = auth("disabled.json");
    let k = key(DENIED);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Err(DenyReason::UnknownKey));
}

#[test]
fn rule_null_domain_and_address_are_wildcards() {
    let a = auth("platform.json");
    let k = key(LISTENER);
    for (domain, address) in [("vip", "127.0.0.1"), ("", "::1"), ("other", "localhost:0:0:1")] {
        assert_eq!(outcome(&a, &curve(domain, address, &k)), Ok("listener".into()));
    }
}

#[test]
fn rule_domain_string_must_equal_or_regex_match() {
    let a = auth("rules.json");
    let k = key(FORWARDER);
    assert_eq!(outcome(&a, &curve("vip", "10.1.2.3", &k)), Ok("forwarder".into()));
    // "/vip-.*/" regex domain of the second forwarder entry.
    assert_eq!(outcome(&a, &curve("vip-ext", "10.1.2.3", &k)), Ok("forwarder2".into()));
    assert_eq!(outcome(&a, &curve("other", "10.1.2.3", &k)), Err(DenyReason::KeyNotAllowedHere));
    // Non-UTF-8 domain matches only wildcard domains.
    let req = AuthRequest { domain: b"\xff", ..curve("vip", "10.1.2.3", &k) };
    assert_eq!(outcome(&a, &req), Err(DenyReason::KeyNotAllowedHere));
}

#[test]
fn rule_address_exact_list_and_regex() {
    let a = auth("regex.json");
    let k = key(REMOTE);
    assert_eq!(outcome(&a, &curve("vip", "10.0.0.7", &k)), Ok("remote".into()));
    assert_eq!(outcome(&a, &curve("vip", "10.0.1.200", &k)), Ok("remote".into()));
    assert_eq!(outcome(&a, &curve("vip", "10.0.0.8", &k)), Err(DenyReason::KeyNotAllowedHere));
}

#[test]
fn rule_regex_matches_whole_value() {
    let a = auth("regex.json");
    let k = key(UNKNOWN);
    assert_eq!(outcome(&a, &curve("vip", "192.168.1.20", &k)), Ok("lan-any".into()));
    // Not anchored at the start / end → refused ("/.*/" admits the key elsewhere).
    for address in ["10.192.168.1.5", "192.168.10.5"] {
        assert_eq!(outcome(&a, &curve("vip", address, &k)), Err(DenyReason::KeyNotAllowedHere));
    }
    // Top-level alternation is still whole-value (Python would admit 10.1.2.30 here).
    let r = auth("rules.json");
    let f = key(FORWARDER);
    assert_eq!(outcome(&r, &curve("vip-x", "10.1.2.4", &f)), Ok("forwarder2".into()));
    assert_eq!(outcome(&r, &curve("vip-x", "10.1.2.30", &f)), Err(DenyReason::KeyNotAllowedHere));
}

#[test]
fn rule_mechanism_must_equal() {
    let a = auth("rules.json");
    // The NULL entry does not admit CURVE, and CURVE entries do not admit NULL.
    assert_eq!(outcome(&a, &null("vip", "127.0.0.1")), Err(DenyReason::NoNullEntry));
    // The NULL entry's address matches, but it does not admit this CURVE key.
    let k = key(REGEX_FIRST);
    assert_eq!(outcome(&a, &curve("vip", "localhost:1000:1000:5", &k)), Err(DenyReason::KeyNotAllowedHere));
}

#[test]
fn rule_null_mechanism_ignores_credentials() {
    let a = auth("rules.json");
    assert_eq!(outcome(&a, &null("vip", "localhost:1000:1000:4242")), Ok("null-ipc".into()));
}

#[test]
fn rule_exact_credentials_tried_before_regex() {
    // rules.json lists a "/.*/" entry for 127.0.0.2 before the exact entry of this key.
    let a = auth("rules.json");
    let k = key(REGEX_FIRST);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.2", &k)), Ok("exact".into()));
    let other = key(UNKNOWN);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.2", &other)), Ok("regex-first".into()));
}

#[test]
fn rule_regex_entries_in_file_order() {
    // Both "/.*/" (regex-third) and "/z.*/" (regex-z) match this key at 127.0.0.9: file order.
    let a = auth("rules.json");
    let mut raw = key(UNKNOWN);
    raw[0] = 0xcc; // text starts with 'z'
    assert!(encode_key(&raw).starts_with('z'));
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.9", &raw)), Ok("regex-third".into()));
}

#[test]
fn rule_missing_user_id_is_a_fresh_uuid4() {
    let k = key(NOUSER);
    let one = outcome(&auth("rules.json"), &curve("vip", "1.2.3.4", &k)).unwrap();
    let other_load = Authenticator::new(
        AuthStore::load(&data("rules.json"), &mut ChaCha20Rng::seed_from_u64(99)).unwrap(),
        AuthMode::Enforced,
    );
    let two = outcome(&other_load, &curve("vip", "1.2.3.4", &k)).unwrap();
    assert_eq!(one.len(), 36);
    assert_eq!(&one[14..15], "4");
    assert_ne!(one, two);
}

#[test]
fn rule_empty_user_id_gives_dump_user_form() {
    let a = auth("rules.json");
    let k = key(EMPTY_UID);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Ok(format!("vip,127.0.0.1,CURVE,{EMPTY_UID}")));
    // `,` and `\` are backslash-escaped as VOLTTRON's dump_user does.
    let composed = UserId::Composed { domain: b"a,b", address: "c\\d", mechanism: Mechanism::Null, key: None };
    assert_eq!(composed.to_string(), "a\\,b,c\\\\d,NULL");
}

#[test]
fn rule_plain_matches_user_colon_password() {
    let a = auth("rules.json");
    assert!(a.store().entries().any(|e| e.user_id() == "plain"));
    let req = |user: &'static [u8], password: &'static [u8]| AuthRequest {
        domain: b"vip",
        address: "127.0.0.1",
        mechanism: Mechanism::Plain,
        credentials: Credentials::Plain { user, password },
    };
    assert_eq!(outcome(&a, &req(b"admin", b"secret")), Ok("plain".to_string()));
    assert_eq!(outcome(&a, &req(b"admin", b"wrong")), Err(DenyReason::UnknownKey));
    assert_eq!(outcome(&a, &req(b"secret", b"")), Err(DenyReason::UnknownKey));
    assert_eq!(outcome(&a, &req(b"\xff", b"x")), Err(DenyReason::PlainUnsupported));
}

#[test]
fn rule_unknown_key_refused() {
    let a = auth("platform.json");
    let k = key(UNKNOWN);
    assert_eq!(outcome(&a, &curve("vip", "127.0.0.1", &k)), Err(DenyReason::UnknownKey));
    assert_eq!(DenyReason::UnknownKey.to_string(), "CURVE key not in any enabled allow entry of auth.json");
}

#[test]
fn rule_local_uid_branch_off_by_default() {
    let mut a = Authenticator::new(AuthStore::empty(), AuthMode::Enforced);
    let req = null("vip", "localhost:1000:1000:321");
    assert_eq!(outcome(&a, &req), Err(DenyReason::NoNullEntry));
    a.set_local_uid(Some(1000));
    assert_eq!(outcome(&a, &req), Ok("vip,localhost:1000:1000:321,NULL".into()));
    assert_eq!(outcome(&a, &null("vip", "localhost:1001:1000:321")), Err(DenyReason::NoNullEntry));
}

#[test]
fn rule_credentials_must_fit_mechanism() {
    let a = auth("platform.json");
    let req = AuthRequest { mechanism: Mechanism::Curve, ..null("vip", "127.0.0.1") };
    assert_eq!(outcome(&a, &req), Err(DenyReason::MalformedRequest));
}

// ---------------------------------------------------------------------------------------------
// Capabilities (VIP.md §7.9), auto entries (§9.7), identity binding (§9.8)

#[test]
fn capabilities_by_user_id_with_roles_and_groups() {
    let a = auth("rules.json");
    let caps = a.capabilities(b"listener").unwrap();
    let names: Vec<_> = caps.iter().collect();
    assert_eq!(names, ["edit_config_store", "read_x", "read_config", "restart_agents"]);
    assert!(caps.contains(b"restart_agents"));
    assert!(!caps.contains(b"allow_auth_modifications"));
    assert!(a.capabilities(b"nobody").is_none());
    let p = auth("platform.json");
    assert!(p.capabilities(b"keydiscovery").unwrap().is_empty());
    assert!(p.capabilities(b"config.store").unwrap().contains(b"sync_agent_config"));
}

#[test]
fn auto_entries_match_table_and_upsert() {
    let platform = KeyPair::generate(&mut rng()).public;
    let cs = PublicKey(key("8wcTKvkQa3Fj9IB6QdPF_NjbECTzCi_TU6DqEQfAEh4"));
    let newcomer = KeyPair::generate(&mut ChaCha20Rng::seed_from_u64(5)).public;
    let autos = auto_entries(&platform, &[("config.store", cs), ("agent.x", newcomer)]);
    assert_eq!(autos.len(), 3);
    assert_eq!(autos[0].user_id, "platform");
    assert_eq!(autos[0].identity, None);
    assert_eq!(
        autos[0].to_json(),
        format!(
            "{{\"domain\": null, \"address\": null, \"mechanism\": \"CURVE\", \"credentials\": \"{}\", \
             \"groups\": [], \"roles\": [], \"capabilities\": {{\"edit_config_store\": \
             {{\"identity\": \"/.*/\"}}}}, \"rpc_method_authorizations\": {{}}, \"comments\": \
             \"Automatically added by platform on start\", \"user_id\": \"platform\", \
             \"identity\": null, \"enabled\": true}}",
            encode_key(&platform.0)
        )
    );
    // The JSON reads back as an entry with the same outcome.
    let doc = format!("{{\"allow\": [{}]}}", autos[2].to_json());
    let back = Authenticator::new(AuthStore::parse(doc.as_bytes(), &mut rng()).unwrap(), AuthMode::Enforced);
    assert_eq!(outcome(&back, &curve("vip", "::1", &newcomer.0)), Ok("agent.x".into()));
    assert!(back.capabilities(b"agent.x").unwrap().contains(b"edit_config_store"));

    let mut a = auth("platform.json");
    for e in &autos {
        a.store_mut().upsert(e).unwrap();
    }
    // platform and config.store replaced in place (same user_id), agent.x appended.
    assert_eq!(a.store().len(), 9);
    assert_eq!(outcome(&a, &curve("vip", "::1", &platform.0)), Ok("platform".into()));
    let old_platform = key("0pT8zgzIhYeEMJnYXdgFru8bCaY7DbHdPk3GKjQ8HbU");
    assert_eq!(outcome(&a, &curve("vip", "::1", &old_platform)), Err(DenyReason::UnknownKey));
    assert_eq!(outcome(&a, &curve("vip", "::1", &newcomer.0)), Ok("agent.x".into()));
    let ids: Vec<_> = a.store().entries().map(|e| e.user_id().to_owned()).collect();
    assert_eq!(ids[0], "platform");
    assert_eq!(ids[8], "agent.x");
    assert_eq!(a.store().entries().nth(8).unwrap().source(), EntrySource::Auto);
}

#[test]
fn auto_entries_capabilities_follow_section_9_7() {
    let k = PublicKey([7; 32]);
    let ids = [
        "control.connection",
        "config.store",
        "platform.auth",
        "control",
        "keydiscovery",
        "platform_web",
        "platform.agent",
        "listener",
        "platform.health",
        "aip",
    ];
    let services: Vec<_> = ids.iter().map(|i| (*i, k)).collect();
    let autos = auto_entries(&k, &services);
    let caps = |i: usize| -> Vec<(String, Option<String>)> {
        autos[i].capabilities.iter().map(|c| (c.name.to_owned(), c.identity_arg.clone())).collect()
    };
    let any = Some("/.*/".to_owned());
    let full = vec![
        ("edit_config_store".to_owned(), any.clone()),
        ("modify_rpc_method_allowance".to_owned(), None),
        ("allow_auth_modifications".to_owned(), None),
    ];
    assert_eq!(caps(1), full);
    assert_eq!(caps(2), [("sync_agent_config".to_owned(), None)]);
    assert_eq!(caps(3), [("modify_rpc_method_allowance".to_owned(), None)]);
    assert_eq!(caps(4), full);
    assert!(caps(5).is_empty());
    assert_eq!(caps(6), [("allow_auth_modifications".to_owned(), None)]);
    assert_eq!(caps(7), [("edit_config_store".to_owned(), any)]);
    assert_eq!(caps(8), [("edit_config_store".to_owned(), Some("listener".to_owned()))]);
    // Inproc-only in VOLTTRON 9 (no entry of their own there): admitted, no capabilities.
    assert!(caps(9).is_empty());
    assert!(caps(10).is_empty());
    assert!(autos[1..].iter().zip(ids).all(|(e, i)| e.user_id == i && e.identity.as_deref() == Some(i)));
}

/// `(name, argument JSON)` of every capability of `user`.
fn caps_of(a: &Authenticator, user: &str) -> Vec<(String, String)> {
    let caps = a.capabilities(user.as_bytes()).unwrap();
    caps.all().iter().map(|c| (c.name().to_owned(), c.arg_json().to_owned())).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(n, a)| ((*n).to_owned(), (*a).to_owned())).collect()
}

/// BUG-1 of the platform-services memo: each capability keeps its argument, normalised as
/// VOLTTRON's `AuthEntry.build_capabilities_field` and `AuthFile._use_groups_and_roles` do
/// (`auth_entry.py:151-169`, `auth_file.py:349-360`).
#[test]
fn capabilities_keep_their_arguments_as_volttron_normalises_them() {
    // rules.json: ["edit_config_store", {"read_x": {"arg": 1}}] + roles viewer, group ops.
    let a = auth("rules.json");
    let want = [
        ("edit_config_store", "null"),
        ("read_x", r#"{"arg": 1}"#),
        ("read_config", "null"),
        ("restart_agents", "null"),
    ];
    assert_eq!(caps_of(&a, "listener"), pairs(&want));
    let doc = r#"{"allow": [
        {"credentials": "xMBdQKjD68DrDE7c_11OmWSl-7XiSGBxGpKqFmaL-9c", "user_id": "a",
         "capabilities": {"edit_config_store": {"identity": "agent2"}}},
        {"credentials": "txGZ69Bws2vqtzF5IMLC8dd3340F5VJ9hFj9pXyxeno", "user_id": "b",
         "capabilities": [{"c": {"x": 1}}, "c", {"d": {"k": 1, "k": "caf\u00e9", "f": 1e3}}, "e"]},
        {"credentials": "176uT6rWIxJBKI4riMpGbIRc4Dpxdxs9OwqVn_WvOtQ", "user_id": "c",
         "capabilities": "solo", "roles": ["r"]},
        {"credentials": "fZzN3g8kUsj4qzyemndSyj82dW3quVLoPn1EgUY2Re4", "user_id": "d",
         "capabilities": {"restart": {"identity": "x"}, "keep": ["é", null, true]}, "roles": ["r"]}
      ],
      "roles": {"r": ["restart", "read"]}}"#;
    let a = Authenticator::new(AuthStore::parse(doc.as_bytes(), &mut rng()).unwrap(), AuthMode::Enforced);
    assert_eq!(caps_of(&a, "a"), pairs(&[("edit_config_store", r#"{"identity": "agent2"}"#)]));
    // A list is merged with dict.update in order: the later bare "c" wins over {"c": {...}}
    // (Python's "args override a bare name" comment never takes effect); duplicate keys keep
    // the first position and the last value; numbers and strings (escaped or raw UTF-8 in the
    // file) as json.dumps writes them.
    assert_eq!(caps_of(&a, "b"), pairs(&[("c", "null"), ("d", r#"{"k": "caf\u00e9", "f": 1000.0}"#), ("e", "null")]));
    assert_eq!(caps_of(&a, "c"), pairs(&[("solo", "null"), ("restart", "null"), ("read", "null")]));
    // A role's capability has no argument and drops the entry's own argument for that name.
    assert_eq!(
        caps_of(&a, "d"),
        pairs(&[("restart", "null"), ("keep", r#"["\u00e9", null, true]"#), ("read", "null")])
    );
    // The table handed to pubsub: every explicit user id, in match order.
    let users: Vec<_> = a.user_capabilities().map(|(u, c)| (u.to_owned(), c.len())).collect();
    assert_eq!(users, [("a".to_owned(), 1), ("b".to_owned(), 3), ("c".to_owned(), 3), ("d".to_owned(), 3)]);
}

/// The -32001 text from the router's own auth.json table equals the one from the
/// `auth_update` body VOLTTRON's `platform.auth` sends for the same file, which is VOLTTRON's
/// text (`pubsubservice.py:681-684`; `test_auth.py::test_pubsub_unauthorized`).
#[test]
fn refusal_text_shows_capability_arguments_as_volttron() {
    use viprouter::vip::protected::{TopicPolicy, UserCapabilities};
    let doc = r#"{"allow": [{"credentials": "xMBdQKjD68DrDE7c_11OmWSl-7XiSGBxGpKqFmaL-9c", "user_id": "agent2",
        "identity": "agent2", "capabilities": {"edit_config_store": {"identity": "agent2"}}}]}"#;
    let a = Authenticator::new(AuthStore::parse(doc.as_bytes(), &mut rng()).unwrap(), AuthMode::Enforced);
    let from_entries = UserCapabilities::from_entries(
        a.user_capabilities().map(|(u, caps)| (u, caps.all().iter().map(|c| (c.name(), c.arg_json())))),
    );
    let auth_update = br#"{"capabilities": {"agent2": {"edit_config_store": {"identity": "agent2"}}}}"#;
    let mut texts = Vec::new();
    for table in [from_entries, UserCapabilities::from_json(auth_update).unwrap()] {
        let mut p = TopicPolicy::default();
        p.set_protected_topics_json(
            br#"{"write-protect": [{"topic": "foo", "capabilities": ["can_publish_to_my_topic"]}]}"#,
        )
        .unwrap();
        p.set_user_capabilities(table);
        let refusal = p.check(b"agent2", b"foo").expect("refused");
        let mut text = Vec::new();
        refusal.write_text(b"foo", &mut text);
        texts.push(String::from_utf8(text).unwrap());
    }
    let volttron = "to publish to topic \"foo\" requires capabilities ['can_publish_to_my_topic'], but capability \
                    list {'edit_config_store': {'identity': 'agent2'}} was provided";
    assert_eq!(texts, [volttron, volttron]);
}

fn entry_of(a: &Authenticator, req: &AuthRequest<'_>) -> viprouter::auth::EntryId {
    match a.decide(req) {
        Decision::Allow { entry: Some(e), .. } => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn identity_binding_off_by_default() {
    let a = auth("platform.json");
    let k = key(LISTENER);
    let e = entry_of(&a, &curve("vip", "127.0.0.1", &k));
    assert!(a.check_identity(e, b"control"));
}

#[test]
fn identity_binding_refuses_other_identity() {
    let mut a = auth("platform.json");
    a.set_identity_binding(true);
    let k = key(LISTENER);
    let e = entry_of(&a, &curve("vip", "127.0.0.1", &k));
    assert!(a.check_identity(e, b"listener"));
    assert!(!a.check_identity(e, b"control"));
    // The platform entry has no identity: any routing id.
    let p = key("0pT8zgzIhYeEMJnYXdgFru8bCaY7DbHdPk3GKjQ8HbU");
    let pe = entry_of(&a, &curve("vip", "127.0.0.1", &p));
    assert!(a.check_identity(pe, b"anything"));
    // An EntryId from before a reload refers to nothing.
    a.replace_store(load("platform.json"));
    assert!(a.entry(e).is_none());
    assert!(!a.check_identity(e, b"listener"));
}
