//! Turning a user's search box into a tantivy query.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::{Index, Term};

use super::{Fields, SearchError};

/// Words this long or longer tolerate one typo.
const FUZZY_MIN_CHARS: usize = 5;
/// The last word matches as a prefix once it has this many characters.
const PREFIX_MIN_CHARS: usize = 2;
/// Words beyond this are ignored (keeps query cost bounded).
const MAX_WORDS: usize = 8;

pub struct SearchQuery {
    pub text: String,
    pub category: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub limit: usize,
    pub offset: usize,
}

/// Whether a query tolerates typos. The strict form runs first; only when it finds
/// nothing does the tolerant one run (typo expansion is the expensive part, and most
/// queries are spelt right).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tolerance {
    Strict,
    Typos,
}

fn boosted(q: Box<dyn Query>, boost: f32) -> (Occur, Box<dyn Query>) {
    (Occur::Should, Box::new(BoostQuery::new(q, boost)))
}

fn term(field: Field, word: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, word),
        IndexRecordOption::WithFreqs,
    ))
}

impl SearchQuery {
    /// Every word must match (in name, category or description exactly; in name or
    /// category as a prefix if it is the last word; with one typo if it is long and
    /// `tolerance` allows); exact name matches score highest, then category, then
    /// description. Also says whether a typo-tolerant form would differ.
    pub(super) fn build(
        &self,
        index: &Index,
        f: Fields,
        tolerance: Tolerance,
    ) -> Result<(Box<dyn Query>, bool), SearchError> {
        let mut tokenizer = index.tokenizer_for_field(f.name)?;
        let mut words = Vec::new();
        let mut stream = tokenizer.token_stream(&self.text);
        while stream.advance() {
            if words.len() < MAX_WORDS {
                words.push(stream.token().text.clone());
            }
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let last = words.len().saturating_sub(1);
        let mut could_use_typos = false;
        for (i, w) in words.iter().enumerate() {
            let mut alternatives = vec![
                boosted(term(f.name, w), 4.0),
                boosted(term(f.category, w), 2.0),
                boosted(term(f.description, w), 1.0),
            ];
            let chars = w.chars().count();
            if i == last && chars >= PREFIX_MIN_CHARS {
                // The term range [word, word + U+10FFFF]: a prefix match without
                // building an automaton.
                let prefix = |field| -> Box<dyn Query> {
                    Box::new(RangeQuery::new(
                        Bound::Included(Term::from_field_text(field, w)),
                        Bound::Included(Term::from_field_text(field, &format!("{w}\u{10FFFF}"))),
                    ))
                };
                alternatives.push(boosted(prefix(f.name), 2.0));
                alternatives.push(boosted(prefix(f.category), 1.0));
            }
            if chars >= FUZZY_MIN_CHARS {
                could_use_typos = true;
                if tolerance == Tolerance::Typos {
                    let fuzzy =
                        |field| Box::new(FuzzyTermQuery::new(Term::from_field_text(field, w), 1, true));
                    alternatives.push(boosted(fuzzy(f.name), 1.5));
                    alternatives.push(boosted(fuzzy(f.category), 1.0));
                    alternatives.push(boosted(fuzzy(f.description), 0.3));
                }
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
        }
        if words.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        if let Some(category) = &self.category {
            clauses.push((Occur::Must, term(f.category_exact, &category.to_lowercase())));
        }
        if self.min_price.is_some() || self.max_price.is_some() {
            let bound = |v: Option<i64>| match v {
                Some(v) => Bound::Included(Term::from_field_i64(f.price, v)),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(self.min_price), bound(self.max_price))),
            ));
        }
        Ok((Box::new(BooleanQuery::new(clauses)), could_use_typos))
    }
}
