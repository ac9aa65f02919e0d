//! `viprouter bench` end to end against the in-process router: every workload for about
//! half a second, NULL and CURVE, both client I/O models, and the argument handling.

use super::inproc::Inproc;
use super::{BenchArgs, BenchCmd, CaseResult, Report, Val, run};
use argh::FromArgs;

fn args(cases: &[&str]) -> BenchArgs {
    BenchArgs {
        duration: 0.5,
        peers: 50,
        subscribers: 4,
        progress: false,
        cases: cases.iter().map(|s| s.to_string()).collect(),
        ..BenchArgs::default()
    }
}

fn num(r: &CaseResult, key: &str) -> f64 {
    r.num(key).unwrap_or_else(|| panic!("{} has no numeric {key}: {}", r.workload, r.to_json()))
}

fn ok(r: &CaseResult) -> bool {
    r.get("ok") == Some(&Val::Bool(true))
}

fn check_route(report: &Report) {
    let r = report.get("route").expect("route ran");
    assert!(ok(r), "{}", r.to_json());
    assert!(num(r, "delivered") > 0.0, "{}", r.to_json());
    assert_eq!(num(r, "lost"), 0.0, "{}", r.to_json());
    assert_eq!(num(r, "misrouted"), 0.0, "{}", r.to_json());
    assert_eq!(num(r, "errors"), 0.0, "{}", r.to_json());
    assert_eq!(num(r, "sent"), num(r, "delivered"));
    assert!(num(r, "msgs_per_s") > 0.0);
    // in-process: the router thread's own CPU is measured
    assert_eq!(r.get("router_cpu_source"), Some(&Val::Str("thread".into())));
    assert!(num(r, "router_cpu_s") >= 0.0);
}

fn check_rtt(report: &Report) {
    let r = report.get("rtt").expect("rtt ran");
    assert!(ok(r), "{}", r.to_json());
    assert!(num(r, "round_trips") > 0.0);
    assert!(num(r, "p50_us") > 0.0);
    assert!(num(r, "p99_us") >= num(r, "p50_us"));
    assert!(num(r, "max_us") >= num(r, "p999_us"));
    assert_eq!(num(r, "timeouts"), 0.0);
}

#[test]
fn every_workload_against_the_in_process_router() {
    let report = run(&args(&["route", "rtt", "fanout", "peers"])).expect("bench runs");
    assert_eq!(report.results.len(), 4);
    check_route(&report);
    check_rtt(&report);

    let f = report.get("fanout").expect("fanout ran");
    if f.get("unsupported") == Some(&Val::Bool(true)) {
        // the router has no pubsub subsystem yet: reported, not failed
        assert!(f.line.contains("unsupported by router"), "{}", f.line);
        assert_eq!(num(f, "published"), 0.0);
    } else {
        assert!(ok(f), "{}", f.to_json());
        assert_eq!(num(f, "subscribed_acked"), 4.0);
        assert!(num(f, "delivered") > 0.0);
        assert_eq!(num(f, "lost"), 0.0);
        // a latency for every delivery, from the stamp in its body
        assert_eq!(f.get("latency"), Some(&Val::Str("saturated".into())));
        assert_eq!(num(f, "lat_samples"), num(f, "delivered"));
        assert_eq!(num(f, "unstamped"), 0.0);
        assert!(num(f, "p50_us") > 0.0 && num(f, "max_us") >= num(f, "p99_us"), "{}", f.to_json());
        assert!(num(f, "router_cpu_us_per_pub") >= 0.0);
    }

    let p = report.get("peers").expect("peers ran");
    assert!(ok(p), "{}", p.to_json());
    assert_eq!(num(p, "welcomed"), 50.0);
    assert!(num(p, "connect_s") > 0.0);
    // each of the 50 peers hears of the ones after it: 49 + 48 + … notices
    assert!(num(p, "other_msgs") >= 49.0 * 50.0 / 2.0, "{}", p.to_json());

    // vipbench's output shapes
    for line in report.to_json().lines() {
        assert!(line.starts_with("{\"label\":\"router\",\"workload\":"), "{line}");
        assert!(line.ends_with('}'));
    }
    let table = report.table();
    assert!(table.contains("route") && table.contains("msg/s") && table.contains("p50"), "{table}");
}

#[test]
fn pubsub_latency_with_extra_subscriptions() {
    // 2500 extra subscriptions: three idle peers, the last with 500
    let a = BenchArgs { extra_subs: 2500, rtt_count: 300, ..args(&["fanout-lat", "fanout"]) };
    let report = run(&a).expect("bench runs");
    for case in ["fanout-lat", "fanout"] {
        let r = report.get(case).expect("ran");
        assert!(ok(r), "{}", r.to_json());
        assert_eq!(num(r, "subscribed_acked"), 4.0);
        assert_eq!((num(r, "extra_subs"), num(r, "extra_peers"), num(r, "extra_subs_acked")), (2500.0, 3.0, 2500.0));
        assert!(num(r, "published") > 0.0);
        assert_eq!(num(r, "delivered"), 4.0 * num(r, "published"), "{}", r.to_json());
        assert_eq!(num(r, "lost"), 0.0);
        assert!(num(r, "p50_us") > 0.0, "{}", r.to_json());
        assert!(num(r, "max_us") >= num(r, "p999_us") && num(r, "p999_us") >= num(r, "p99_us"));
        assert!(num(r, "router_cpu_us_per_pub") >= 0.0 && num(r, "router_cpu_us_per_msg") >= 0.0);
    }
    let l = report.get("fanout-lat").expect("ran");
    assert_eq!(l.get("latency"), Some(&Val::Str("paced".into())));
    assert!(num(l, "published") <= 300.0);
    assert_eq!(num(l, "timeouts"), 0.0);
    assert!(num(l, "all_p50_us") > 0.0, "{}", l.to_json());
    assert!(l.line.contains("until all 4"), "{}", l.line);

    // over the router's limit (16384 in all): reported, not run
    let a = BenchArgs { extra_subs: 17_000, ..args(&["fanout-lat"]) };
    let r = run(&a).expect("bench runs");
    let r = r.get("fanout-lat").expect("ran");
    assert!(!ok(r));
    assert_eq!(num(r, "published"), 0.0);
    assert!(
        r.get("failure").is_some_and(|f| matches!(f, Val::Str(s) if s.contains("extra subscriptions acknowledged")))
    );
}

#[test]
fn direct_io_client() {
    let a = BenchArgs { direct_io: true, ..args(&["route", "rtt"]) };
    let report = run(&a).expect("bench runs");
    check_route(&report);
    check_rtt(&report);
    assert_eq!(report.get("route").and_then(|r| r.num("io_threads")), Some(0.0));
}

#[test]
fn curve_against_the_in_process_router() {
    let a = BenchArgs { curve: true, ..args(&["route", "rtt", "peers"]) };
    let report = run(&a).expect("bench runs");
    check_route(&report);
    check_rtt(&report);
    let r = report.get("route").expect("route");
    assert_eq!(r.get("curve"), Some(&Val::Bool(true)));
    let p = report.get("peers").expect("peers");
    assert!(ok(p), "{}", p.to_json());
    assert_eq!(num(p, "welcomed"), 50.0);
}

#[test]
fn curve_at_an_endpoint_with_its_server_key_in_both_encodings() {
    let router = Inproc::start(true).expect("router");
    let key = router.server_key.expect("CURVE key");
    let z85 = String::from_utf8(viprouter::zmtp::z85::encode_key(&key.0).to_vec()).expect("ascii");
    for serverkey in [z85, base64url(&key.0)] {
        for direct_io in [false, true] {
            let a = BenchArgs {
                endpoint: Some(router.endpoint.clone()),
                serverkey: Some(serverkey.clone()),
                direct_io,
                ..args(&["route"])
            };
            let report = run(&a).expect("bench runs");
            let r = report.get("route").expect("route");
            assert!(ok(r), "{serverkey} direct_io={direct_io}: {}", r.to_json());
            assert!(num(r, "delivered") > 0.0);
            assert_eq!(num(r, "lost"), 0.0);
            // an external router without --router-pid: CPU not measured
            assert_eq!(r.get("router_cpu_source"), Some(&Val::Str("none".into())));
        }
    }
    // the wrong key: the router drops the HELLO, the run reports the failure
    let wrong = viprouter::zmtp::mechanism::curve::KeyPair::generate(&mut rand_core::OsRng).public;
    let wrong = String::from_utf8(viprouter::zmtp::z85::encode_key(&wrong.0).to_vec()).expect("ascii");
    let a = BenchArgs { endpoint: Some(router.endpoint.clone()), serverkey: Some(wrong), ..args(&["rtt"]) };
    let report = run(&a).expect("runs");
    let r = report.get("rtt").expect("rtt");
    assert!(!ok(r), "{}", r.to_json());
    assert!(r.get("failure").is_some());
}

#[test]
fn unreachable_router_is_a_failed_result_not_a_hang() {
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    for direct_io in [false, true] {
        let a = BenchArgs { endpoint: Some(format!("tcp://127.0.0.1:{port}")), direct_io, ..args(&["route", "rtt"]) };
        let t = std::time::Instant::now();
        let report = run(&a).expect("runs");
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
        for r in &report.results {
            assert!(!ok(r), "{}", r.to_json());
            assert!(r.line.contains("FAILED"), "{}", r.line);
        }
    }
}

#[test]
fn arguments() {
    assert!(run(&args(&["nope"])).unwrap_err().contains("unknown workload"));
    assert!(run(&BenchArgs { pairs: 0, ..args(&["route"]) }).is_err());
    assert!(run(&BenchArgs { rtt_count: 0, ..args(&["rtt"]) }).is_err());
    assert!(run(&BenchArgs { serverkey: Some("x".into()), ..args(&["route"]) }).is_err());
    assert!(
        run(&BenchArgs {
            endpoint: Some("tcp://127.0.0.1:1".into()),
            serverkey: Some("short".into()),
            ..args(&["route"])
        })
        .is_err()
    );

    let cmd = BenchCmd::from_args(
        &["viprouter", "bench"],
        &[
            "--endpoint",
            "tcp://127.0.0.1:22916",
            "--router-pid",
            "42",
            "--duration",
            "1.5",
            "--rtt-count",
            "700",
            "--extra-subs",
            "10000",
            "--json",
            "route",
            "rtt",
        ],
    )
    .expect("parses");
    let a: BenchArgs = cmd.into();
    assert_eq!(a.endpoint.as_deref(), Some("tcp://127.0.0.1:22916"));
    assert_eq!(a.router_pid, Some(42));
    assert_eq!(a.duration, 1.5);
    assert_eq!((a.rtt_count, a.extra_subs), (700, 10_000));
    assert!(a.json && a.progress && !a.direct_io);
    assert_eq!((a.size, a.pairs, a.window, a.subscribers, a.peers), (256, 4, 1000, 8, 1000));
    assert_eq!(a.cases, ["route", "rtt"]);
    let a: BenchArgs = BenchCmd::from_args(&["viprouter", "bench"], &["-q"]).expect("parses").into();
    assert!(a.cases.is_empty() && !a.progress && a.endpoint.is_none());
    assert_eq!((a.rtt_count, a.extra_subs), (20_000, 0));
}

fn base64url(raw: &[u8; 32]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in raw {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(A[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(A[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}
