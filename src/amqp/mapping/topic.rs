//! Topics ↔ routing keys, as VOLTTRON's RabbitMQ pubsub converts them
//! (`vip/agent/subsystems/rmq_pubsub.py`: `_form_routing_key`, `_get_original_topic`; memo §5.4).
//!
//! * Publish: `__pubsub__.<instance>.<topic '/'→'.'>.#` — the key ends in a literal `#` word,
//!   `''` gives `__pubsub__.<instance>.#`.
//! * Subscribe (`all_platforms`): bind `__pubsub__.*.<prefix '/'→'.'>.#`.
//! * Receive: topic = `'/'.join(key.split('.')[2:-1])`.
//!
//! Semantic differences from VIP pubsub (documented for operators, README):
//! * AMQP matches whole words: the prefix `devices` matches `devices/x` but not `devicesX/y`
//!   (VIP matches characters).
//! * A `.` inside a topic becomes `/` on the far side; a topic ending in `/` gains an empty
//!   word and does not round-trip.
//! * A subscription prefix ending in `/` is bound without it (VOLTTRON binds `devices..#`,
//!   which matches nothing it publishes): the gateway does better here.
//! * `*` and `#` inside a prefix are AMQP wildcards in a binding.

use super::{MapError, Name};

/// First word of every pubsub routing key.
pub const PUBSUB: &[u8] = b"__pubsub__";

fn push_topic(n: &mut Name, topic: &[u8]) -> Result<(), MapError> {
    for &b in topic {
        n.push(if b == b'/' { b'.' } else { b }).map_err(|_| MapError::NameTooLong)?;
    }
    Ok(())
}

fn key(instance: &[u8], topic: &[u8]) -> Result<Name, MapError> {
    let mut n = Name::new();
    let e = |_| MapError::NameTooLong;
    n.extend_from_slice(PUBSUB).map_err(e)?;
    n.push(b'.').map_err(|_| MapError::NameTooLong)?;
    n.extend_from_slice(instance).map_err(e)?;
    n.push(b'.').map_err(|_| MapError::NameTooLong)?;
    if !topic.is_empty() {
        push_topic(&mut n, topic)?;
        n.push(b'.').map_err(|_| MapError::NameTooLong)?;
    }
    n.push(b'#').map_err(|_| MapError::NameTooLong)?;
    Ok(n)
}

/// The routing key instance `instance` publishes `topic` with.
///
/// # Errors
/// [`MapError::NameTooLong`].
pub fn publish_key(instance: &[u8], topic: &[u8]) -> Result<Name, MapError> {
    key(instance, topic)
}

/// The binding that receives every instance's publishes under `prefix` (`all_platforms`).
/// A trailing `/` is dropped (see the module docs).
///
/// # Errors
/// [`MapError::NameTooLong`].
pub fn subscription_key(prefix: &[u8]) -> Result<Name, MapError> {
    let p = prefix.strip_suffix(b"/").unwrap_or(prefix);
    key(b"*", p)
}

/// The publishing instance and the topic of a pubsub routing key, or `None` when the key is
/// not one (`__pubsub__.<instance>.…`).
pub fn parse_key(rk: &[u8]) -> Option<(&[u8], Name)> {
    let mut words = rk.split(|&b| b == b'.');
    if words.next()? != PUBSUB {
        return None;
    }
    let instance = words.next()?;
    // '/'.join(words[2:-1]): every word after the instance but the last.
    let tail = rk.get(PUBSUB.len() + 1 + instance.len() + 1..).unwrap_or(&[]);
    let topic = match tail.iter().rposition(|&b| b == b'.') {
        Some(i) => tail.get(..i).unwrap_or(&[]),
        None => &[],
    };
    let mut t = Name::new();
    for &b in topic {
        t.push(if b == b'.' { b'/' } else { b }).ok()?;
    }
    Some((instance, t))
}

/// Whether `topic` is under one of the export prefixes (character prefix, as VIP matches).
pub fn exported<S: AsRef<[u8]>>(topic: &[u8], prefixes: &[S]) -> bool {
    prefixes.iter().any(|p| topic.starts_with(p.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of memo §5.4 and E2.
    #[test]
    fn volttron_keys() {
        assert_eq!(&publish_key(b"v1", b"devices/hvac1").unwrap()[..], b"__pubsub__.v1.devices.hvac1.#");
        assert_eq!(&publish_key(b"v1", b"").unwrap()[..], b"__pubsub__.v1.#");
        assert_eq!(&subscription_key(b"devices").unwrap()[..], b"__pubsub__.*.devices.#");
        assert_eq!(&subscription_key(b"devices/").unwrap()[..], b"__pubsub__.*.devices.#");
        assert_eq!(&subscription_key(b"").unwrap()[..], b"__pubsub__.*.#");
        let (i, t) = parse_key(b"__pubsub__.v1.devices.hvac1.#").unwrap();
        assert_eq!((i, &t[..]), (&b"v1"[..], &b"devices/hvac1"[..]));
        let (_, t) = parse_key(b"__pubsub__.v1.#").unwrap();
        assert_eq!(&t[..], b"");
        // '.' in a topic comes back as '/'; a trailing '/' gains an empty word.
        let (_, t) = parse_key(&publish_key(b"v1", b"a.b/c").unwrap()).unwrap();
        assert_eq!(&t[..], b"a/b/c");
        let (_, t) = parse_key(&publish_key(b"v1", b"a/").unwrap()).unwrap();
        assert_eq!(&t[..], b"a/");
        assert_eq!(parse_key(b"v1.agent"), None);
        assert_eq!(parse_key(b"__pubsub__"), None);
        assert!(exported(b"devices/x", &["alerts/", "devices/"]));
        assert!(!exported(b"devicesX", &["devices/"]));
        assert_eq!(publish_key(b"v1", &[b'a'; 250]), Err(MapError::NameTooLong));
    }
}
