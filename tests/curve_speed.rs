//! Per-frame cost of the CURVE box (information, not a pass/fail test: speed targets live in
//! `make bench`). `cargo test --release --test curve_speed -- --ignored --nocapture`.

use viprouter::zmtp::mechanism::curve::keys::PrecomputedBox;

#[test]
#[ignore = "timing information only; run explicitly"]
fn seal_and_open_cost_per_frame() {
    let k = PrecomputedBox::from_key(&[7u8; 32]);
    let nonce = [1u8; 24];
    for size in [8usize, 256, 4096] {
        let mut buf = vec![0u8; size];
        let n = 200_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let _ = std::hint::black_box(k.seal_detached(&nonce, &mut buf));
        }
        let dt = t.elapsed().as_nanos() as f64 / n as f64;
        let tag = k.seal_detached(&nonce, &mut buf).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            let mut b = buf.clone();
            let _ = std::hint::black_box(k.open_detached(&nonce, &mut b, &tag));
        }
        let dt2 = t.elapsed().as_nanos() as f64 / n as f64;
        println!("seal {size} B: {dt:.0} ns; open (+copy) {dt2:.0} ns");
    }
}
