//! Full-text product search on tantivy: BM25 over name, description and category, with
//! the name weighted highest, prefix matching on the last word (search-as-you-type),
//! one-typo tolerance for words of 5+ letters, and category/price filters. The index is
//! derived data: sled is the source of truth and the index is rebuilt from it whenever
//! the two disagree.

mod query;

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use query::SearchQuery;
use query::Tolerance;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
}

/// What the index knows of a product.
pub struct SearchDoc<'a> {
    pub sku: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub category: &'a str,
    /// Minor units.
    pub price: i64,
}

#[derive(Clone, Copy)]
struct Fields {
    sku: Field,
    sku_hash: Field,
    name: Field,
    description: Field,
    category: Field,
    category_exact: Field,
    price: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        sku: b.add_text_field("sku", STRING | STORED),
        sku_hash: b.add_u64_field("sku_hash", FAST),
        name: b.add_text_field("name", text.clone()),
        description: b.add_text_field("description", text.clone()),
        category: b.add_text_field("category", text),
        category_exact: b.add_text_field("category_exact", STRING),
        price: b.add_i64_field("price", INDEXED | FAST),
    };
    (b.build(), fields)
}

/// Memory the single indexing thread may use before it flushes a segment.
const WRITER_HEAP: usize = 50_000_000;

pub struct SearchIndex {
    /// sku hash → sku: hits are read from the `sku_hash` column (a few nanoseconds)
    /// instead of a string dictionary or the compressed document store.
    skus: std::sync::RwLock<std::collections::HashMap<u64, String>>,
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (or re-creating it when its schema is from
    /// another version) as needed. The caller checks `num_docs` against the store.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir)?;
        let index = match Index::open_in_dir(dir) {
            Ok(index) if index.schema() == schema => index,
            Ok(_) | Err(_) => {
                if dir.exists() {
                    std::fs::remove_dir_all(dir)?;
                }
                std::fs::create_dir_all(dir)?;
                Index::create_in_dir(dir, schema)?
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_HEAP)?;
        Ok(Self {
            skus: Default::default(),
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    fn document(&self, d: &SearchDoc) -> TantivyDocument {
        let f = self.fields;
        doc!(
            f.sku => d.sku,
            f.sku_hash => sku_hash(d.sku),
            f.name => d.name,
            f.description => d.description,
            f.category => d.category,
            f.category_exact => d.category.to_lowercase(),
            f.price => d.price,
        )
    }

    /// Adds or replaces `docs` and removes `gone` in one commit that records `seq`, the
    /// catalog change-feed position the index then reflects; visible before returning.
    pub fn apply(&self, docs: &[SearchDoc], gone: &[&str], seq: u64) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for sku in gone {
            writer.delete_term(Term::from_field_text(self.fields.sku, sku));
        }
        for d in docs {
            writer.delete_term(Term::from_field_text(self.fields.sku, d.sku));
            writer.add_document(self.document(d))?;
        }
        self.remember(docs.iter().map(|d| d.sku));
        commit_at(&mut writer, seq)?;
        self.reader.reload()?;
        Ok(())
    }

    /// The change-feed position of the last commit; `None` for an index written before
    /// positions were recorded (or by hand): it is rebuilt.
    pub fn applied_seq(&self) -> Option<u64> {
        self.index.load_metas().ok()?.payload?.parse().ok()
    }

    /// Makes these skus resolvable from their hashes (the catalog calls this at start-up
    /// with every sku; writes call it as they go).
    pub fn remember<'a>(&self, skus: impl Iterator<Item = &'a str>) {
        let mut map = self.skus.write().unwrap_or_else(|e| e.into_inner());
        for sku in skus {
            if let Some(other) = map.insert(sku_hash(sku), sku.to_string()).filter(|o| o != sku) {
                tracing::error!(sku, other = %other, "two skus share a 64-bit hash; search may show the wrong one");
            }
        }
    }

    /// Replaces the whole index with `docs`, the catalog as of feed position `seq`.
    pub fn rebuild<'a>(
        &self,
        docs: impl Iterator<Item = SearchDoc<'a>>,
        seq: u64,
    ) -> Result<u64, SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.delete_all_documents()?;
        let mut n = 0;
        let mut skus = Vec::new();
        for d in docs {
            writer.add_document(self.document(&d))?;
            skus.push(d.sku.to_string());
            n += 1;
        }
        self.remember(skus.iter().map(String::as_str));
        commit_at(&mut writer, seq)?;
        self.reader.reload()?;
        Ok(n)
    }

    /// The skus matching `q`, best first, and whether more follow.
    pub fn search(&self, q: &SearchQuery) -> Result<(Vec<(String, f32)>, bool), SearchError> {
        let searcher = self.reader.searcher();
        let page = TopDocs::with_limit(q.limit + 1)
            .and_offset(q.offset)
            .order_by_score();
        let (strict, typos_possible) = q.build(&self.index, self.fields, Tolerance::Strict)?;
        let mut top = searcher.search(&strict, &page)?;
        if top.is_empty() && typos_possible {
            // Typos are tolerated only when the strict query finds nothing at all (on any
            // page), so every page of one search uses the same form.
            let strict_empty = q.offset == 0
                || searcher
                    .search(&strict, &TopDocs::with_limit(1).order_by_score())?
                    .is_empty();
            if strict_empty {
                let (tolerant, _) = q.build(&self.index, self.fields, Tolerance::Typos)?;
                top = searcher.search(&tolerant, &page)?;
            }
        }
        let more = top.len() > q.limit;
        let mut hits = Vec::with_capacity(q.limit);
        let skus = self.skus.read().unwrap_or_else(|e| e.into_inner());
        let mut columns: Vec<Option<tantivy::columnar::Column<u64>>> = Vec::new();
        for (score, addr) in top.into_iter().take(q.limit) {
            let seg = addr.segment_ord as usize;
            if columns.len() <= seg {
                columns.resize(seg + 1, None);
            }
            if columns[seg].is_none() {
                columns[seg] = Some(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("sku_hash")?,
                );
            }
            let hash = columns[seg].as_ref().and_then(|c| c.first(addr.doc_id));
            match hash.and_then(|h| skus.get(&h)) {
                Some(sku) => hits.push((sku.clone(), score)),
                // Not remembered (an index opened on its own): read the stored sku.
                None => {
                    let doc: TantivyDocument = searcher.doc(addr)?;
                    if let Some(sku) = doc.get_first(self.fields.sku).and_then(|v| v.as_str()) {
                        hits.push((sku.to_string(), score));
                    }
                }
            }
        }
        Ok((hits, more))
    }
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (the index is on disk).
fn sku_hash(sku: &str) -> u64 {
    sku.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;

/// Commits with the feed position as the commit's payload: the documents and the
/// position they reflect become durable together.
fn commit_at(writer: &mut IndexWriter, seq: u64) -> Result<(), SearchError> {
    let mut commit = writer.prepare_commit()?;
    commit.set_payload(&seq.to_string());
    commit.commit()?;
    Ok(())
}
