//! The libzmq cost model: the per-frame and per-message work libzmq does that this client's
//! pipes do not, burnt as [`frame_work`] steps so that the generator costs what a libzmq client
//! costs (`--zmq-cost`, in percent of libzmq's).
//!
//! Contract: the figures are calibrated against vipbench (`../shared/bench/vipbench.c`) on the
//! same router, as described on [`FRAME_COST_IO`]; only the amount of CPU burnt depends on
//! them, never what is sent or received.

/// The libzmq cost model, in [`frame_work`] steps (about 1 ns each on the 2-core x86-64
/// machine vipbench was compared on), at `--zmq-cost 100`.
///
/// libzmq handles every frame on its own (`zmq_msg_t` init/move/close, `ypipe_t`
/// write/read, the v2 encoder/decoder state machine, `socket_base_t` bookkeeping on each
/// `zmq_send`/`zmq_msg_recv`), which costs it more than the pipes here; its system calls
/// (mailbox checks with `getpid`, eventfd signalling, `POLLOUT` toggling, the connecter,
/// the staged greeting) are done for real above. The rest is calibrated against vipbench
/// on the same router (`../shared/bench/vipbench.c`, libzmq 4.3.4):
/// * 40 steps per frame, two thirds in the I/O thread (encoder/decoder), one third in the
///   application thread: the gap in generator CPU per routed message (route, 12 frame
///   hand-offs per message), split as vipbench's CPU is between libzmq's I/O thread and
///   its workers (`perf stat --per-thread`: 0.94 vs 0.64 CPU at 1 M msg/s), which makes
///   the I/O thread the bottleneck it is there;
/// * 150 steps per message taken by the application (`zmq_msg_recv` of each frame and
///   vipbench's `mm_recv`): the gap per peer that remained in `peers`, where 500 small
///   peerlist notices per peer dominate.
///
/// Without it (`--zmq-cost 0`) this client costs about half of what libzmq does, and on a
/// machine where router and generator share the CPU its throughput figures run ahead of
/// vipbench's.
pub const FRAME_COST_IO: u32 = 27;
/// See [`FRAME_COST_IO`]: the application thread's share per frame.
pub const FRAME_COST_APP: u32 = 13;
/// See [`FRAME_COST_IO`]: per message received by the application thread.
pub const MSG_COST_APP: u32 = 150;

/// Scale a 100 % cost to `percent`.
pub(super) fn scaled(cost: u32, percent: u32) -> u32 {
    u32::try_from(u64::from(cost) * u64::from(percent) / 100).unwrap_or(u32::MAX)
}

/// `n` dependent shift-xor-multiply steps the compiler cannot fold.
#[inline(never)]
pub fn frame_work(n: u32) {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..n {
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    std::hint::black_box(x);
}
