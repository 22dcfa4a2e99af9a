//! Contacts: each user's own address book. Validation happens here, once, through the
//! domain newtypes; storage sees only valid records.

mod list;

use std::sync::Arc;

use serde::Deserialize;

pub use list::{ListQuery, Page, SortOrder};

use crate::auth::now_ms;
use crate::domain::{Email, Phone, Tag, UserId};
use crate::store::{ContactRecord, ContactStore, Storage, StoreError};

/// Most contacts one user may keep.
pub const MAX_CONTACTS_PER_USER: usize = 10_000;
const MAX_NAME_CHARS: usize = 200;
const MAX_NOTES_CHARS: usize = 4_000;
const MAX_TAGS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no such contact")]
    NotFound,
    #[error("at most {MAX_CONTACTS_PER_USER} contacts per user")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl ToString) -> ContactError {
    ContactError::Invalid {
        field,
        message: message.to_string(),
    }
}

/// A new contact as sent by a client.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub notes: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn clean_name(raw: &str) -> Result<String, ContactError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            format!("1-{MAX_NAME_CHARS} characters, no control characters"),
        ));
    }
    Ok(name.to_string())
}

fn clean_phone(raw: &str) -> Result<String, ContactError> {
    Phone::parse(raw)
        .map(|p| p.as_str().to_string())
        .map_err(|e| invalid("phone", e))
}

fn clean_email(raw: &str) -> Result<String, ContactError> {
    Email::parse(raw)
        .map(|e| e.as_str().to_string())
        .map_err(|e| invalid("email", e))
}

fn clean_notes(raw: &str) -> Result<String, ContactError> {
    if raw.chars().count() > MAX_NOTES_CHARS {
        return Err(invalid("notes", format!("at most {MAX_NOTES_CHARS} characters")));
    }
    Ok(raw.to_string())
}

fn clean_tags(raw: &[String]) -> Result<Vec<String>, ContactError> {
    let mut tags = raw
        .iter()
        .map(|t| {
            Tag::parse(t)
                .map(|t| t.as_str().to_string())
                .map_err(|e| invalid("tags", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    Ok(tags)
}

pub struct Contacts {
    store: Arc<dyn ContactStore>,
    storage: Storage,
}

impl Contacts {
    pub fn new(storage: &Storage) -> Result<Self, StoreError> {
        Ok(Self {
            store: storage.contacts()?,
            storage: storage.clone(),
        })
    }

    pub async fn create(&self, owner: &UserId, new: NewContact) -> Result<ContactRecord, ContactError> {
        let owner_id = owner.as_str();
        let now = now_ms();
        let contact = ContactRecord {
            id: uuid::Uuid::now_v7().simple().to_string(),
            owner_id: owner_id.to_string(),
            name: clean_name(&new.name)?,
            phone: new.phone.as_deref().map(clean_phone).transpose()?,
            email: new.email.as_deref().map(clean_email).transpose()?,
            notes: new.notes.as_deref().map(clean_notes).transpose()?,
            tags: clean_tags(&new.tags)?,
            created_at: now,
            updated_at: now,
        };
        if self.store.count(owner_id).await? >= MAX_CONTACTS_PER_USER {
            return Err(ContactError::TooMany);
        }
        self.store.put(&contact).await?;
        self.storage.flush().await?;
        Ok(contact)
    }

    pub async fn get(&self, owner: &UserId, id: &str) -> Result<ContactRecord, ContactError> {
        self.store
            .get(owner.as_str(), id)
            .await?
            .ok_or(ContactError::NotFound)
    }

    /// JSON merge patch (RFC 7396): absent fields stay, `null` clears an optional
    /// field, anything else replaces it. Unknown fields are refused.
    pub async fn patch(
        &self,
        owner: &UserId,
        id: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Result<ContactRecord, ContactError> {
        let mut c = self.get(owner, id).await?;
        for (field, value) in &patch {
            let text = || -> Result<Option<&str>, ContactError> {
                match value {
                    serde_json::Value::Null => Ok(None),
                    serde_json::Value::String(s) => Ok(Some(s)),
                    _ => Err(invalid("body", format!("{field} must be a string or null"))),
                }
            };
            match field.as_str() {
                "name" => c.name = clean_name(text()?.ok_or_else(|| invalid("name", "cannot be removed"))?)?,
                "phone" => c.phone = text()?.map(clean_phone).transpose()?,
                "email" => c.email = text()?.map(clean_email).transpose()?,
                "notes" => c.notes = text()?.map(clean_notes).transpose()?,
                "tags" => {
                    c.tags = match value {
                        serde_json::Value::Null => Vec::new(),
                        serde_json::Value::Array(items) => {
                            let strings = items
                                .iter()
                                .map(|v| v.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                                .ok_or_else(|| invalid("tags", "must be a list of strings"))?;
                            clean_tags(&strings)?
                        }
                        _ => return Err(invalid("tags", "must be a list of strings or null")),
                    }
                }
                other => return Err(invalid("body", format!("unknown field {other:?}"))),
            }
        }
        c.updated_at = now_ms();
        self.store.put(&c).await?;
        self.storage.flush().await?;
        Ok(c)
    }

    pub async fn delete(&self, owner: &UserId, id: &str) -> Result<(), ContactError> {
        if !self.store.delete(owner.as_str(), id).await? {
            return Err(ContactError::NotFound);
        }
        self.storage.flush().await?;
        Ok(())
    }

    pub async fn list(&self, owner: &UserId, query: &ListQuery) -> Result<Page, ContactError> {
        let all = self.store.list(owner.as_str()).await?;
        list::page(all, query).map_err(|m| invalid("cursor", m))
    }
}
