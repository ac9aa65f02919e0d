//! The `"rabbitmq"` part of `query stats`: the bridge's state (its counters are `amqp_*` among
//! the router's counters).

use super::{Bridge, BusStatus};
use crate::json::emit::{emit_latin1_str, emit_u64};
use crate::json::{ByteSink, SinkFull, SliceWriter};

impl Bridge {
    /// Write `, "rabbitmq": {"state": …, …}` (nothing when the bridge is off), with `bus` the
    /// connection's status when one exists.
    ///
    /// # Errors
    /// [`SinkFull`] (the caller drops what was written).
    pub fn write_stats_fields(&self, bus: Option<BusStatus>, w: &mut SliceWriter<'_>) -> Result<(), SinkFull> {
        if !self.is_on() {
            return Ok(());
        }
        let bus = bus.unwrap_or_default();
        w.put(b", \"rabbitmq\": {\"state\": \"")?;
        w.put(self.state.name().as_bytes())?;
        w.put(b"\", \"broker\": ")?;
        emit_latin1_str(w, self.address.as_bytes())?;
        w.put(b", \"last_down\": ")?;
        match self.last_down {
            Some(r) => emit_latin1_str(w, r.text().as_bytes())?,
            None => w.put(b"null")?,
        }
        w.put(b", \"blocked\": ")?;
        w.put(if bus.blocked { b"true" } else { b"false" })?;
        let fields: [(&str, u64); 6] = [
            ("ups", self.ups),
            ("downs", self.downs),
            ("unconfirmed", bus.unconfirmed as u64),
            ("bindings", bus.bindings as u64),
            ("bound", bus.bound as u64),
            ("all_platforms_prefixes", self.prefixes.len() as u64),
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
