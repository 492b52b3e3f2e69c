//! Cache invalidation, in one place (SPEC §7): what a write changed (`Invalidation`), how it
//! reaches every replica (a `NOTIFY` in the writing transaction), how a replica's own caches
//! drop it before the response is sent (`commit_invalidating`), and how the other replicas hear
//! it (`listen`).
//!
//! While the `LISTEN` connection is down the caches are bypassed; when it is back they restart
//! empty, since messages may have been missed. A connection can also die without saying so: a
//! frozen proxy, a NAT entry dropped, a peer gone without FIN or RST (half-open TCP). Nothing
//! then arrives, which looks exactly like a quiet system. So the listener asks its own
//! connection a question every `PROBE_EVERY`; no answer within `PROBE_TIMEOUT` counts as a drop
//! (SPEC §7: detected within 5 s). The same probe refuses a server in recovery (a standby after a
//! failover, which never sees the primary's NOTIFYs).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::cache::Caches;

/// The channel every replica listens on.
pub const CHANNEL: &str = "tokengate_invalidation";

/// What a write changed, as sent between replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// A token's status, name, secret or existence.
    Token(Uuid),
    /// Anything in an organization: its tokens and live permissions (sent for a change too wide
    /// to name its members; older replicas also send it for every IAM change).
    Organization(Uuid),
    /// These members' live permissions in an organization changed (a policy edited, a policy
    /// or group link, a group membership): only their entries are dropped.
    Members(Uuid, Vec<Uuid>),
    /// A membership began or ended: the member's live permissions there and their sessions
    /// (a removal also names the personal tokens it deactivated, as `Token`s).
    Membership(Uuid, Uuid),
    /// A person's sessions (logout, password change).
    Sessions(Uuid),
    /// Everything (the listener reconnected and may have missed messages).
    All,
}

/// `<uuid>:<rest>`.
fn split_id(payload: &str) -> Option<(Uuid, &str)> {
    let (first, rest) = payload.split_once(':')?;
    Some((first.parse().ok()?, rest))
}

/// Members named per `NOTIFY` (PostgreSQL caps a payload below 8,000 bytes; 37 bytes a member).
const MEMBERS_PER_PAYLOAD: usize = 200;
/// Beyond this many members, one organization-wide message replaces the list.
const MAX_NAMED_MEMBERS: usize = 100_000;

impl Invalidation {
    /// The members whose live permissions changed; organization-wide when they are too many.
    pub fn members(organization_id: Uuid, users: Vec<Uuid>) -> Invalidation {
        if users.len() > MAX_NAMED_MEMBERS {
            Invalidation::Organization(organization_id)
        } else {
            Invalidation::Members(organization_id, users)
        }
    }

    /// What to `NOTIFY`: one payload, or a long member list in parts.
    pub fn payloads(&self) -> Vec<String> {
        match self {
            Invalidation::Token(id) => vec![format!("t:{id}")],
            Invalidation::Organization(id) => vec![format!("o:{id}")],
            Invalidation::Members(org, users) => users
                .chunks(MEMBERS_PER_PAYLOAD)
                .map(|part| {
                    let ids: Vec<String> = part.iter().map(Uuid::to_string).collect();
                    format!("m:{org}:{}", ids.join(","))
                })
                .collect(),
            Invalidation::Membership(org, user) => vec![format!("r:{org}:{user}")],
            Invalidation::Sessions(user) => vec![format!("s:{user}")],
            Invalidation::All => vec!["*".to_owned()],
        }
    }

    /// Unknown payloads mean "everything": a newer replica may speak a richer language.
    pub fn parse(payload: &str) -> Invalidation {
        let parsed = match payload.split_once(':') {
            Some(("t", id)) => id.parse().ok().map(Invalidation::Token),
            Some(("o", id)) => id.parse().ok().map(Invalidation::Organization),
            Some(("s", id)) => id.parse().ok().map(Invalidation::Sessions),
            Some(("r", rest)) => split_id(rest)
                .and_then(|(org, user)| Some(Invalidation::Membership(org, user.parse().ok()?))),
            Some(("m", rest)) => split_id(rest).and_then(|(org, list)| {
                let users: Result<Vec<Uuid>, _> = list.split(',').map(str::parse).collect();
                Some(Invalidation::Members(org, users.ok()?))
            }),
            _ => None,
        };
        parsed.unwrap_or(Invalidation::All)
    }

    /// Drops every cached entry the change can affect.
    pub fn apply(&self, caches: &Caches) {
        match self {
            Invalidation::Token(id) => caches.drop_token(*id),
            Invalidation::Organization(org) => caches.drop_organization(*org),
            Invalidation::Members(org, users) => caches.drop_members(*org, users),
            Invalidation::Membership(org, user) => caches.drop_membership(*org, *user),
            Invalidation::Sessions(user) => caches.drop_sessions(*user),
            Invalidation::All => caches.clear(),
        }
    }
}

/// Commits `tx` after queuing the NOTIFYs for the other replicas (PostgreSQL delivers them when
/// the transaction commits, and never if it does not), then drops this process's entries: all
/// before the handler answers, so the next request sees the change.
pub async fn commit_invalidating(
    caches: &Caches,
    tx: Transaction<'_, Postgres>,
    what: Invalidation,
) -> sqlx::Result<()> {
    commit_invalidating_all(caches, tx, vec![what]).await
}

/// `commit_invalidating` for a write that changed several things.
pub async fn commit_invalidating_all(
    caches: &Caches,
    mut tx: Transaction<'_, Postgres>,
    changes: Vec<Invalidation>,
) -> sqlx::Result<()> {
    for payload in changes.iter().flat_map(Invalidation::payloads) {
        sqlx::query!("select pg_notify($1, $2)", CHANNEL, payload)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    for what in &changes {
        what.apply(caches);
    }
    Ok(())
}

/// How often the listener checks that its connection still answers.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long an answer may take before the connection counts as dropped.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest wait between two attempts to connect the listener: while it is down the caches
/// are bypassed (every verification reads the database), so it is back soon after the database.
pub const RETRY_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Listens until the process ends, on connections of its own made from `options` (kept apart
/// from the request pool, and from transaction-pooling proxies, which cannot carry `LISTEN`).
pub async fn listen(options: PgConnectOptions, caches: Arc<Caches>) {
    let mut delay = Duration::from_millis(200);
    loop {
        // A pool per connection: a connection given up as silent is dropped, and sqlx's
        // goodbye on it (UNLISTEN) may hang as long as the link does; it must not hold the
        // slot the next connection needs.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        match connect(&pool).await {
            Ok(mut listener) => {
                let connected_at = std::time::Instant::now();
                caches.set_enabled(true);
                tracing::info!("cache invalidation listener connected; caches enabled");
                delay = Duration::from_millis(200);
                let why = apply_notifications(&mut listener, &caches).await;
                caches.set_enabled(false);
                tracing::warn!(
                    reason = why,
                    "cache invalidation listener lost; caches bypassed"
                );
                // Try again at once after a long-lived connection (the caches stay bypassed
                // until we are back); back off if connections keep dying young.
                if connected_at.elapsed() > Duration::from_secs(1) {
                    continue;
                }
            }
            Err(e) => {
                caches.set_enabled(false);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                    "cannot connect the cache invalidation listener; caches bypassed");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_AT_MOST_EVERY);
    }
}

/// Applies notifications until the connection is lost, fails, or stops answering its probe;
/// returns which.
async fn apply_notifications(listener: &mut PgListener, caches: &Caches) -> &'static str {
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    probe.tick().await;
    loop {
        // `try_recv` is cancel-safe, so the timer may interrupt it.
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    Invalidation::parse(notification.payload()).apply(caches);
                }
                Ok(None) => return "connection lost",
                Err(_) => return "connection failed",
            },
            _ = probe.tick() => {
                match tokio::time::timeout(PROBE_TIMEOUT, in_recovery(listener)).await {
                    Ok(Ok(false)) => {}
                    Ok(Ok(true)) => return "the server is a standby in recovery",
                    Ok(Err(_)) => return "probe failed",
                    Err(_) => return "probe unanswered (connection silent)",
                }
                // Notifications that came in while the probe ran were buffered.
                while let Some(notification) = listener.next_buffered() {
                    Invalidation::parse(notification.payload()).apply(caches);
                }
            }
        }
    }
}

async fn in_recovery(listener: &mut PgListener) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"select pg_is_in_recovery() as "in_recovery!""#)
        .fetch_one(listener)
        .await
}

async fn connect(pool: &PgPool) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // We reconnect ourselves, so that the caches are known to be bypassed in between.
    listener.eager_reconnect(false);
    if in_recovery(&mut listener).await? {
        anyhow::bail!("the server is a standby in recovery: its NOTIFYs are not the primary's");
    }
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_ones_mean_everything() {
        let id = Uuid::new_v4();
        let other = Uuid::new_v4();
        for inv in [
            Invalidation::Token(id),
            Invalidation::Organization(id),
            Invalidation::Members(id, vec![other, Uuid::new_v4()]),
            Invalidation::Membership(id, other),
            Invalidation::Sessions(id),
            Invalidation::All,
        ] {
            let payloads = inv.payloads();
            assert_eq!(payloads.len(), 1);
            assert_eq!(Invalidation::parse(&payloads[0]), inv);
        }
        for garbage in ["x:garbage", "m:{id}:nope", "r:{id}", "s:", "m:"] {
            assert_eq!(Invalidation::parse(garbage), Invalidation::All, "{garbage}");
        }
    }

    #[test]
    fn long_member_lists_fit_in_payloads() {
        let org = Uuid::new_v4();
        let users: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
        let inv = Invalidation::members(org, users.clone());
        let mut back = Vec::new();
        for payload in inv.payloads() {
            assert!(payload.len() < 8000, "{}", payload.len());
            match Invalidation::parse(&payload) {
                Invalidation::Members(o, part) if o == org => back.extend(part),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, users);
        let many = vec![Uuid::nil(); MAX_NAMED_MEMBERS + 1];
        assert_eq!(
            Invalidation::members(org, many),
            Invalidation::Organization(org)
        );
    }
}
