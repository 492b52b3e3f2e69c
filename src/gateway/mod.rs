//! What gateways and outside systems ask of tokengate besides verification itself: route rules
//! for forward auth, and GitHub's secret-scanning reports. Pure: no I/O.

pub mod rules;
pub mod secret_scanning;

use std::sync::Arc;

/// What the integrations are configured with; nothing by default.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// `TOKENGATE_ROUTE_RULES`: forward auth's route rules.
    pub route_rules: Option<Arc<rules::RouteRules>>,
    /// `TOKENGATE_SECRET_SCANNING_KEYS_FILE`: GitHub's secret-scanning public keys.
    pub scanning_keys: Option<Arc<secret_scanning::ScanningKeys>>,
}
