//! `viprouter stats` against a real router (the same binary, started here on a fresh
//! `VOLTTRON_HOME`): CURVE with the platform's keys and with vctl's `control.connection` pair,
//! NULL, over the ipc endpoint and tcp; `--json`, `--watch`; and its exit status when the router
//! is not there (3), does not answer (4) or refuses the key (5).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use viprouter::auth::keys::encode_key;
use viprouter::auth::keystore;
use viprouter::json;
use viprouter::zmtp::mechanism::curve::KeyPair;

fn bin() -> PathBuf {
    // VIPROUTER_BIN: the shipped binary (through its qemu wrapper under `make test-arm-*`).
    std::env::var_os("VIPROUTER_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_viprouter")), PathBuf::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A router on a fresh home, killed when dropped.
struct Router {
    home: tempfile::TempDir,
    child: Child,
    tcp: String,
}

impl Router {
    /// Start a router with `config` lines added to `[volttron]` (and `viprouter` to
    /// `[viprouter]`), after `prepare` has laid out files in the home.
    fn start(volttron: &str, viprouter: &str, prepare: impl FnOnce(&Path)) -> Router {
        let home = tempfile::Builder::new().prefix("vr-stats-").tempdir_in("/tmp").unwrap();
        let tcp = format!("tcp://127.0.0.1:{}", free_port());
        let config =
            format!("[volttron]\nvip-address = {tcp}\ninstance-name = statstest\n{volttron}[viprouter]\n{viprouter}");
        std::fs::write(home.path().join("config"), config).unwrap();
        prepare(home.path());
        let log = std::fs::File::create(home.path().join("router.log")).unwrap();
        let child = Command::new(bin())
            .arg("--volttron-home")
            .arg(home.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Router { home, child, tcp };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !r.log().contains(" ready: router id ") {
            assert!(Instant::now() < deadline, "router did not start:\n{}", r.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn log(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(self.home.path().join("router.log")).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    fn stats(&self, args: &[&str]) -> Output {
        stats(self.home.path(), args)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `viprouter --volttron-home HOME stats ARGS...`.
fn stats(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--volttron-home")
        .arg(home)
        .arg("stats")
        .args(args)
        .env_remove("VOLTTRON_HOME")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit status 0 and the standard output.
fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn number(v: json::Value<'_>, key: &[u8]) -> u64 {
    v.get(key).and_then(|n| n.as_number()).and_then(|n| n.as_u64()).unwrap()
}

/// `--json` as `identity`: the object has the gauges, the limits and us among the top talkers.
fn check_json(r: &Router, address: &str) {
    let out = ok(&r.stats(&["--address", address, "--json", "--identity", "ops.test"]));
    let v = json::parse(out.trim_end().as_bytes()).unwrap();
    assert!(number(v, b"connections") >= 1 && number(v, b"peers") >= 1, "{out}");
    assert!(number(v, b"uptime_ms") > 0);
    assert_eq!(number(v.get(b"limits").unwrap(), b"max-connections"), 4096);
    let me = v.get(b"top_talkers").unwrap().items().find(|t| t.get(b"identity").unwrap().raw() == b"\"ops.test\"");
    let me = me.unwrap_or_else(|| panic!("ops.test not among the top talkers: {out}"));
    assert_eq!(number(me, b"msgs_in"), 2, "hello and query instance-name (the query being answered counts after)");
}

#[test]
fn curve_with_the_platforms_keys_over_ipc_and_tcp() {
    let r = Router::start("", "", |_| {});
    let table = ok(&r.stats(&[]));
    let ipc = format!("ipc://@{}/run/vip.socket", r.home.path().display());
    assert!(table.starts_with(&format!("viprouter statstest at {ipc}, up ")), "{table}");
    for line in ["peers ", "connections ", "  in (from peers) ", "drops, refusals, pauses", "top talkers "] {
        assert!(table.contains(line), "{line:?} missing:\n{table}");
    }
    assert!(table.contains("rates: averages since the router started"));
    check_json(&r, &ipc);
    check_json(&r, &r.tcp);
    // --watch: a cleared screen per answer, the second with rates over the interval.
    let out = ok(&r.stats(&["--address", &r.tcp, "--watch", "1", "--count", "2"]));
    assert_eq!(out.matches("\x1b[H\x1b[2J").count(), 2, "{out}");
    let second = out.rsplit("\x1b[H\x1b[2J").next().unwrap();
    assert!(second.contains("rates over the last 1.0 s; every 1 s, Ctrl-C to stop"), "{second}");
    // A key auth.json does not list: ERROR 400, exit 5.
    let stranger = KeyPair::generate(&mut rand_core::OsRng);
    let file = r.home.path().join("stranger.json");
    std::fs::write(&file, keystore::keystore_json(&stranger)).unwrap();
    let out = r.stats(&["--key-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the router sent ERROR \"400\""), "{}", text(&out.stderr));
    // A wrong server key: the router cannot open our HELLO and closes the connection: exit 5.
    let wrong = String::from_utf8(stranger.public.to_z85().to_vec()).unwrap();
    let out = r.stats(&["--address", &r.tcp, "--serverkey", &wrong]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    // NULL against a CURVE endpoint: our configuration is wrong, exit 2.
    let out = Command::new(bin())
        .args(["--allow-auth", "false", "--volttron-home"])
        .arg(r.home.path())
        .arg("stats")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// vctl's pair (`keystores/control.connection/keystore.json`, admitted by the router because it
/// exists) is used when present; with identity binding, under its entry's identity.
#[test]
fn curve_with_vctls_pair_and_identity_binding() {
    let control = KeyPair::generate(&mut rand_core::OsRng);
    let r = Router::start("", "identity-binding = True\n", |home| {
        let path = keystore::service_keystore_path(home, "control.connection");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, keystore::keystore_json(&control)).unwrap();
    });
    let out = ok(&r.stats(&["--json"]));
    let v = json::parse(out.trim_end().as_bytes()).unwrap();
    let top: Vec<_> =
        v.get(b"top_talkers").unwrap().items().map(|t| t.get(b"identity").unwrap().raw().to_vec()).collect();
    assert!(top.contains(&b"\"control.connection\"".to_vec()), "{out}");
    // Another identity with that pair is refused by the binding (so that pair was the one used:
    // the platform's own entry has no identity to bind).
    let out = r.stats(&["--identity", "someone.else"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
}

#[test]
fn null_over_ipc_and_tcp() {
    let r = Router::start("allow-auth = False\n", "", |_| {});
    let table = ok(&r.stats(&[]));
    assert!(table.contains("viprouter statstest at ipc://@"), "{table}");
    check_json(&r, &r.tcp);
    check_json(&r, &format!("ipc://@{}/run/vip.socket", r.home.path().display()));
}

#[test]
fn exit_status_says_what_went_wrong() {
    // Nothing listening, tcp and the default ipc endpoint of an existing home: 3.
    let home = tempfile::Builder::new().prefix("vr-stats-").tempdir_in("/tmp").unwrap();
    std::fs::write(home.path().join("config"), "[volttron]\nallow-auth = False\n").unwrap();
    let out = stats(home.path(), &["--address", &format!("tcp://127.0.0.1:{}", free_port())]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no router at tcp://127.0.0.1:"), "{}", text(&out.stderr));
    let out = stats(home.path(), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // A home that does not exist: 2.
    let out = stats(&home.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Something that accepts and never answers: 4, within the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("tcp://{}", silent.local_addr().unwrap());
    let t0 = Instant::now();
    let out = stats(home.path(), &["--address", &address, "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(text(&out.stderr).contains("no answer within 1 s"), "{}", text(&out.stderr));
    drop(silent);
    // Bad arguments: --watch 0.
    let out = stats(home.path(), &["--watch", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// A modular VOLTTRON home's credential file, as modular's `platform.auth` writes it.
fn credential(identity: &str, pair: &KeyPair) -> String {
    format!(
        "{{\"identity\": \"{identity}\", \"publickey\": \"{}\", \"secretkey\": \"{}\", \"domain\": \"\", \"address\": \"\"}}",
        encode_key(&pair.public.0),
        encode_key(pair.secret.as_bytes())
    )
}

/// A modular home (`credentials_store/platform.json`): no flags needed. The server key is
/// platform.json's, our pair vctl's `control.connection.json` under its own identity (the router
/// binds each credential file's key to its identity); without that file, platform.json's.
#[test]
fn curve_in_a_modular_home_with_its_credential_files() {
    let platform = KeyPair::generate(&mut rand_core::OsRng);
    let control = KeyPair::generate(&mut rand_core::OsRng);
    let r = Router::start("", "", |home| {
        let dir = home.join("credentials_store");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("platform.json"), credential("platform", &platform)).unwrap();
        std::fs::write(dir.join("control.connection.json"), credential("control.connection", &control)).unwrap();
    });
    assert!(r.log().contains("modular VOLTTRON"), "{}", r.log());
    let top = |out: &str| -> Vec<Vec<u8>> {
        let v = json::parse(out.trim_end().as_bytes()).unwrap();
        v.get(b"top_talkers").unwrap().items().map(|t| t.get(b"identity").unwrap().raw().to_vec()).collect()
    };
    let out = ok(&r.stats(&["--json"]));
    assert!(top(&out).contains(&b"\"control.connection\"".to_vec()), "{out}");
    // The binding is what made it work: another identity with vctl's pair is refused.
    let out = r.stats(&["--identity", "someone.else"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    // Without vctl's file: platform.json's pair, as `platform`.
    std::fs::remove_file(r.home.path().join("credentials_store/control.connection.json")).unwrap();
    let out = ok(&r.stats(&["--json", "--address", &r.tcp]));
    assert!(top(&out).contains(&b"\"platform\"".to_vec()), "{out}");
}
