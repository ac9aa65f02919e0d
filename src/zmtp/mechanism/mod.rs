//! Security mechanisms (ZMTP.md §5 NULL, §6 PLAIN, §7 CURVE).
//!
//! The mechanism of an endpoint is fixed when it is bound; the peer's greeting must name the
//! same one byte-for-byte over 20 bytes (libzmq `memcmp`), otherwise the connection is closed
//! without an ERROR, as libzmq does (ZMTP.md §2.2 item 4).

pub mod curve;
pub mod plain;

/// What a peer proved in the handshake, for the authorisation decision (ZMTP.md §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// NULL: nothing.
    Null,
    /// PLAIN: user name and password.
    Plain {
        /// User name.
        user: &'a [u8],
        /// Password.
        password: &'a [u8],
    },
    /// CURVE: the client's long-term public key.
    Curve(&'a [u8; 32]),
}

/// A ZMTP security mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// No security (ZMTP.md §5).
    Null,
    /// Clear-text user name and password (ZMTP.md §6).
    Plain,
    /// CurveZMQ (ZMTP.md §7).
    Curve,
}

impl Mechanism {
    /// The 20-byte, NUL-padded greeting field.
    pub fn wire_name(self) -> [u8; 20] {
        let name: &[u8] = match self {
            Mechanism::Null => b"NULL",
            Mechanism::Plain => b"PLAIN",
            Mechanism::Curve => b"CURVE",
        };
        let mut f = [0u8; 20];
        for (d, s) in f.iter_mut().zip(name) {
            *d = *s;
        }
        f
    }

    /// The mechanism a greeting field names, if we know it.
    pub fn from_wire(field: &[u8; 20]) -> Option<Mechanism> {
        [Mechanism::Null, Mechanism::Plain, Mechanism::Curve].into_iter().find(|m| m.wire_name() == *field)
    }

    /// Name as printed in logs and ZAP requests.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL",
            Mechanism::Plain => "PLAIN",
            Mechanism::Curve => "CURVE",
        }
    }
}
