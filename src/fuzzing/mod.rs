//! Fuzz harnesses (DESIGN.md §2.7 "fuzz" row, §2.9 item 8).
//!
//! Each `fuzz_*` function takes arbitrary bytes and must never panic: a panic is the bug the
//! fuzzer reports. Invariants whose failure would be a real bug are checked with `assert!`.
//! The cargo-fuzz targets in `tests/fuzz/fuzz_targets/` are one-line calls into these
//! functions, and `tests/fuzz_replay.rs` runs every committed corpus file through them on the
//! stable toolchain, so `cargo test` covers the corpus without libFuzzer.
//!
//! This module is test support, not API: it is hidden from the docs and may change at will.
//! It allocates freely; the code under test must not.

use std::collections::VecDeque;
use std::sync::OnceLock;

use crate::auth::store::{AllowEntry, Field, Pattern};
use crate::auth::{
    AuthMode, AuthRequest, AuthStore, Authenticator, Decision, KeyError, KeyText, Location, UserId, decode_key,
    encode_key,
};
use crate::json::{self, JsonError, JsonErrorKind, JsonStr, Kind, Number, NumberKind, SliceWriter, Value};
use crate::limits::{
    Limits, MAX_BUS_BYTES, MAX_COMMAND_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_IDENTITY_BYTES, MAX_PREFIX_BYTES,
};
use crate::stats::Stats;
use crate::vip::SIGNATURE;
use crate::vip::envelope::Envelope;
use crate::vip::peers::{AttachError, PeerId};
use crate::vip::platform::PlatformInfo;
use crate::vip::pubsub::{AUTH_IDENTITY, DeliveryBody};
use crate::vip::router::{CONTROL, Full, OnFull, Outcome, Router, Sink};
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::{FLAG_COMMAND, FrameHeader};
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::curve::{ClientStep, CookieKeys, CurveClient, CurveError, KeyPair, SecretKey, Traffic};
use crate::zmtp::mechanism::{Credentials, Mechanism, plain};
use crate::zmtp::session::{CurveContext, Input, Session, SessionConfig};
use crate::zmtp::{Message, Part, Parts, SessionError, metadata};

// One file per cargo-fuzz target (`tests/fuzz/fuzz_targets/`), plus `decide` (the authorisation
// the session targets share). Each target's entry point `fuzz_*` is `pub` and re-exported here;
// helpers shared between targets are `pub(super)` and reach the siblings through the same globs.
#[cfg(feature = "rabbitmq")]
mod amqp_client;
mod auth_json;
mod command_metadata;
mod decide;
mod decode_key;
mod discovery;
mod frame_stream;
mod greeting_parse;
mod json_scan;
mod links;
mod modular_home;
mod session_curve;
mod session_plain;
mod vip_pubsub;
mod vip_route;

#[cfg(feature = "rabbitmq")]
pub use self::amqp_client::*;
pub use self::auth_json::*;
pub use self::command_metadata::*;
use self::decide::*;
pub use self::decode_key::*;
pub use self::discovery::*;
pub use self::frame_stream::*;
pub use self::greeting_parse::*;
pub use self::json_scan::*;
pub use self::links::*;
pub use self::modular_home::*;
pub use self::session_curve::*;
pub use self::session_plain::*;
use self::vip_pubsub::*;
pub use self::vip_route::*;
