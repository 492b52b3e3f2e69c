//! What gateways and outside systems ask of tokengate besides verification itself: route rules
//! for forward auth, and GitHub's secret-scanning reports. Pure: no I/O.

pub mod rules;
pub mod secret_scanning;
