//! Configuring links: from the discovery file and from `keydiscovery` (module doc of
//! [`super`], "Configuration").

use std::fmt::Write as _;

use super::{Link, LinkConfig, LinkCounters, LinkId, LinkState, Links, Slot, Source, next_random};
use crate::limits::{MAX_INSTANCE_NAME_BYTES, MAX_LINK_ADDRESS_BYTES};
use crate::stats::{self, Stats};
use crate::time::Instant;

/// Why a configuration was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigureError {
    /// Every slot is in use (`max-links`).
    TableFull,
    /// The entry names this platform itself (by name or by one of our addresses).
    OwnPlatform,
}

/// This platform's own name and addresses (entries naming them are skipped).
#[derive(Clone, Copy, Debug)]
pub struct OwnPlatform<'a> {
    /// Our `instance-name`.
    pub instance_name: &'a [u8],
    /// Our `query addresses` JSON list.
    pub addresses_json: &'a [u8],
}

impl OwnPlatform<'_> {
    fn is_own(&self, c: &LinkConfig) -> bool {
        if !self.instance_name.is_empty() && c.instance_name == self.instance_name {
            return true;
        }
        match crate::json::parse(self.addresses_json) {
            Ok(v) => v.items().filter_map(|a| a.as_str()).any(|a| a.eq_latin1(c.vip_address.as_bytes())),
            Err(_) => false,
        }
    }
}

impl Links {
    /// A fresh routing id for a link to `name`: `instance.<name>.0.<16 digits>`, the shape of
    /// VOLTTRON's `instance.<name>.<repr(random.random())>`.
    fn make_identity(&mut self, name: &[u8]) -> Vec<u8> {
        let mut id = Vec::with_capacity(9 + name.len() + 19);
        id.extend_from_slice(b"instance.");
        id.extend_from_slice(name);
        let digits = next_random(&mut self.rng) % 10_000_000_000_000_000;
        let mut tail = String::with_capacity(19);
        let _ = write!(tail, ".0.{digits:016}");
        id.extend_from_slice(tail.as_bytes());
        id
    }

    /// Add or update the link for `config` from `source` (a `keydiscovery` message, or one entry
    /// of the discovery file; [`Links::set_file_links`] handles a whole file). Same name with
    /// the same address and key: nothing changes but the source is noted. Otherwise the link is
    /// (re-)created under a new id, to be dialled at once (an old connection is closed first).
    ///
    /// # Errors
    /// [`ConfigureError`]; counted and logged by the caller.
    pub fn configure(
        &mut self,
        config: LinkConfig,
        source: Source,
        own: OwnPlatform<'_>,
    ) -> Result<LinkId, ConfigureError> {
        if own.is_own(&config) {
            return Err(ConfigureError::OwnPlatform);
        }
        let existing = self
            .slots
            .iter()
            .position(|s| s.link.as_ref().is_some_and(|l| l.config.instance_name == config.instance_name));
        if let Some(i) = existing
            && let Some(Slot { link: Some(l), .. }) = self.slots.get_mut(i)
            && l.config == config
        {
            match source {
                Source::File => l.in_file = true,
                Source::Keydiscovery => l.from_keydiscovery = true,
            }
            return Ok(l.id);
        }
        let index = match existing {
            Some(i) => i,
            None => self
                .slots
                .iter()
                .position(|s| s.link.is_none() && s.close_pending.is_none())
                .or_else(|| self.slots.iter().position(|s| s.link.is_none()))
                .ok_or(ConfigureError::TableFull)?,
        };
        let identity = self.make_identity(&config.instance_name);
        let (mut in_file, mut from_keydiscovery) = (source == Source::File, source == Source::Keydiscovery);
        let was_up = {
            let Some(slot) = self.slots.get_mut(index) else { return Err(ConfigureError::TableFull) };
            let mut was_up = false;
            if let Some(old) = slot.link.take() {
                in_file |= old.in_file;
                from_keydiscovery |= old.from_keydiscovery;
                was_up = old.state == LinkState::Up;
                if old.state != LinkState::Down {
                    slot.close_pending = Some(old.id);
                }
                log::info!(
                    "link to {}: re-configured ({} → {}); re-dialling",
                    old.config.instance_name.escape_ascii(),
                    old.config.vip_address,
                    config.vip_address
                );
            } else {
                log::info!("link to {} configured: {}", config.instance_name.escape_ascii(), config.vip_address);
            }
            slot.generation = slot.generation.wrapping_add(1);
            if slot.ext.capacity_bytes() == 0 {
                slot.ext = super::link_arena();
            }
            let id = LinkId { index: u16::try_from(index).unwrap_or(u16::MAX), generation: slot.generation };
            slot.link = Some(Link {
                id,
                config,
                identity,
                state: LinkState::Down,
                counters: LinkCounters::default(),
                in_file,
                from_keydiscovery,
                dial_pending: true,
                retry_at: Instant(0),
                failures: 0,
                list_owed: false,
                welcome_owed: false,
                hello_from: None,
                last_down: None,
            });
            was_up
        };
        if was_up {
            self.up -= 1;
        }
        let id = self.slots.get(index).and_then(|s| s.link.as_ref()).map(|l| l.id);
        id.ok_or(ConfigureError::TableFull)
    }

    /// Apply the content of the discovery file: every entry is configured ([`Links::configure`]
    /// with [`Source::File`]), and a link that came from the file only and is no longer in it is
    /// removed. Problems are counted and logged; the other entries still apply.
    pub fn set_file_links(&mut self, configs: &[LinkConfig], own: OwnPlatform<'_>, stats: &mut Stats) {
        for s in self.slots.iter_mut() {
            if let Some(l) = s.link.as_mut() {
                l.in_file = false;
            }
        }
        for c in configs {
            self.configure_logged(c.clone(), Source::File, own, stats);
        }
        let stale: Vec<LinkId> = self.iter().filter(|l| !l.in_file && !l.from_keydiscovery).map(|l| l.id).collect();
        for id in stale {
            self.remove(id);
        }
    }

    /// [`Links::configure`], counting and logging a refusal.
    pub fn configure_logged(&mut self, c: LinkConfig, source: Source, own: OwnPlatform<'_>, stats: &mut Stats) {
        let name = c.instance_name.escape_ascii().to_string();
        match self.configure(c, source, own) {
            Ok(_) => {}
            Err(ConfigureError::OwnPlatform) => {
                log::info!("discovery entry {name:?} names this platform itself: skipped");
            }
            Err(ConfigureError::TableFull) => {
                if stats::bump_and_should_log(&mut stats.rejected_link_table_full) {
                    log::warn!("no link to {name:?}: the link table is full (max-links)");
                }
            }
        }
    }

    /// Remove link `id`: its connection (if any) is closed, its remote subscriptions go.
    pub fn remove(&mut self, id: LinkId) {
        let Some(slot) = self.slots.get_mut(usize::from(id.index)) else { return };
        let Some(l) = slot.link.take_if(|l| l.id == id) else { return };
        log::info!("link to {} removed", l.config.instance_name.escape_ascii());
        if l.state != LinkState::Down {
            slot.close_pending = Some(l.id);
        }
        slot.generation = slot.generation.wrapping_add(1);
        if !slot.ext.is_empty() {
            self.with_subs -= 1;
        }
        slot.ext.clear();
        if l.state == LinkState::Up {
            self.up -= 1;
        }
    }
}

/// Is `name` usable as an instance name (non-empty, short enough for a link routing id)?
pub fn valid_instance_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_INSTANCE_NAME_BYTES
}

/// Is `address` a dialable vip-address (`tcp://…` or `ipc://…`, short enough)?
pub fn valid_link_address(address: &str) -> bool {
    address.len() <= MAX_LINK_ADDRESS_BYTES
        && (address.strip_prefix("tcp://").is_some_and(|r| !r.is_empty())
            || address.strip_prefix("ipc://").is_some_and(|r| !r.is_empty()))
}
