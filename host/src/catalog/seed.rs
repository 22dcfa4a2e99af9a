//! A realistic, deterministic demo catalog: `plinth seed` (and the search benchmark)
//! load thousands of plausible products from a fixed random seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::NewProduct;
use crate::domain::{Currency, Money};

struct Category {
    name: &'static str,
    code: &'static str,
    nouns: &'static [&'static str],
    /// Price range in cents.
    price: (i64, i64),
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "Kitchen",
        code: "KIT",
        nouns: &[
            "kettle",
            "saucepan",
            "skillet",
            "chef knife",
            "cutting board",
            "teapot",
            "mixing bowl",
            "colander",
            "whisk",
            "dutch oven",
        ],
        price: (900, 24_900),
    },
    Category {
        name: "Lighting",
        code: "LGT",
        nouns: &[
            "desk lamp",
            "floor lamp",
            "pendant light",
            "wall sconce",
            "table lamp",
            "string lights",
            "lantern",
            "reading light",
        ],
        price: (1_900, 39_900),
    },
    Category {
        name: "Furniture",
        code: "FUR",
        nouns: &[
            "lounge chair",
            "dining table",
            "bookshelf",
            "side table",
            "sofa",
            "bench",
            "stool",
            "coffee table",
            "wardrobe",
        ],
        price: (4_900, 189_900),
    },
    Category {
        name: "Apparel",
        code: "APP",
        nouns: &[
            "t-shirt",
            "hoodie",
            "rain jacket",
            "wool sweater",
            "chinos",
            "denim jacket",
            "scarf",
            "beanie",
            "linen shirt",
        ],
        price: (1_500, 29_900),
    },
    Category {
        name: "Footwear",
        code: "FTW",
        nouns: &[
            "running shoes",
            "hiking boots",
            "sneakers",
            "sandals",
            "loafers",
            "slippers",
            "trail runners",
        ],
        price: (2_900, 24_900),
    },
    Category {
        name: "Outdoor",
        code: "OUT",
        nouns: &[
            "tent",
            "sleeping bag",
            "backpack",
            "camp stove",
            "headlamp",
            "water filter",
            "trekking poles",
            "hammock",
        ],
        price: (1_900, 59_900),
    },
    Category {
        name: "Electronics",
        code: "ELC",
        nouns: &[
            "wireless headphones",
            "bluetooth speaker",
            "power bank",
            "mechanical keyboard",
            "webcam",
            "usb hub",
            "smart plug",
            "e-reader",
        ],
        price: (1_900, 49_900),
    },
    Category {
        name: "Garden",
        code: "GRD",
        nouns: &[
            "watering can",
            "planter",
            "pruning shears",
            "garden hose",
            "seed tray",
            "trowel",
            "compost bin",
            "bird feeder",
        ],
        price: (700, 14_900),
    },
    Category {
        name: "Bath",
        code: "BTH",
        nouns: &[
            "bath towel",
            "shower curtain",
            "bath mat",
            "soap dish",
            "robe",
            "toothbrush holder",
        ],
        price: (900, 12_900),
    },
    Category {
        name: "Stationery",
        code: "STN",
        nouns: &[
            "notebook",
            "fountain pen",
            "sketchbook",
            "planner",
            "pencil case",
            "desk organizer",
            "ink bottle",
        ],
        price: (300, 9_900),
    },
    Category {
        name: "Toys",
        code: "TOY",
        nouns: &[
            "puzzle",
            "building blocks",
            "kite",
            "board game",
            "plush bear",
            "wooden train",
            "yo-yo",
        ],
        price: (500, 7_900),
    },
    Category {
        name: "Fitness",
        code: "FIT",
        nouns: &[
            "yoga mat",
            "kettlebell",
            "jump rope",
            "resistance bands",
            "foam roller",
            "dumbbell set",
            "water bottle",
        ],
        price: (900, 19_900),
    },
];

const COLORS: &[&str] = &[
    "black",
    "white",
    "slate",
    "olive",
    "navy",
    "rust",
    "sand",
    "forest green",
    "charcoal",
    "ivory",
    "mustard",
    "sky blue",
];
const MATERIALS: &[&str] = &[
    "oak",
    "walnut",
    "bamboo",
    "cotton",
    "linen",
    "wool",
    "copper",
    "brass",
    "stoneware",
    "recycled",
    "stainless steel",
    "cast iron",
    "leather",
    "ceramic",
];
const ADJECTIVES: &[&str] = &[
    "compact",
    "classic",
    "lightweight",
    "heavy-duty",
    "minimalist",
    "vintage",
    "ergonomic",
    "foldable",
    "handmade",
    "modern",
    "rustic",
    "waterproof",
];
const FEATURES: &[&str] = &[
    "built to last for years of daily use",
    "easy to clean and dishwasher safe",
    "designed in Lisbon and made in small batches",
    "a favourite of our customers for gifting",
    "packed in plastic-free, recyclable packaging",
    "backed by a two-year warranty",
    "light enough to take anywhere",
    "finished by hand, so each one is slightly different",
];

fn pick<'a>(rng: &mut StdRng, items: &'a [&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `count` products, the same ones every time for the same count.
pub fn demo_products(count: usize) -> Vec<NewProduct> {
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let usd = Currency::parse("USD").expect("USD is a currency");
    (0..count)
        .map(|i| {
            let cat = &CATEGORIES[i % CATEGORIES.len()];
            let noun = pick(&mut rng, cat.nouns);
            let color = pick(&mut rng, COLORS);
            let material = pick(&mut rng, MATERIALS);
            let adjective = pick(&mut rng, ADJECTIVES);
            let name = match rng.random_range(0..3) {
                0 => format!("{} {material} {noun}", title_case(color)),
                1 => format!("{} {noun} in {color}", title_case(adjective)),
                _ => format!("{} {material} {noun}", title_case(adjective)),
            };
            let description = format!(
                "A {adjective} {noun} in {color} {material}, {}. {}.",
                pick(&mut rng, FEATURES),
                title_case(pick(&mut rng, FEATURES))
            );
            let (lo, hi) = cat.price;
            let cents = rng.random_range(lo / 100..=hi / 100) * 100 - 1;
            NewProduct {
                sku: format!("{}-{:06}", cat.code, i + 1),
                name,
                description,
                category: cat.name.to_string(),
                price: Money {
                    amount: cents.max(0),
                    currency: usd,
                },
                stock: rng.random_range(0..=250),
                images: vec![format!(
                    "https://images.example.com/{}/{:06}.jpg",
                    cat.code.to_lowercase(),
                    i + 1
                )],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid() {
        let a = demo_products(50);
        let b = demo_products(50);
        assert_eq!(a.len(), 50);
        assert!(a.iter().zip(&b).all(|(x, y)| x.sku == y.sku && x.name == y.name));
        for p in demo_products(1000) {
            let sku = p.sku.clone();
            assert!(p.into_record(0).is_ok(), "{sku} must be valid");
        }
    }
}
