//! Room signalling: the seed-compatible `{type, from, to, data}` protocol over WebSocket.
//! (Placeholder until the relay lands.)

pub mod session;

use std::sync::Arc;

use crate::config::RoomsConfig;

/// Gives each joining member the `iceServers` for its `joined` message.
pub trait IceProvider: Send + Sync {
    /// An `RTCIceServer[]` JSON array with credentials for this session.
    fn ice_servers(&self, session: &str) -> serde_json::Value;
}

/// Every room and every connected session.
pub struct Hub {
    pub(crate) config: RoomsConfig,
    pub(crate) ice: Arc<dyn IceProvider>,
}

impl Hub {
    pub fn new(config: &RoomsConfig, ice: Arc<dyn IceProvider>) -> Arc<Hub> {
        Arc::new(Hub {
            config: config.clone(),
            ice,
        })
    }
}
