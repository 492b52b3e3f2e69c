//! The permission engine (SPEC §2): FeatBit-style statements, the resource-name
//! matcher, layered evaluation, the "does the holder cover this grant" rule, the
//! action catalogue and the built-in policies.
//!
//! Everything here is pure: no I/O, no clocks, no global state. Callers load
//! statements from the database and ask questions; this module answers them.

mod builtin;
mod catalogue;
mod eval;
#[cfg(test)]
mod fixtures;
mod layers;
mod rn;
mod statement;

pub use builtin::{
    builtin_policies, BuiltinPolicy, ADMINISTRATOR_POLICY_ID, DEVELOPER_POLICY_ID, OWNER_POLICY_ID,
};
pub use catalogue::{parse_extra_actions, ActionInfo, Catalogue};
pub use eval::statements_allow;
pub use layers::{Exceeds, Layer, Layers};
pub use rn::rn_matches;
pub use statement::{
    validate_statements, Effect, Statement, MAX_ACTIONS_PER_STATEMENT, MAX_RESOURCES_PER_STATEMENT,
    MAX_RN_LEN, MAX_STATEMENTS,
};
