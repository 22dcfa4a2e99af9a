//! Listing contacts: filter by tag, sort by name or creation time, keyset pagination
//! with an opaque cursor (stable under inserts and deletes).

use crate::store::ContactRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    NameAsc,
    NameDesc,
    CreatedAsc,
    CreatedDesc,
}

impl SortOrder {
    /// `name`, `-name`, `created_at`, `-created_at`.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "name" => SortOrder::NameAsc,
            "-name" => SortOrder::NameDesc,
            "created_at" => SortOrder::CreatedAsc,
            "-created_at" => SortOrder::CreatedDesc,
            _ => return None,
        })
    }

    fn key(self, c: &ContactRecord) -> String {
        match self {
            SortOrder::NameAsc | SortOrder::NameDesc => c.name.to_lowercase(),
            SortOrder::CreatedAsc | SortOrder::CreatedDesc => format!("{:020}", c.created_at),
        }
    }

    fn descending(self) -> bool {
        matches!(self, SortOrder::NameDesc | SortOrder::CreatedDesc)
    }
}

pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub sort: SortOrder,
    pub tag: Option<String>,
}

pub struct Page {
    pub items: Vec<ContactRecord>,
    pub next_cursor: Option<String>,
}

fn encode_cursor(key: &str, id: &str) -> String {
    hex::encode(format!("{key}\u{1f}{id}"))
}

fn decode_cursor(raw: &str) -> Option<(String, String)> {
    let text = String::from_utf8(hex::decode(raw).ok()?).ok()?;
    let (key, id) = text.split_once('\u{1f}')?;
    Some((key.to_string(), id.to_string()))
}

pub fn page(all: Vec<ContactRecord>, q: &ListQuery) -> Result<Page, &'static str> {
    let after = match &q.cursor {
        Some(raw) => Some(decode_cursor(raw).ok_or("not a cursor from this API")?),
        None => None,
    };
    let mut keyed: Vec<(String, ContactRecord)> = all
        .into_iter()
        .filter(|c| q.tag.as_ref().is_none_or(|t| c.tags.iter().any(|x| x == t)))
        .map(|c| (q.sort.key(&c), c))
        .collect();
    keyed.sort_by(|(ka, a), (kb, b)| (ka, &a.id).cmp(&(kb, &b.id)));
    if q.sort.descending() {
        keyed.reverse();
    }
    let start = match &after {
        None => 0,
        Some((key, id)) => {
            let cursor = (key, id);
            keyed
                .iter()
                .position(|(k, c)| {
                    let here = (k, &c.id);
                    if q.sort.descending() {
                        here < cursor
                    } else {
                        here > cursor
                    }
                })
                .unwrap_or(keyed.len())
        }
    };
    let rest = &keyed[start..];
    let items: Vec<ContactRecord> = rest.iter().take(q.limit).map(|(_, c)| c.clone()).collect();
    let next_cursor = (rest.len() > q.limit)
        .then(|| items.last().map(|c| encode_cursor(&q.sort.key(c), &c.id)))
        .flatten();
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, name: &str, created_at: i64, tags: &[&str]) -> ContactRecord {
        ContactRecord {
            id: id.into(),
            owner_id: "u".into(),
            name: name.into(),
            phone: None,
            email: None,
            notes: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created_at,
            updated_at: created_at,
        }
    }

    fn names(p: &Page) -> Vec<&str> {
        p.items.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn pages_through_every_item_once_in_order() {
        let all = vec![
            contact("1", "carol", 3, &["work"]),
            contact("2", "Alice", 1, &[]),
            contact("3", "bob", 2, &["work"]),
            contact("4", "alice", 4, &["family"]),
        ];
        for (sort, expected) in [
            (SortOrder::NameAsc, vec!["Alice", "alice", "bob", "carol"]),
            (SortOrder::NameDesc, vec!["carol", "bob", "alice", "Alice"]),
            (SortOrder::CreatedAsc, vec!["Alice", "bob", "carol", "alice"]),
            (SortOrder::CreatedDesc, vec!["alice", "carol", "bob", "Alice"]),
        ] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let q = ListQuery {
                    limit: 3,
                    cursor: cursor.clone(),
                    sort,
                    tag: None,
                };
                let p = page(all.clone(), &q).unwrap();
                seen.extend(names(&p).into_iter().map(str::to_string));
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen, expected, "{sort:?}");
        }
        let q = ListQuery {
            limit: 10,
            cursor: None,
            sort: SortOrder::NameAsc,
            tag: Some("work".into()),
        };
        assert_eq!(names(&page(all.clone(), &q).unwrap()), vec!["bob", "carol"]);
        let q = ListQuery {
            limit: 10,
            cursor: Some("zz".into()),
            sort: SortOrder::NameAsc,
            tag: None,
        };
        assert!(page(all, &q).is_err());
    }
}
