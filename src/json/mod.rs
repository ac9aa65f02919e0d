//! The JSON dialect the router reads and writes (VIP.md §3.8), without a tree and without allocating.
//!
//! The router parses exactly the JSON bodies of the `pubsub` operations (VIP.md §7) and rewrites
//! exactly one of them, the `publish` body, into the delivery body of VIP.md §7.6. Everything else is
//! forwarded byte for byte (VIP.md §3.7), so this module is deliberately small:
//!
//! * [`scan`] validates a frame once ([`parse`]) and then hands out borrowed, `Copy` views
//!   ([`Value`], [`JsonStr`]) that navigate the validated bytes: look up a key (last duplicate wins),
//!   iterate members or items, read strings, booleans, `null` and numbers (as raw text).
//! * [`emit`] writes JSON the way Python's `json.dumps` does with its defaults: ASCII only
//!   (`\uXXXX`, surrogate pairs above U+FFFF), separators `", "` and `": "`, key order kept,
//!   `NaN`/`Infinity`/`-Infinity` passed through, numbers in Python's canonical form. It measures
//!   exactly ([`emit::emitted_len`]) so the caller can reserve before writing.
//! * The validating pass also notes whether the document and the members [`parse_picking`]
//!   returns are already in that form ([`Value::in_python_form`], a conservative test): the
//!   emitter copies such a value instead of re-writing it — a `publish` from a Python agent is
//!   `json.dumps` output, so its delivery body is mostly copied.
//!
//! # Contract (VIP.md §3.8)
//!
//! * Input bytes are latin-1: each byte is one character U+0000–U+00FF, as Python decodes a frame
//!   before `json.loads`. Raw bytes ≥ 0x80 are therefore legal inside strings (they are the
//!   characters U+0080–U+00FF) and illegal outside them. No UTF-8 decoding happens anywhere.
//! * Accepted grammar = Python's `json.loads` with its defaults: RFC 8259 plus `NaN`, `Infinity`,
//!   `-Infinity`; integers of any length; whitespace is only space, tab, CR, LF; control characters
//!   (< 0x20) inside strings are rejected (`strict=True`); lone surrogate escapes are accepted and
//!   kept as code points; `\uD83D\uDE00` pairs are combined.
//! * Duplicate object keys: lookups return the **last** one, as a Python dict does.
//! * Nesting is bounded by [`MAX_DEPTH`]; deeper input is rejected with [`JsonErrorKind::TooDeep`].
//!   The size of a document is bounded only by the frame that holds it: nothing in this module grows
//!   with the input, all work is O(input) per pass and uses a stack bounded by [`MAX_DEPTH`].
//! * Comparing a JSON string with a frame (topic, identity, bus) is done under latin-1 semantics:
//!   a decoded character above U+00FF never equals a byte ([`JsonStr::eq_latin1`]).
//! * Malformed input is an `Err` carrying the byte position; nothing here panics on any input.
//!
//! Not reproduced from Python (documented deviations, all invisible to Python receivers, which
//! re-parse): re-emitting an object that contains duplicate keys keeps every member in input order
//! instead of collapsing them (collapsing needs either allocation or quadratic time; `json.loads`
//! of our output yields the same dict as `json.loads` of Python's); integers longer than Python's
//! `int` string limit (4300 digits) are accepted and copied verbatim.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::cast_possible_truncation))]

pub(crate) mod ascii;
pub mod emit;
pub mod scan;

pub use emit::{ByteSink, LenCounter, SinkFull, SliceWriter};
pub use scan::{
    Items, JsonError, JsonErrorKind, JsonStr, Kind, Latin1Error, Members, Number, NumberKind, StrChars, Value, parse,
    parse_picking,
};

/// Maximum nesting depth of arrays and objects accepted by [`parse`] (the top-level container is
/// depth 1). VOLTTRON payloads rarely exceed 5; this bounds the validator's and emitter's recursion.
pub const MAX_DEPTH: usize = 32;
