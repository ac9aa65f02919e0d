//! list (VIP.md §7.7): `list_response` rows `[bus, prefix, member]` filtered as VOLTTRON does.

use super::*;

/// Does `bytes` (latin-1) start with the decoded string `p`?
fn bytes_start_with(bytes: &[u8], p: JsonStr<'_>) -> bool {
    let mut it = bytes.iter();
    p.chars().all(|c| it.next().is_some_and(|&b| u32::from(b) == c))
}

/// Does the decoded string `p` start with `bytes` (latin-1)?
fn str_starts_with(p: JsonStr<'_>, bytes: &[u8]) -> bool {
    let mut chars = p.chars();
    bytes.iter().all(|&b| chars.next() == Some(u32::from(b)))
}

impl PubSub {
    /// VIP.md §7.7.
    pub(super) fn list(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        requester: &[u8],
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> Outcome {
        self.text.clear();
        self.text.push(b'[');
        self.list_rows(from, env, requester, stats);
        self.text.push(b']');
        let frames: [&[u8]; 7] = [b"", SIGNATURE, requester, env.msg_id, b"pubsub", b"list_response", &self.text];
        let outcome = Router::reply(stats, sink, from, &frames);
        if self.text.capacity() > SCRATCH_KEEP_BYTES {
            self.text = Vec::new();
        }
        outcome
    }

    fn list_rows(&mut self, from: PeerId, env: &Envelope<'_>, requester: &[u8], stats: &mut Stats) {
        const OP: &str = "list";
        let Some(body) = env.get_arg(1) else { return };
        let v = match json::parse(body) {
            Ok(v) if v.kind() == Kind::Object => v,
            _ => {
                malformed(stats, requester, OP, "body is not a JSON object");
                return;
            }
        };
        let (Some(prefix), Some(bus), Some(subscribed), Some(reverse)) =
            (v.get(b"prefix"), v.get(b"bus"), v.get(b"subscribed"), v.get(b"reverse"))
        else {
            malformed(stats, requester, OP, "missing \"prefix\", \"bus\", \"subscribed\" or \"reverse\"");
            return;
        };
        let Some(prefix) = prefix.as_str() else {
            malformed(stats, requester, OP, "\"prefix\" is not a string");
            return;
        };
        let all = v.get(b"all_platforms").is_some_and(truthy);
        let (subscribed, reverse) = (truthy(subscribed), truthy(reverse));
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus: Option<&[u8]> = match bus.kind() {
            Kind::Null => None,
            Kind::String => match bus.as_str().map(|b| b.to_latin1(&mut bus_buf)) {
                Some(Ok(b)) => Some(b),
                _ => return, // no stored bus can equal it
            },
            _ => return, // Python looks up a bus that cannot exist: no rows
        };
        let PubSub { subs, text, .. } = self;
        let mut first = true;
        let mut truncated = false;
        subs.for_each_prefix(all, Some(from.0), |b, p, member| {
            if bus.is_some_and(|want| !crate::bytes::eq(want, b)) || (subscribed && !member) {
                return;
            }
            let hit = if reverse { str_starts_with(prefix, p) } else { bytes_start_with(p, prefix) };
            if !hit {
                return;
            }
            if text.len() > MAX_LIST_REPLY_BYTES {
                truncated = true;
                return;
            }
            if !first {
                text.extend_from_slice(b", ");
            }
            first = false;
            text.push(b'[');
            let _ = json::emit::emit_latin1_str(text, b);
            text.extend_from_slice(b", ");
            let _ = json::emit::emit_latin1_str(text, p);
            text.extend_from_slice(if member { b", true]" } else { b", false]" });
        });
        if truncated {
            log::warn!("pubsub list for {}: reply truncated at {MAX_LIST_REPLY_BYTES} bytes", requester.escape_ascii());
        }
    }
}
