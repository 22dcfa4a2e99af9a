use super::*;

fn index_with(docs: &[(&str, &str, &str, &str, i64)]) -> (tempfile::TempDir, SearchIndex) {
    let dir = tempfile::tempdir().unwrap();
    let idx = SearchIndex::open(dir.path()).unwrap();
    let docs: Vec<SearchDoc> = docs
        .iter()
        .map(|(sku, name, description, category, price)| SearchDoc {
            sku,
            name,
            description,
            category,
            price: *price,
        })
        .collect();
    idx.apply(&docs, &[], 1).unwrap();
    (dir, idx)
}

fn q(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        category: None,
        min_price: None,
        max_price: None,
        limit: 10,
        offset: 0,
    }
}

fn skus(idx: &SearchIndex, query: &SearchQuery) -> Vec<String> {
    idx.search(query).unwrap().0.into_iter().map(|(s, _)| s).collect()
}

const CATALOG: &[(&str, &str, &str, &str, i64)] = &[
    (
        "LAMP-1",
        "Brass desk lamp",
        "A warm light for late evenings",
        "lighting",
        4500,
    ),
    (
        "KETTLE-1",
        "Copper kettle",
        "Pairs well with a brass lamp on the kitchen shelf",
        "kitchen",
        3900,
    ),
    (
        "MUG-1",
        "Stoneware mug",
        "Holds 350 ml of coffee",
        "kitchen",
        1200,
    ),
    (
        "CHAIR-1",
        "Walnut lounge chair",
        "Mid-century comfort",
        "furniture",
        89000,
    ),
];

#[test]
fn name_matches_beat_description_mentions() {
    let (_d, idx) = index_with(CATALOG);
    assert_eq!(skus(&idx, &q("brass lamp")), vec!["LAMP-1", "KETTLE-1"]);
}

#[test]
fn prefixes_and_typos_find_products() {
    let (_d, idx) = index_with(CATALOG);
    assert_eq!(skus(&idx, &q("stonew")), vec!["MUG-1"], "prefix of the last word");
    assert_eq!(skus(&idx, &q("walnut lou")), vec!["CHAIR-1"]);
    assert_eq!(
        skus(&idx, &q("coper")),
        vec!["KETTLE-1"],
        "one typo in a 5-letter word"
    );
    assert_eq!(skus(&idx, &q("kettel")), vec!["KETTLE-1"], "a transposition");
    assert!(skus(&idx, &q("mgu")).is_empty(), "short words need to be exact");
}

#[test]
fn filters_and_pages() {
    let (_d, idx) = index_with(CATALOG);
    let mut kitchen = q("");
    kitchen.category = Some("Kitchen".into());
    let mut found = skus(&idx, &kitchen);
    found.sort();
    assert_eq!(found, vec!["KETTLE-1", "MUG-1"]);
    let mut cheap = q("");
    cheap.max_price = Some(4000);
    cheap.min_price = Some(1500);
    assert_eq!(skus(&idx, &cheap), vec!["KETTLE-1"]);
    let mut first = q("");
    first.limit = 3;
    let (page, more) = idx.search(&first).unwrap();
    assert_eq!(page.len(), 3);
    assert!(more);
    first.offset = 3;
    let (page, more) = idx.search(&first).unwrap();
    assert_eq!(page.len(), 1);
    assert!(!more);
}

#[test]
fn updates_and_deletes_are_visible_at_once_and_survive_reopening() {
    let (dir, idx) = index_with(CATALOG);
    idx.apply(
        &[SearchDoc {
            sku: "MUG-1",
            name: "Porcelain cup",
            description: "",
            category: "kitchen",
            price: 900,
        }],
        &[],
        2,
    )
    .unwrap();
    assert!(skus(&idx, &q("stoneware")).is_empty());
    assert_eq!(skus(&idx, &q("porcelain")), vec!["MUG-1"]);
    idx.apply(&[], &["LAMP-1"], 3).unwrap();
    assert_eq!(idx.applied_seq(), Some(3), "the commit records its feed position");
    assert!(skus(&idx, &q("desk")).is_empty());
    drop(idx);
    let reopened = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(reopened.num_docs(), 3);
    assert_eq!(skus(&reopened, &q("porcelain")), vec!["MUG-1"]);
}
