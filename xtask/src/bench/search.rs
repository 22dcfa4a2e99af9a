//! The search scenario: `GET /products/search` with a mix of realistic queries against
//! `GET /products/{sku}` point lookups, over a catalog `plinth seed` fills before the
//! server starts.
//!
//! The SKUs and query words follow the host's deterministic demo catalog
//! (host/src/catalog/seed.rs): product `i` (0-based) has SKU `{CODE}-{i+1:06}`, the codes
//! cycling over [`CATEGORY_CODES`]. The preflight fails if a SKU is missing or a query is
//! not answered 200, and warns about queries that find nothing.

use super::scenario::{
    Bound, Expect, Figure, Measurement, Phase, PreStart, Ratio, RequestSpec, Scenario, Target,
};

/// Products seeded when `--products` is not given.
pub const DEFAULT_PRODUCTS: usize = 100_000;
/// Connections of each measurement.
pub const SEARCH_CONNECTIONS: usize = 32;
/// Distinct SKUs the point lookups rotate over (20 per category).
pub const POINT_SKUS: usize = 240;
/// Results per search page.
pub const PAGE: usize = 20;
/// Share of the distinct queries that must find at least one product.
pub const MIN_WITH_HITS: f64 = 0.75;
/// Search p99 target, in µs.
pub const P99_TARGET_US: f64 = 10_000.0;
/// Search throughput target, as a fraction of the point lookups'.
pub const THROUGHPUT_TARGET: f64 = 0.30;

/// SKU prefixes of the seeded categories, in the seed's order (Kitchen, Lighting,
/// Furniture, Apparel, Footwear, Outdoor, Electronics, Garden, Bath, Stationery, Toys,
/// Fitness).
pub const CATEGORY_CODES: [&str; 12] = [
    "KIT", "LGT", "FUR", "APP", "FTW", "OUT", "ELC", "GRD", "BTH", "STN", "TOY", "FIT",
];

/// The query mix, as `key=value` pairs (values unencoded) joined by `&`; `limit` is
/// added to each. Words come from the seed's names, colours, materials and categories.
pub const QUERIES: &[&str] = &[
    // One word.
    "q=walnut",
    "q=kettle",
    "q=lamp",
    "q=backpack",
    "q=headphones",
    "q=notebook",
    "q=ceramic",
    "q=navy",
    // Two or three words.
    "q=copper kettle",
    "q=wool scarf",
    "q=oak bookshelf",
    "q=leather boots",
    "q=cast iron skillet",
    "q=bamboo cutting board",
    "q=bluetooth speaker",
    "q=yoga mat",
    // Search as you type: the last word is a prefix.
    "q=lou",
    "q=walnut lou",
    "q=desk la",
    "q=running sh",
    "q=ham",
    "q=sleeping ba",
    // One typo (words of 5+ letters).
    "q=kettel",
    "q=wallnut",
    "q=headphnes",
    "q=backpak",
    "q=lanten",
    "q=sweter",
    // Filters, with and without words.
    "q=lamp&max_price=5000",
    "category=Kitchen&q=bowl",
    "category=Outdoor&min_price=10000",
    "q=chair&min_price=20000&max_price=80000",
    "category=Footwear&q=leather",
    "category=Electronics&max_price=3000",
    "category=Bath&q=towel&max_price=2000",
    "category=Toys&q=wooden",
];

/// Point lookups and searches, alternating, at [`SEARCH_CONNECTIONS`] each, over
/// `products` seeded products.
pub fn scenario(products: usize) -> Scenario {
    let lookups = point_skus(products, POINT_SKUS)
        .into_iter()
        .map(|sku| RequestSpec::get(format!("/products/{sku}")))
        .collect();
    Scenario {
        name: "search",
        description: "GET /products/search (words, prefixes, typos, filters; limit 20) vs GET \
                      /products/{sku}, 32 connections each, over a catalog seeded with --products \
                      products (default 100,000)",
        plugins: Vec::new(),
        pre_start: vec![PreStart::seed_catalog(products)],
        setup: Vec::new(),
        probe: None,
        phases: vec![
            Phase::single(Measurement::new("point-lookup", lookups).on_connections(SEARCH_CONNECTIONS)),
            Phase::single(
                Measurement::new("search", searches())
                    .on_connections(SEARCH_CONNECTIONS)
                    .expecting(Expect::Products {
                        min_with_hits: MIN_WITH_HITS,
                    }),
            ),
        ],
        ratios: vec![Ratio {
            numerator: Figure::Rate("search"),
            denominator: Figure::Rate("point-lookup"),
            target: Some(Target::AtLeast(THROUGHPUT_TARGET)),
        }],
        bounds: vec![Bound {
            figure: Figure::P99("search"),
            target: Target::AtMost(P99_TARGET_US),
        }],
        extra_config: "",
        fake_gateway: false,
    }
}

/// `GET /products/search` with every query of [`QUERIES`], a page of [`PAGE`] each.
pub fn searches() -> Vec<RequestSpec> {
    QUERIES
        .iter()
        .map(|q| RequestSpec::get(search_path(q, PAGE)))
        .collect()
}

/// `n` SKUs of a catalog of `products` (at most all of them), spread evenly over the
/// whole index range and cycling through the categories: the `k`-th lies near
/// `k * products / n` and is of category `k % 12`. Distinct when `products >= 3 * n`
/// (or `products <= n`).
pub fn point_skus(products: usize, n: usize) -> Vec<String> {
    let codes = CATEGORY_CODES.len();
    let n = n.min(products);
    (0..n)
        .map(|k| {
            let base = k * products / n;
            // Same block of 12 as `base`, at the category we want; back one block if
            // that passes the end of the catalog.
            let mut index = base - base % codes + k % codes;
            if index >= products {
                index = index.saturating_sub(codes).min(products - 1);
            }
            sku(index)
        })
        .collect()
}

/// The SKU of the seed's product `index` (0-based).
pub fn sku(index: usize) -> String {
    let code = CATEGORY_CODES[index % CATEGORY_CODES.len()];
    format!("{code}-{:06}", index + 1)
}

/// `/products/search?q=copper%20kettle&limit=20` from `q=copper kettle`: each value
/// percent-encoded, `limit` appended.
pub fn search_path(query: &str, limit: usize) -> String {
    let mut path = String::from("/products/search?");
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        path.push_str(&encode_component(key));
        path.push('=');
        path.push_str(&encode_component(value));
        path.push('&');
    }
    path.push_str(&format!("limit={limit}"));
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a space is `%20`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(sku: &str) -> usize {
        let (code, number) = sku.split_once('-').expect("CODE-NNNNNN");
        let index: usize = number.parse().expect("number");
        assert_eq!(number.len(), 6, "{sku}");
        assert!(index >= 1);
        assert_eq!(code, CATEGORY_CODES[(index - 1) % 12], "{sku} matches the seed");
        index - 1
    }

    #[test]
    fn skus_follow_the_seed() {
        assert_eq!(sku(0), "KIT-000001");
        assert_eq!(sku(1), "LGT-000002");
        assert_eq!(sku(11), "FIT-000012");
        assert_eq!(sku(12), "KIT-000013");
        assert_eq!(sku(99_999), "APP-100000");
    }

    #[test]
    fn point_skus_are_distinct_spread_and_cover_every_category() {
        for products in [1_000, 12_345, DEFAULT_PRODUCTS] {
            let skus = point_skus(products, POINT_SKUS);
            assert_eq!(skus.len(), POINT_SKUS);
            let mut indices: Vec<usize> = skus.iter().map(|s| index_of(s)).collect();
            assert!(indices.iter().all(|i| *i < products), "{products}: {indices:?}");
            for (k, sku) in skus.iter().enumerate() {
                assert!(sku.starts_with(CATEGORY_CODES[k % 12]), "{sku} at {k}");
            }
            indices.sort_unstable();
            indices.dedup();
            assert_eq!(indices.len(), POINT_SKUS, "{products}: distinct");
            // From the start to the end of the catalog, no big gaps.
            let gap = products / POINT_SKUS + 24;
            assert!(indices[0] < gap && products - indices[POINT_SKUS - 1] <= gap);
            assert!(indices.windows(2).all(|w| w[1] - w[0] <= gap), "{products}");
        }
        let skus = point_skus(DEFAULT_PRODUCTS, POINT_SKUS);
        assert_eq!(&skus[..3], ["KIT-000001", "LGT-000410", "FUR-000831"]);
        assert!(skus.iter().any(|s| index_of(s) >= 99_000), "reaches the end");
    }

    #[test]
    fn point_skus_of_a_tiny_catalog_are_all_of_it() {
        let skus = point_skus(5, POINT_SKUS);
        assert_eq!(
            skus,
            [
                "KIT-000001",
                "LGT-000002",
                "FUR-000003",
                "APP-000004",
                "FTW-000005"
            ]
        );
        let skus = point_skus(250, POINT_SKUS);
        assert!(skus.iter().all(|s| index_of(s) < 250));
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode_component("copper kettle"), "copper%20kettle");
        assert_eq!(encode_component("t-shirt_1.~"), "t-shirt_1.~");
        assert_eq!(encode_component("a&b=c+d/é"), "a%26b%3Dc%2Bd%2F%C3%A9");
        assert_eq!(
            search_path("q=lamp&max_price=5000", 20),
            "/products/search?q=lamp&max_price=5000&limit=20"
        );
        assert_eq!(
            search_path("category=Kitchen&q=walnut lou", 20),
            "/products/search?category=Kitchen&q=walnut%20lou&limit=20"
        );
    }

    #[test]
    fn query_mix_is_realistic_and_well_formed() {
        assert!(QUERIES.len() >= 30);
        let mut seen = std::collections::HashSet::new();
        let mut words = 0;
        let mut filtered = 0;
        for query in QUERIES {
            assert!(seen.insert(*query), "duplicate {query}");
            let pairs: Vec<(&str, &str)> = query
                .split('&')
                .map(|p| p.split_once('=').expect("key=value"))
                .collect();
            for (key, value) in &pairs {
                assert!(!value.is_empty(), "{query}");
                match *key {
                    "q" => assert!(value.split(' ').all(|w| !w.is_empty()), "{query}"),
                    "category" => assert!(value.chars().next().is_some_and(char::is_uppercase)),
                    "min_price" | "max_price" => {
                        assert!(value.parse::<u32>().is_ok(), "{query}: price in cents")
                    }
                    other => panic!("unknown parameter {other} in {query}"),
                }
            }
            words += usize::from(pairs.iter().any(|(k, _)| *k == "q"));
            filtered += usize::from(pairs.iter().any(|(k, _)| *k != "q"));
            let path = search_path(query, PAGE);
            assert!(path.ends_with("&limit=20") && !path.contains(' '), "{path}");
        }
        assert!(
            words >= 30 && filtered >= 6,
            "{words} with words, {filtered} filtered"
        );
    }

    #[test]
    fn scenario_is_valid_and_targets_the_issue() {
        let s = scenario(DEFAULT_PRODUCTS);
        s.validate().expect("valid");
        assert_eq!(s.pre_start, [PreStart::seed_catalog(DEFAULT_PRODUCTS)]);
        assert_eq!(s.pre_start[0].args, ["seed", "--count", "100000"]);
        assert_eq!(s.pre_start[0].expect_stdout, "seeded 100000 products");
        let names: Vec<&str> = s.measurements().map(|m| m.name).collect();
        assert_eq!(names, ["point-lookup", "search"]);
        assert!(s
            .measurements()
            .all(|m| m.connections.resolve(64) == SEARCH_CONNECTIONS));
        let lookups = &s.phases[0].measurements[0].requests;
        assert_eq!(lookups.len(), POINT_SKUS);
        assert_eq!(lookups[0].path, "/products/KIT-000001");
        assert_eq!(s.phases[1].measurements[0].requests.len(), QUERIES.len());
        assert_eq!(s.ratios[0].target, Some(Target::AtLeast(0.30)));
        assert_eq!(s.bounds[0].figure, Figure::P99("search"));
        assert_eq!(s.bounds[0].target, Target::AtMost(10_000.0));
    }
}
