//! The parts of a contact that have a shape: phone (E.164), email, tags.

use std::fmt;

/// A phone number in E.164 (`+14155552671`), normalized from what people type:
/// spaces, dashes, dots, slashes and parentheses are dropped and a leading `00`
/// becomes `+`. The country code is required (there is no default region).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("a phone number needs its country code, like +44 20 7946 0958")]
    NoCountryCode,
    #[error("a phone number has 7 to 15 digits after the +")]
    BadLength,
    #[error("a phone number may contain only digits, spaces, and + - . / ( )")]
    BadCharacter,
}

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let mut compact: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}'))
            .collect();
        if let Some(rest) = compact.strip_prefix("00") {
            compact = format!("+{rest}");
        }
        let digits = compact.strip_prefix('+').ok_or(PhoneError::NoCountryCode)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::BadCharacter);
        }
        if !(7..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(PhoneError::BadLength);
        }
        Ok(Self(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, checked for shape (one `@`, a dotted domain), domain lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an email address")]
pub struct EmailError;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        let (local, domain) = raw.rsplit_once('@').ok_or(EmailError)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && local
                .chars()
                .all(|c| c.is_ascii_graphic() || !c.is_ascii() && !c.is_control());
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if local_ok && domain_ok && raw.len() <= 254 {
            Ok(Self(format!("{local}@{domain}")))
        } else {
            Err(EmailError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tag: 1–32 of `a-z`, `0-9`, `-`, `_`, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Tag(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a tag is 1-32 characters of letters, digits, '-' and '_'")]
pub struct TagError;

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, TagError> {
        let lower = raw.trim().to_ascii_lowercase();
        let ok = (1..=32).contains(&lower.len())
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then_some(Self(lower)).ok_or(TagError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_e164() {
        assert_eq!(
            Phone::parse("+1 (415) 555-2671").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            Phone::parse("0044 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(Phone::parse("+49.30.123456").unwrap().as_str(), "+4930123456");
        assert_eq!(Phone::parse("415 555 2671"), Err(PhoneError::NoCountryCode));
        assert_eq!(Phone::parse("+1 415 CALL NOW"), Err(PhoneError::BadCharacter));
        assert_eq!(Phone::parse("+123"), Err(PhoneError::BadLength));
        assert_eq!(Phone::parse("+1234567890123456"), Err(PhoneError::BadLength));
        assert_eq!(Phone::parse("+0123456789"), Err(PhoneError::BadLength));
    }

    #[test]
    fn emails_have_a_shape() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "Ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@exa mple.com",
            "ada@-x.com",
            "a@b.c1",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_are_lower_case_words() {
        assert_eq!(Tag::parse(" Work ").unwrap().as_str(), "work");
        assert!(Tag::parse("family-2").is_ok());
        assert!(Tag::parse("two words").is_err());
        assert!(Tag::parse("").is_err());
    }
}
