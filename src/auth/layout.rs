//! Which VOLTTRON wrote `$VOLTTRON_HOME`, and the platform identities of each.
//!
//! * **VOLTTRON 9** (VIP.md §9, §14.1): `keystore`, `known_hosts`, `auth.json`,
//!   `protected_topics.json`; the control service is `control`.
//! * **Modular VOLTTRON** (volttron 11 / volttron-core 2.x; research memo
//!   `shared/research/modular-volttron.md` §1.6): `credentials_store/<identity>.json` holds every
//!   key pair, `credentials_store/platform.json` the server pair, `authz.json` the authorisation;
//!   the control service is `platform.control` (`volttron/client/known_identities.py`).
//!
//! The layout is modular exactly when `credentials_store/platform.json` exists (modular's
//! platform writes it on first start, and every modular client reads it for the server key). It
//! is decided once, at start: a home does not change VOLTTRON under a running router.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::path::{Path, PathBuf};

/// The credential directory of a modular home.
pub const CREDENTIALS_DIR: &str = "credentials_store";
/// The server key pair of a modular home, inside [`CREDENTIALS_DIR`].
pub const PLATFORM_CREDENTIALS: &str = "platform.json";
/// Modular's authorisation file (protected topics, pubsub capabilities).
pub const AUTHZ_FILE: &str = "authz.json";

/// VOLTTRON 9's control identity: may `quit` the router and `agentstop` other peers (VIP.md
/// §5.6, §5.7).
pub const CONTROL_V9: &[u8] = b"control";
/// Modular VOLTTRON's control identity (`known_identities.CONTROL`); its router honours `quit`
/// only from it (`messagebus/zmq/router/router.py:285`).
pub const CONTROL_MODULAR: &[u8] = b"platform.control";

/// The identities modular VOLTTRON's `platform.auth` creates credentials for on first start
/// (`volttron/auth/auth_service.py`, `volttron_services`; `platform.web` only with the web
/// service). Informational: in the modular layout every credential file is admitted alike.
pub const MODULAR_SERVICES: [&str; 8] = [
    "platform",
    "platform.auth",
    "platform.config_store",
    "platform.control",
    "platform.health",
    "platform.federation",
    "control.connection",
    "platform.web",
];

/// The two layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// VOLTTRON 9.x.
    V9,
    /// Modular VOLTTRON (volttron 11 / volttron-core 2.x).
    Modular,
}

impl Layout {
    /// The layout of `home` (see the module doc).
    #[must_use]
    pub fn detect(home: &Path) -> Layout {
        if platform_credentials_path(home).is_file() { Layout::Modular } else { Layout::V9 }
    }

    /// The identity that may `quit` the router and `agentstop` others.
    #[must_use]
    pub fn control_identity(self) -> &'static [u8] {
        match self {
            Layout::V9 => CONTROL_V9,
            Layout::Modular => CONTROL_MODULAR,
        }
    }

    /// A short name for logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Layout::V9 => "VOLTTRON 9 (keystore, auth.json)",
            Layout::Modular => "modular VOLTTRON (credentials_store, authz.json)",
        }
    }
}

/// `$VOLTTRON_HOME/credentials_store`.
#[must_use]
pub fn credentials_dir(home: &Path) -> PathBuf {
    home.join(CREDENTIALS_DIR)
}

/// `$VOLTTRON_HOME/credentials_store/platform.json`.
#[must_use]
pub fn platform_credentials_path(home: &Path) -> PathBuf {
    credentials_dir(home).join(PLATFORM_CREDENTIALS)
}

/// `$VOLTTRON_HOME/authz.json`.
#[must_use]
pub fn authz_path(home: &Path) -> PathBuf {
    home.join(AUTHZ_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_by_platform_json() {
        let dir = std::env::temp_dir().join(format!("viprouter-layout-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(CREDENTIALS_DIR)).unwrap();
        assert_eq!(Layout::detect(&dir), Layout::V9);
        std::fs::write(dir.join(CREDENTIALS_DIR).join("agent.json"), b"{}").unwrap();
        assert_eq!(Layout::detect(&dir), Layout::V9, "another credential file is not enough");
        std::fs::write(platform_credentials_path(&dir), b"{}").unwrap();
        assert_eq!(Layout::detect(&dir), Layout::Modular);
        assert_eq!(Layout::Modular.control_identity(), b"platform.control");
        assert_eq!(Layout::V9.control_identity(), b"control");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
