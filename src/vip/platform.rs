//! What the router says about its platform: the `hello` router id and the `query` values
//! (VIP.md §5.1, §5.4, §14.2). Built once at start-up from the configuration.

/// Platform facts answered by `hello` and `query`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformInfo {
    /// The router's routing id, reported in `hello` (VOLTTRON: a fresh uuid4 text per start).
    pub router_id: Vec<u8>,
    /// `query instance-name`.
    pub instance_name: Vec<u8>,
    /// `query addresses`: JSON list of the bound vip-addresses (the local address if none).
    pub addresses_json: Vec<u8>,
    /// `query local_address`: the ipc endpoint, e.g. `ipc://@/home/pi/.volttron/run/vip.socket`.
    pub local_address: Vec<u8>,
    /// `query serverkey`: platform public key, 43-char URL-safe base64 (empty without auth).
    pub serverkey: Vec<u8>,
    /// `query platform-version` (the VOLTTRON version emulated).
    pub platform_version: Vec<u8>,
    /// `query message-bus`.
    pub message_bus: Vec<u8>,
    /// `query agent-monitor-frequency`: packed u32 LE 600 by default, or the config text.
    pub agent_monitor_frequency: Vec<u8>,
    /// `query volttron-central-address`.
    pub volttron_central_address: Vec<u8>,
    /// `query volttron-central-serverkey`.
    pub volttron_central_serverkey: Vec<u8>,
    /// `query bind-web-address`.
    pub bind_web_address: Vec<u8>,
}

impl PlatformInfo {
    /// Defaults of VIP.md §14.3 with the given router id.
    pub fn with_router_id(router_id: &[u8]) -> PlatformInfo {
        PlatformInfo {
            router_id: router_id.to_vec(),
            platform_version: b"9.0.4".to_vec(),
            message_bus: b"zmq".to_vec(),
            agent_monitor_frequency: 600u32.to_le_bytes().to_vec(),
            ..PlatformInfo::default()
        }
    }

    /// The value of a static `query` key, `None` for keys answered elsewhere or unknown.
    pub fn query(&self, key: &[u8]) -> Option<&[u8]> {
        Some(match key {
            b"addresses" => &self.addresses_json,
            b"local_address" => &self.local_address,
            b"serverkey" => &self.serverkey,
            b"instance-name" => &self.instance_name,
            b"platform-version" => &self.platform_version,
            b"message-bus" => &self.message_bus,
            b"agent-monitor-frequency" => &self.agent_monitor_frequency,
            b"volttron-central-address" => &self.volttron_central_address,
            b"volttron-central-serverkey" => &self.volttron_central_serverkey,
            b"bind-web-address" => &self.bind_web_address,
            _ => return None,
        })
    }
}
