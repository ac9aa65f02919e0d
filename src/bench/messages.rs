//! VIP message helpers shared by the workloads (VIP.md §3, §5.1; vipbench's `send_vip`,
//! `hello_wait`, `is_*`).

use std::time::Instant;

use super::client::ClientError;
use super::socket::Socket;
use viprouter::zmtp::Message;

/// The protocol signature.
pub const VIP1: &[u8] = b"VIP1";

/// `tag` + 8 lower-case hex digits: never parses as JSON (vipbench `fmt_id`).
pub fn fmt_id(tag: u8, v: u32) -> [u8; 9] {
    const HX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [tag; 9];
    for (i, d) in b.iter_mut().skip(1).enumerate() {
        *d = HX.get(((v >> (28 - 4 * i)) & 15) as usize).copied().unwrap_or(b'0');
    }
    b
}

/// At least 5 frames and `VIP1` in frame 1 (agent-side view).
pub fn is_vip(m: &Message<'_>) -> bool {
    m.len() >= 5 && m.frame(1) == VIP1
}

/// A welcome, in either form vipbench accepts.
pub fn is_welcome(m: &Message<'_>) -> bool {
    is_vip(m) && (m.frame(4) == b"welcome" || (m.frame(4) == b"hello" && m.frame(5) == b"welcome"))
}

/// An `error` message from the router.
pub fn is_error(m: &Message<'_>) -> bool {
    is_vip(m) && m.frame(4) == b"error"
}

/// A route/rtt message: at least 6 frames, subsystem `bench`.
pub fn is_bench(m: &Message<'_>) -> bool {
    is_vip(m) && m.len() >= 6 && m.frame(4) == super::consts::SUBSYSTEM
}

/// The printable args of an error (`[93][Protocol not supported]...`), for warnings.
pub fn describe(m: &Message<'_>) -> String {
    let mut s = String::new();
    for i in 5..m.len().min(10) {
        let f = m.frame(i);
        s.push('[');
        s.extend(f.iter().take(40).map(|&c| if (32..127).contains(&c) { c as char } else { '.' }));
        s.push(']');
    }
    s
}

/// Queue `[to, VIP1, "", mid, subsystem, args...]`.
///
/// # Errors
/// As [`Socket::queue`].
pub fn queue_vip(c: &mut Socket, to: &[u8], mid: &[u8], subsystem: &[u8], args: &[&[u8]]) -> Result<(), ClientError> {
    match args {
        [] => c.queue(&[to, VIP1, b"", mid, subsystem]),
        [a] => c.queue(&[to, VIP1, b"", mid, subsystem, a]),
        [a, b] => c.queue(&[to, VIP1, b"", mid, subsystem, a, b]),
        [a, b, d] => c.queue(&[to, VIP1, b"", mid, subsystem, a, b, d]),
        _ => {
            let mut frames: Vec<&[u8]> = vec![to, VIP1, b"", mid, subsystem];
            frames.extend_from_slice(args);
            c.queue(&frames)
        }
    }
}

/// Say `hello` and wait for the welcome until `deadline` (other messages are dropped).
/// `Ok(false)`: no welcome in time.
///
/// # Errors
/// Connection errors.
pub fn hello_wait(c: &mut Socket, deadline: Instant) -> Result<bool, ClientError> {
    queue_vip(c, b"", &fmt_id(b'h', 0), b"hello", &[])?;
    c.flush_until(deadline)?;
    while c.recv_until(deadline)? {
        if is_welcome(&c.message()) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_tag_and_8_hex() {
        assert_eq!(&fmt_id(b'm', 0x1234_abcd), b"m1234abcd");
        assert_eq!(&fmt_id(b'h', 0), b"h00000000");
    }
}
