//! The `allow` entries VOLTTRON's platform adds on every start (VIP.md §9.7,
//! `volttron/platform/main.py`, `aip.py`).
//!
//! The Python platform writes these into `auth.json` with `AuthFile.add(entry,
//! overwrite=True)` before serving. A standalone router can (a) add them in memory with
//! [`super::AuthStore::upsert`] after each load, or (b) write [`AutoEntry::to_json`] into the
//! file for the `platform.auth` agent to see too; which one is the caller's decision. Each
//! built-in service authenticates with its own key (from
//! `$VOLTTRON_HOME/keystores/<identity>/keystore.json`); the `platform` entry uses the router's
//! own key (`$VOLTTRON_HOME/keystore`).

use super::keys::KeyText;
use crate::json::emit::push_str;
use crate::zmtp::mechanism::curve::keys::PublicKey;

/// The `comments` VOLTTRON writes on these entries.
pub const AUTO_COMMENT: &str = "Automatically added by platform on start";

/// A capability of an auto-added entry: a name, optionally with the `identity` argument that
/// `edit_config_store` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoCapability {
    /// Capability name.
    pub name: &'static str,
    /// `{"identity": …}` argument (a value or a `/regex/`), if any.
    pub identity_arg: Option<String>,
}

/// One entry the platform adds on start: CURVE, any domain, any address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoEntry {
    /// `user_id`.
    pub user_id: String,
    /// `identity` (`None` for the platform's own entry).
    pub identity: Option<String>,
    /// The public key, VOLTTRON form.
    pub credentials: KeyText,
    /// Capabilities.
    pub capabilities: Vec<AutoCapability>,
    /// `comments`.
    pub comments: &'static str,
}

const ANY: &str = "/.*/";

impl AutoCapability {
    /// The argument as JSON text: `null`, or `{"identity": …}`.
    #[must_use]
    pub fn arg_json(&self) -> String {
        match &self.identity_arg {
            None => "null".to_owned(),
            Some(arg) => {
                let mut s = String::from("{\"identity\": ");
                push_str(&mut s, arg);
                s.push('}');
                s
            }
        }
    }
}

fn edit_config_store(identity: &str) -> AutoCapability {
    AutoCapability { name: "edit_config_store", identity_arg: Some(identity.to_owned()) }
}

fn plain(name: &'static str) -> AutoCapability {
    AutoCapability { name, identity_arg: None }
}

/// The capabilities VIP.md §9.7 lists for `identity` (an installed agent if not a built-in).
fn capabilities_of(identity: &str) -> Vec<AutoCapability> {
    match identity {
        "control.connection" | "control" => {
            vec![edit_config_store(ANY), plain("modify_rpc_method_allowance"), plain("allow_auth_modifications")]
        }
        "config.store" => vec![plain("sync_agent_config")],
        "platform.auth" => vec![plain("modify_rpc_method_allowance")],
        "keydiscovery" | "platform.health" | "aip" => Vec::new(),
        "platform_web" => vec![plain("allow_auth_modifications")],
        "platform.agent" => vec![edit_config_store(ANY)],
        agent => vec![edit_config_store(agent)],
    }
}

/// The entries of VIP.md §9.7: `platform` for the router's own key, then one per
/// `(identity, key)` in `services` (built-in services and installed agents; `user_id` =
/// `identity`), with the capabilities of the §9.7 table.
#[must_use]
pub fn auto_entries(platform: &PublicKey, services: &[(&str, PublicKey)]) -> Vec<AutoEntry> {
    let mut out = Vec::with_capacity(services.len() + 1);
    out.push(AutoEntry {
        user_id: "platform".to_owned(),
        identity: None,
        credentials: KeyText::new(&platform.0),
        capabilities: vec![edit_config_store(ANY)],
        comments: AUTO_COMMENT,
    });
    for (identity, key) in services {
        out.push(AutoEntry {
            user_id: (*identity).to_owned(),
            identity: Some((*identity).to_owned()),
            credentials: KeyText::new(&key.0),
            capabilities: capabilities_of(identity),
            comments: AUTO_COMMENT,
        });
    }
    out
}

impl AutoEntry {
    /// The entry as VOLTTRON 9.0.4 writes it in `auth.json` (VIP.md §9.5 ENTRY, same key order,
    /// one line).
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"domain\": null, \"address\": null, \"mechanism\": \"CURVE\", \"credentials\": ");
        push_str(&mut s, self.credentials.as_str());
        s.push_str(", \"groups\": [], \"roles\": [], \"capabilities\": {");
        for (i, c) in self.capabilities.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            push_str(&mut s, c.name);
            s.push_str(": ");
            s.push_str(&c.arg_json());
        }
        s.push_str("}, \"rpc_method_authorizations\": {}, \"comments\": ");
        push_str(&mut s, self.comments);
        s.push_str(", \"user_id\": ");
        push_str(&mut s, &self.user_id);
        s.push_str(", \"identity\": ");
        match &self.identity {
            None => s.push_str("null"),
            Some(id) => push_str(&mut s, id),
        }
        s.push_str(", \"enabled\": true}");
        s
    }
}
