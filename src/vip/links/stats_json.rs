//! The `"links"` part of `query stats`.

use super::{Link, Links};
use crate::json::emit::{emit_latin1_str, emit_u64};
use crate::json::{ByteSink, SinkFull, SliceWriter};
use crate::vip::external_pubsub::ExtSubs;

impl Links {
    /// Write `, "links": {"<name>": {"state": …, …}, …}` — the link members of the `query stats`
    /// object ([`crate::vip::router::Router::write_stats_json`]) — leaving `reserve` bytes free
    /// for what the caller writes after them. Nothing when no link is configured; links that do
    /// not fit are counted in `"links_omitted"`.
    ///
    /// # Errors
    /// [`SinkFull`] when even the fixed part does not fit (the caller drops what was written).
    pub fn write_stats_fields(&self, w: &mut SliceWriter<'_>, reserve: usize) -> Result<(), SinkFull> {
        const TAIL_RESERVE: usize = 48; // `}, "links_omitted": <u64>`
        if self.is_empty() {
            return Ok(());
        }
        let room = w.remaining().saturating_sub(reserve);
        let start = w.len();
        let mut one = [0u8; 1024];
        w.put(b", \"links\": {")?;
        let (mut shown, mut omitted) = (0usize, 0u64);
        for s in self.slots.iter() {
            let Some(l) = s.link.as_ref() else { continue };
            let mut e = SliceWriter::new(&mut one);
            if Self::link_json(l, &s.ext, &mut e).is_err() || w.len() - start + e.len() + 2 + TAIL_RESERVE > room {
                omitted += 1;
                continue;
            }
            if shown > 0 {
                w.put(b", ")?;
            }
            w.put(e.written())?;
            shown += 1;
        }
        w.put(b"}")?;
        if omitted > 0 {
            w.put(b", \"links_omitted\": ")?;
            emit_u64(w, omitted)?;
        }
        if w.len() - start > room {
            return Err(SinkFull);
        }
        Ok(())
    }

    /// `"<name>": {"state": "up", …}` of one link.
    fn link_json(l: &Link, ext: &ExtSubs, w: &mut SliceWriter<'_>) -> Result<(), SinkFull> {
        emit_latin1_str(w, &l.config.instance_name)?;
        w.put(b": {\"state\": \"")?;
        w.put(l.state.name().as_bytes())?;
        w.put(b"\", \"address\": ")?;
        emit_latin1_str(w, l.config.vip_address.as_bytes())?;
        let c = &l.counters;
        let fields: [(&str, u64); 10] = [
            ("ups", c.ups),
            ("downs", c.downs),
            ("refused", c.refused),
            ("publishes_out", c.publishes_out),
            ("dropped_down", c.dropped_down),
            ("dropped_full", c.dropped_full),
            ("rpc_out", c.rpc_out),
            ("lists_out", c.lists_out),
            ("msgs_in", c.msgs_in),
            ("remote_prefixes", ext.len() as u64),
        ];
        for (k, v) in fields {
            w.put(b", \"")?;
            w.put(k.as_bytes())?;
            w.put(b"\": ")?;
            emit_u64(w, v)?;
        }
        w.put(b"}")
    }
}
