//! The storage comparison (`cargo xtask bench --backend postgres`): the same five loads
//! against two servers started side by side from one config, one on sled and one on
//! PostgreSQL (a fresh schema), alternating, so every PostgreSQL figure has its sled
//! baseline from the same minutes of the same machine.
//!
//! - `hello`: a plugin call that touches no storage (the control: its ratio should be ≈ 1),
//! - `login`: one session row written per argon2id verification,
//! - `kv`: the hello plugin's counter, one kv increment of one shared key (the
//!   worst case for a database: every increment waits for the row lock of the last),
//! - `search`: the tantivy index each replica keeps (no database on the read path),
//! - `checkout`: stock reservation, idempotency claim and answer, the order, the
//!   purchase counter; the charge goes to a fake gateway answering at once.
//!
//! Both servers are on loopback with the database on the same 2 CPUs, so the database's
//! CPU competes with the server's: the ratios are a floor for a dedicated database host.

use hyper::Method;

use super::checkout;
use super::scenario::{
    Backend, Expect, Figure, Measurement, Phase, Ratio, RequestSpec, Scenario, SetupRequest, HELLO,
    LOGIN_CONNECTIONS,
};
use super::search;

/// Products seeded on each backend (enough for the search queries to find pages).
pub const PRODUCTS: usize = 10_000;
/// Connections of the hello, kv, search and checkout measurements.
pub const CONNECTIONS: usize = 32;
/// Connections of the kv measurement: one key, so more would only queue on its lock.
pub const KV_CONNECTIONS: usize = 16;

/// The measurement names of one load, sled's first.
struct Pair {
    sled: &'static str,
    postgres: &'static str,
}

/// `pair!("kv")`: the measurements `kv-sled` and `kv-postgres`.
macro_rules! pair {
    ($load:literal) => {
        Pair {
            sled: concat!($load, "-sled"),
            postgres: concat!($load, "-postgres"),
        }
    };
}

const HELLO_PAIR: Pair = pair!("hello");
const LOGIN_PAIR: Pair = pair!("login");
const KV_PAIR: Pair = pair!("kv");
const SEARCH_PAIR: Pair = pair!("search");
const CHECKOUT_PAIR: Pair = pair!("checkout");

/// Two phases, the same load on sled then on PostgreSQL.
fn pair(names: &Pair, load: impl Fn(&'static str) -> Measurement) -> [Phase; 2] {
    [
        Phase::single(load(names.sled).on(Backend::Sled)),
        Phase::single(load(names.postgres).on(Backend::Postgres)),
    ]
}

/// PostgreSQL's throughput and p99 over sled's, for one load.
fn ratios(names: &Pair) -> [Ratio; 2] {
    [
        Ratio {
            numerator: Figure::OkRate(names.postgres),
            denominator: Figure::OkRate(names.sled),
            target: None,
        },
        Ratio {
            numerator: Figure::P99(names.postgres),
            denominator: Figure::P99(names.sled),
            target: None,
        },
    ]
}

pub fn scenario() -> Scenario {
    let mut setup: Vec<SetupRequest> = super::scenario::login_setup();
    setup.extend(checkout::setup());
    let counter = RequestSpec::new(Method::POST, "/plugins/hello/counter");
    let mut phases = Vec::new();
    phases.extend(pair(&HELLO_PAIR, |name| {
        Measurement::new(name, vec![RequestSpec::get("/plugins/hello/")]).on_connections(CONNECTIONS)
    }));
    phases.extend(pair(&LOGIN_PAIR, |name| {
        Measurement::new(name, super::scenario::logins()).on_connections(LOGIN_CONNECTIONS)
    }));
    phases.extend(pair(&KV_PAIR, |name| {
        Measurement::new(name, vec![counter.clone()]).on_connections(KV_CONNECTIONS)
    }));
    phases.extend(pair(&SEARCH_PAIR, |name| {
        Measurement::new(name, search::searches())
            .on_connections(CONNECTIONS)
            .expecting(Expect::Products {
                min_with_hits: search::MIN_WITH_HITS,
            })
    }));
    phases.extend(pair(&CHECKOUT_PAIR, |name| {
        Measurement::new(name, checkout::checkouts(PRODUCTS))
            .on_connections(CONNECTIONS)
            .expecting(Expect::NewOrders)
    }));
    let ratios = [HELLO_PAIR, LOGIN_PAIR, KV_PAIR, SEARCH_PAIR, CHECKOUT_PAIR]
        .iter()
        .flat_map(ratios)
        .collect();
    Scenario {
        name: "postgres",
        description: "hello, login, kv increment, search and checkout on a PostgreSQL server vs a sled \
                      server started side by side (ratios postgres/sled), CPU per request of each server \
                      and of PostgreSQL, database round trips per request",
        plugins: vec![HELLO],
        pre_start: vec![checkout::seed(PRODUCTS)],
        setup,
        probe: None,
        phases,
        ratios,
        bounds: Vec::new(),
        extra_config: checkout::CONFIG,
        fake_gateway: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_load_runs_on_both_backends_with_its_ratios() {
        let s = scenario();
        s.validate().expect("valid");
        assert_eq!(s.backends(), [Backend::Sled, Backend::Postgres]);
        assert_eq!(s.phases.len(), 10);
        for pair in s.phases.chunks(2) {
            let (a, b) = (&pair[0].measurements[0], &pair[1].measurements[0]);
            assert_eq!((a.backend, b.backend), (Backend::Sled, Backend::Postgres));
            assert_eq!(a.requests.len(), b.requests.len());
            assert_eq!(a.connections, b.connections);
        }
        assert_eq!(s.ratios.len(), 10);
        assert!(s.setup.iter().any(|r| r.capture.is_some()), "the shopper's token");
    }
}
