//! Per-frame cost of the CURVE boxes (information, not a pass/fail test: speed targets live in
//! `make bench`). `cargo test --release --test curve_speed -- --ignored --nocapture`.
//!
//! `PrecomputedBox` is RustCrypto's XSalsa20-Poly1305 (handshake commands); `PrefixedBox` is the
//! MESSAGE box every routed frame goes through (libsodium's Salsa20 + Poly1305, subkey derived
//! once). Best of 5 runs, so a busy machine inflates the figures less.

use viprouter::zmtp::mechanism::curve::keys::{PrecomputedBox, TAG_LEN};
use viprouter::zmtp::mechanism::curve::nonce::MESSAGE_C_PREFIX;

fn best_ns(n: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::MAX, f64::min)
}

#[test]
#[ignore = "timing information only; run explicitly"]
fn seal_and_open_cost_per_frame() {
    let k = PrecomputedBox::from_key(&[7u8; 32]);
    let message = k.with_prefix(MESSAGE_C_PREFIX);
    println!("MESSAGE box backend: {}", viprouter::zmtp::mechanism::curve::sodium::backend());
    let nonce = [1u8; 24];
    for size in [8usize, 256, 1024, 8192] {
        let mut buf = vec![0u8; TAG_LEN + size];
        let n = 4_000_000 / (size + 256);
        let full = best_ns(n, || {
            let _ = std::hint::black_box(k.seal_box_in_place(&nonce, &mut buf));
        });
        let seal = best_ns(n, || {
            let _ = std::hint::black_box(message.seal_box_in_place(3, &mut buf));
        });
        message.seal_box_in_place(3, &mut buf).unwrap();
        let sealed = buf.clone();
        let open = best_ns(n, || {
            buf.copy_from_slice(&sealed);
            let _ = std::hint::black_box(message.open_box_in_place(3, &mut buf));
        });
        println!(
            "{size:5} B: MESSAGE seal {seal:6.0} ns, open (+copy) {open:6.0} ns; RustCrypto XSalsa20-Poly1305 seal {full:6.0} ns"
        );
    }
}
