//! [`PendingStore`] on PostgreSQL: social logins in progress shared by every replica,
//! so a login started on one finishes on another. Same contract as the in-memory
//! store: single use (the take is a `DELETE … RETURNING`), store-side expiry, and a cap
//! where a new login may replace the oldest login of the network holding at least two
//! more than the newcomer's. Starts take turns on one gate row (`FOR UPDATE`) for the
//! count and the insert, so the cap is exact across replicas.

use std::net::IpAddr;

use super::{from_json, to_json, Pg};
use crate::auth::oidc::pending::{Full, PendingLogin, PendingStore, StateKey, PENDING_TTL};
use crate::store::StoreError;

pub struct PgPending {
    pg: Pg,
    cap: usize,
}

impl PgPending {
    pub fn new(pg: &Pg, cap: usize) -> Self {
        Self { pg: pg.clone(), cap }
    }

    async fn try_insert(&self, key: &StateKey, login: &PendingLogin) -> Result<Result<(), Full>, StoreError> {
        let network = login.network().to_string();
        let mut tx = self.pg.pool().begin().await?;
        sqlx::query("SELECT one FROM oidc_pending_gate FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        // Expired logins go first, a bounded batch per start so no start pays for a
        // backlog all at once (the periodic sweep clears the rest).
        sqlx::query(
            "DELETE FROM oidc_pending WHERE state_hash IN
                (SELECT state_hash FROM oidc_pending WHERE expires_at <= now() LIMIT 64)",
        )
        .execute(&mut *tx)
        .await?;
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM oidc_pending WHERE expires_at > now()")
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(held).unwrap_or(usize::MAX) >= self.cap {
            let heaviest: Option<(String, i64)> = sqlx::query_as(
                "SELECT network, count(*) AS n FROM oidc_pending WHERE expires_at > now()
                  GROUP BY network ORDER BY n DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let mine: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM oidc_pending WHERE network = $1 AND expires_at > now()",
            )
            .bind(&network)
            .fetch_one(&mut *tx)
            .await?;
            let Some((heavy, most)) = heaviest.filter(|(_, most)| *most >= mine + 2) else {
                return Ok(Err(Full));
            };
            sqlx::query(
                "DELETE FROM oidc_pending WHERE state_hash IN
                    (SELECT state_hash FROM oidc_pending WHERE network = $1 AND expires_at > now()
                      ORDER BY created_at LIMIT 1)",
            )
            .bind(&heavy)
            .execute(&mut *tx)
            .await?;
            tracing::debug!(network = %heavy, held = most, "pending social login evicted at the cap");
        }
        let ttl_ms = i64::try_from(PENDING_TTL.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO oidc_pending (state_hash, network, created_at, expires_at, record)
             VALUES ($1, $2, clock_timestamp(), now() + $3 * interval '1 millisecond', $4)
             ON CONFLICT (state_hash) DO UPDATE SET network = EXCLUDED.network,
                created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, record = EXCLUDED.record",
        )
        .bind(&key.as_bytes()[..])
        .bind(&network)
        .bind(ttl_ms)
        .bind(to_json(&login.to_stored())?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn try_take(&self, key: &StateKey) -> Result<Option<PendingLogin>, StoreError> {
        let row: Option<(String, bool, serde_json::Value)> = sqlx::query_as(
            "DELETE FROM oidc_pending WHERE state_hash = $1
             RETURNING network, expires_at > now(), record",
        )
        .bind(&key.as_bytes()[..])
        .fetch_optional(self.pg.pool())
        .await?;
        let Some((network, live, record)) = row.filter(|(_, live, _)| *live) else {
            return Ok(None);
        };
        debug_assert!(live);
        let network: IpAddr = network
            .parse()
            .map_err(|_| StoreError::Corrupt("pending login network".into()))?;
        Ok(PendingLogin::from_stored(from_json(record)?, network))
    }
}

#[async_trait::async_trait]
impl PendingStore for PgPending {
    async fn insert(&self, key: StateKey, login: PendingLogin) -> Result<(), Full> {
        match self
            .pg
            .retrying("oidc start", || self.try_insert(&key, &login))
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                // The start fails as at the cap: the browser is told to retry.
                tracing::error!(error = %e, "cannot record a social login in progress");
                Err(Full)
            }
        }
    }

    async fn take(&self, key: &StateKey) -> Option<PendingLogin> {
        match self.try_take(key).await {
            Ok(login) => login,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a social login in progress");
                None
            }
        }
    }

    async fn count(&self) -> usize {
        let n: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM oidc_pending WHERE expires_at > now()")
                .fetch_one(self.pg.pool())
                .await;
        n.map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::oidc::pending::{network_of, PendingLogins};
    use crate::domain::ProviderName;
    use crate::store::postgres::testing;

    #[tokio::test]
    async fn a_login_started_on_one_replica_is_taken_once_on_another() {
        let Some(pg) = testing::fresh().await else { return };
        let (a, b) = (
            PendingLogins::new(Box::new(PgPending::new(&pg, 100))),
            PendingLogins::new(Box::new(PgPending::new(&pg, 100))),
        );
        let google = ProviderName::parse("google").unwrap();
        let url = url::Url::parse("https://shop.example/back").unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let s = a
            .start(google.clone(), url.clone(), Some("u1".into()), ip)
            .await
            .unwrap();
        assert_eq!(b.count().await, 1);
        assert!(b.take(&s.state, Some("another browser"), &google).await.is_none());
        assert!(
            a.take(&s.state, Some(&s.binding), &google).await.is_none(),
            "a failed try burns it, on every replica"
        );
        let s = a.start(google.clone(), url.clone(), None, ip).await.unwrap();
        let login = b.take(&s.state, Some(&s.binding), &google).await.unwrap();
        assert_eq!((login.network(), login.return_url), (network_of(ip), url));
        assert!(
            a.take(&s.state, Some(&s.binding), &google).await.is_none(),
            "single use"
        );
        assert_eq!(a.count().await, 0);
    }

    #[tokio::test]
    async fn at_the_cap_the_flooding_network_loses_its_own_oldest() {
        let Some(pg) = testing::fresh().await else { return };
        let logins = PendingLogins::new(Box::new(PgPending::new(&pg, 4)));
        let google = ProviderName::parse("google").unwrap();
        let url = url::Url::parse("https://shop.example/").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let alice = logins
            .start(google.clone(), url.clone(), None, ip("198.51.100.9"))
            .await
            .unwrap();
        let mut flood = Vec::new();
        for i in 0..3 {
            flood.push(
                logins
                    .start(google.clone(), url.clone(), None, ip(&format!("203.0.113.{i}")))
                    .await
                    .unwrap(),
            );
        }
        assert!(logins
            .start(google.clone(), url.clone(), None, ip("203.0.113.200"))
            .await
            .is_err());
        let bob = logins
            .start(google.clone(), url.clone(), None, ip("2001:db8:1::1"))
            .await
            .unwrap();
        assert!(
            logins
                .take(&flood[0].state, Some(&flood[0].binding), &google)
                .await
                .is_none(),
            "evicted"
        );
        assert!(logins
            .take(&alice.state, Some(&alice.binding), &google)
            .await
            .is_some());
        assert!(logins
            .take(&bob.state, Some(&bob.binding), &google)
            .await
            .is_some());
    }
}
