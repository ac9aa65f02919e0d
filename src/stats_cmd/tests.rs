//! `viprouter stats` without a router: answers recorded from a real one (`testdata/`: two
//! answers one second apart during `viprouter bench fanout` with a subscriber that never reads,
//! and a fresh router's first answer) read, turned into rates and rendered; and the choice of
//! mechanism, keys and identity from a platform directory.

use viprouter::auth::keystore;
use viprouter::config::{CliValues, Config};
use viprouter::zmtp::mechanism::curve::KeyPair;
use viprouter::zmtp::session::client::ClientSecurity;

use super::StatsCmd;
use super::sample::{Rates, Sample};
use super::table::{self, Header};
use super::target;

const FANOUT_1: &[u8] = include_bytes!("testdata/fanout-1.json");
const FANOUT_2: &[u8] = include_bytes!("testdata/fanout-2.json");
const FRESH: &[u8] = include_bytes!("testdata/fresh.json");

fn sample(raw: &[u8]) -> Sample {
    Sample::parse(raw.trim_ascii_end()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[test]
fn an_answer_is_read_whole() {
    let s = sample(FANOUT_2);
    assert_eq!(s.get("msgs_in"), Some(262_665));
    assert_eq!(s.get("uptime_ms"), Some(25_749));
    assert_eq!(s.get("subscriptions"), Some(9));
    assert_eq!(s.get("limits"), None, "objects are not counters");
    assert_eq!(s.limit("tx-queue-bytes"), Some(65_536));
    assert_eq!(s.limits.len(), 11);
    assert_eq!(s.slow.len(), 9);
    assert_eq!(s.slow[0], ("historian.slow".to_string(), 16_413), "most dropped first");
    assert_eq!(s.slow[1], ("rb22580.0-f0".to_string(), 817), "ties by name");
    assert_eq!(s.top.len(), 10);
    assert_eq!((s.top[0].identity.as_str(), s.top[0].msgs_in, s.top[0].msgs_out), ("rb22580.0-pub", 24_480, 24_489));
    assert!(Sample::parse(b"[1, 2]").is_err());
    assert!(Sample::parse(b"{\"msgs_in\": 1").is_err());
}

/// What an older router answers (no gauges, limits or top talkers) still reads and renders.
#[test]
fn an_answer_without_the_new_members_still_renders() {
    let s = Sample::parse(
        br#"{"accepted": 3, "msgs_in": 10, "dropped_notify_full": 2, "subscriptions": 1, "slow_subscribers": {}}"#,
    )
    .unwrap();
    assert!(s.top.is_empty() && s.limits.is_empty());
    let text = table::render(&Header { address: "tcp://x:1".into(), instance: "old".into() }, &s, None, None);
    assert!(text.contains("  dropped_notify_full                   2            -\n"), "{text}");
    assert!(text.contains("rates: averages since the router started"), "{text}");
    assert!(!text.contains("top talkers"));
}

#[test]
fn rates_are_over_the_interval_of_the_routers_clock() {
    let (a, b) = (sample(FANOUT_1), sample(FANOUT_2));
    let r = Rates::new(&b, Some(&a));
    assert!(r.over_interval());
    assert!(close(r.seconds(), 1.011));
    assert!(close(r.of("msgs_in").unwrap(), 7720.0 / 1.011));
    assert!(close(r.of("dropped_slow_subscriber").unwrap(), 7719.0 / 1.011));
    assert!(close(r.of("routed").unwrap(), 0.0));
    assert!(close(r.of("connections").unwrap(), 0.0));
    assert_eq!(r.of("no_such_counter"), None);
    let publisher = &b.top[0];
    let (i, o) = r.of_talker(publisher).unwrap();
    assert!(close(i, (24_480.0 - 16_761.0) / 1.011) && close(o, (24_489.0 - 16_770.0) / 1.011));
    // Not in the earlier answer's top list: no rate over the interval.
    let mut stranger = publisher.clone();
    stranger.identity = "not.listed.before".into();
    assert_eq!(r.of_talker(&stranger), None);
}

#[test]
fn without_an_earlier_answer_of_the_same_run_rates_are_since_the_start() {
    let (b, fresh) = (sample(FANOUT_2), sample(FRESH));
    let alone = Rates::new(&b, None);
    assert!(!alone.over_interval());
    assert!(close(alone.of("msgs_in").unwrap(), 262_665.0 / 25.749));
    // The router restarted between the answers (its uptime went back): since its start again.
    let restarted = Rates::new(&fresh, Some(&b));
    assert!(!restarted.over_interval());
    assert!(close(restarted.seconds(), 4.734));
    assert!(close(restarted.of("msgs_in").unwrap(), 6.0 / 4.734));
    // The same answer twice: no time elapsed, so averages since the start.
    assert!(!Rates::new(&b, Some(&b)).over_interval());
}

/// The whole table for the second answer with rates over the interval, as `--watch 1` shows
/// it (`testdata/fanout-2.table`, checked by hand against the numbers above).
#[test]
fn the_table_is_what_an_operator_reads() {
    let (a, b) = (sample(FANOUT_1), sample(FANOUT_2));
    let header = Header { address: "ipc://@/tmp/stats-try/vn/run/vip.socket".into(), instance: "gw1".into() };
    let text = table::render(&header, &b, Some(&a), Some(1));
    let want = include_str!("testdata/fanout-2.table");
    assert_eq!(text, want, "\n--- rendered ---\n{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "fits 80 columns");
}

#[test]
fn uptime_and_bytes_read_well() {
    assert_eq!(table::uptime(0), "00:00:00");
    assert_eq!(table::uptime(90_061_000), "1d 01:01:01");
    assert_eq!(table::bytes(1023), "1023 B");
    assert_eq!(table::bytes(1536), "1.5 KiB");
    assert_eq!(table::bytes(128 << 20), "128.0 MiB");
    assert_eq!(table::bytes(u64::MAX), "16777216.0 TiB");
}

/// A platform directory with the files VOLTTRON keeps, in a temporary folder.
struct Home {
    dir: tempfile::TempDir,
    config: Config,
}

impl Home {
    fn new(allow_auth: bool) -> Home {
        let dir = tempfile::Builder::new().prefix("viprouter-stats-test").tempdir().unwrap();
        let values = CliValues { volttron_home: Some(dir.path().display().to_string()), ..CliValues::default() };
        let mut config = Config::load(&values).unwrap();
        config.allow_auth = allow_auth;
        config.vip_addresses = vec!["tcp://127.0.0.1:22916".into()];
        Home { dir, config }
    }

    fn keystore(&self, rel: &str) -> KeyPair {
        let pair = KeyPair::generate(&mut rand_core::OsRng);
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, keystore::keystore_json(&pair)).unwrap();
        pair
    }
}

fn cmd() -> StatsCmd {
    StatsCmd {
        address: None,
        serverkey: None,
        key_file: None,
        identity: None,
        json: false,
        watch: None,
        count: None,
        timeout: 5,
    }
}

fn curve(t: &target::Target) -> (&[u8; 32], &[u8; 32]) {
    match &t.security {
        ClientSecurity::Curve { server_key, keys } => (&server_key.0, &keys.public.0),
        ClientSecurity::Null => panic!("NULL for {}", t.address),
    }
}

#[test]
fn a_local_agents_keys_are_found_where_volttron_keeps_them() {
    let home = Home::new(true);
    // No keystore at all: no server key, a configuration error.
    assert_eq!(target::resolve(&cmd(), &home.config).unwrap_err().code(), 2);
    // The platform's keystore: its public key is the server key, and (no control.connection
    // keystore) our pair too.
    let platform = home.keystore("keystore");
    let t = target::resolve(&cmd(), &home.config).unwrap();
    assert_eq!(t.address, home.config.local_address);
    assert_eq!(curve(&t), (&platform.public.0, &platform.public.0));
    assert!(t.identity.starts_with(b"viprouter.stats."));
    // vctl's pair wins once it exists; known_hosts' entry for `@` is the server key.
    let control = home.keystore("keystores/control.connection/keystore.json");
    let other = KeyPair::generate(&mut rand_core::OsRng);
    keystore::update_known_hosts(&home.dir.path().join("known_hosts"), &[("@", &other.public)]).unwrap();
    let t = target::resolve(&cmd(), &home.config).unwrap();
    assert_eq!(curve(&t), (&other.public.0, &control.public.0));
    assert!(t.identity.starts_with(b"viprouter.stats."));
    // With identity binding, that pair needs its entry's identity.
    let mut bound = home.config.clone();
    bound.identity_binding = Some(true);
    assert_eq!(target::resolve(&cmd(), &bound).unwrap().identity, b"control.connection");
    // --key-file and --identity win.
    let mine = home.keystore("mine.json");
    let mut c = cmd();
    c.key_file = Some(home.dir.path().join("mine.json").display().to_string());
    c.identity = Some("ops".into());
    let t = target::resolve(&c, &bound).unwrap();
    assert_eq!(curve(&t).1, &mine.public.0);
    assert_eq!(t.identity, b"ops");
    // A broken key file is a configuration error naming it.
    std::fs::write(home.dir.path().join("mine.json"), "{}").unwrap();
    let e = target::resolve(&c, &bound).unwrap_err();
    assert_eq!(e.code(), 2);
    assert!(e.to_string().contains("mine.json"), "{e}");
}

#[test]
fn the_mechanism_follows_the_address() {
    let home = Home::new(true);
    let platform = home.keystore("keystore");
    let with = |address: &str, serverkey: Option<&str>| {
        let mut c = cmd();
        c.address = Some(address.into());
        c.serverkey = serverkey.map(str::to_string);
        target::resolve(&c, &home.config)
    };
    // One of the platform's own addresses with auth on: CURVE with the platform's key.
    assert_eq!(curve(&with("tcp://127.0.0.1:22916", None).unwrap()).0, &platform.public.0);
    // server=NULL on it: NULL.
    assert!(matches!(with("tcp://127.0.0.1:22916?server=NULL", None).unwrap().security, ClientSecurity::Null));
    // Another router that known_hosts does not know: NULL; one it knows: CURVE.
    assert!(matches!(with("tcp://10.0.0.9:22916", None).unwrap().security, ClientSecurity::Null));
    let remote = KeyPair::generate(&mut rand_core::OsRng);
    keystore::update_known_hosts(&home.dir.path().join("known_hosts"), &[("10.0.0.9:22916", &remote.public)]).unwrap();
    assert_eq!(curve(&with("tcp://10.0.0.9:22916", None).unwrap()).0, &remote.public.0);
    // A key given (option, or serverkey= as VOLTTRON agents take it), in either encoding.
    let z85 = String::from_utf8(remote.public.to_z85().to_vec()).unwrap();
    assert_eq!(curve(&with("tcp://10.0.0.8:1", Some(&z85)).unwrap()).0, &remote.public.0);
    let b64 = viprouter::auth::keys::encode_key(&remote.public.0);
    assert_eq!(curve(&with(&format!("tcp://10.0.0.8:1?serverkey={b64}"), None).unwrap()).0, &remote.public.0);
    assert_eq!(with("tcp://10.0.0.8:1", Some("short")).unwrap_err().code(), 2);
    assert_eq!(with("udp://10.0.0.8:1", None).unwrap_err().code(), 2);
    // With allow-auth off, the platform's own endpoints are NULL.
    let off = Home::new(false);
    assert!(matches!(target::resolve(&cmd(), &off.config).unwrap().security, ClientSecurity::Null));
}
