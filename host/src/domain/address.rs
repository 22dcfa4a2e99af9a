//! A postal address: a customer's shipping address, the warehouse parcels ship from.
//! Parsed once from an [`AddressForm`] (a checkout body, `[checkout] origin`); what
//! exists as an [`Address`] is trimmed, bounded and free of control characters, with an
//! upper-case country code and region.

use serde::{Deserialize, Serialize};

use super::Email;

/// An address as people send or write it, before any check, and as an order shows it
/// back: the API's shape of an address (its schema is the checkout body's and the
/// order's `shipping_address`), never a stored one. `deny_unknown_fields`, so a misspelt
/// field is an error rather than a silently missing line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressForm {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A checked postal address.
///
/// It serializes with the form's field names, which is how orders store it. It
/// deserializes without checking again, like the other stored newtypes (`Email`,
/// `Phone`): a stored address was parsed when it was written, and an order must stay
/// readable should the rules tighten later. Input from outside comes as an
/// [`AddressForm`] through [`Address::parse`], never as an `Address`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
    country: String,
    phone: Option<String>,
    email: Option<Email>,
}

/// Why an address was refused; [`AddressError::field`] names the part at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Empty after trimming, too long, or with control characters.
    #[error("{field} must be 1-{max} characters")]
    Length { field: &'static str, max: usize },
    #[error("country must be an ISO 3166-1 alpha-2 code like US or DE")]
    Country,
    #[error("email is not an email address")]
    Email,
}

impl AddressError {
    /// The field of the form at fault.
    pub fn field(&self) -> &'static str {
        match self {
            AddressError::Length { field, .. } => field,
            AddressError::Country => "country",
            AddressError::Email => "email",
        }
    }
}

/// A required part: trimmed, 1–`max` characters, no control characters.
fn required(field: &'static str, raw: &str, max: usize) -> Result<String, AddressError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        Err(AddressError::Length { field, max })
    } else {
        Ok(t.to_string())
    }
}

/// An optional part: blank means absent, anything else is checked like a required one.
fn optional(field: &'static str, raw: Option<String>, max: usize) -> Result<Option<String>, AddressError> {
    match raw {
        Some(v) if !v.trim().is_empty() => required(field, &v, max).map(Some),
        _ => Ok(None),
    }
}

impl Address {
    /// Checks a form. The country is checked first and the email next, then the other
    /// parts in the form's order: the first fault is the one reported, as clients have
    /// always been told.
    pub fn parse(form: AddressForm) -> Result<Self, AddressError> {
        let country = form.country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(AddressError::Country);
        }
        let email = match form.email {
            Some(e) if !e.trim().is_empty() => Some(Email::parse(&e).map_err(|_| AddressError::Email)?),
            _ => None,
        };
        Ok(Self {
            name: required("name", &form.name, 100)?,
            line1: required("line1", &form.line1, 200)?,
            line2: optional("line2", form.line2, 200)?,
            city: required("city", &form.city, 100)?,
            region: optional("region", form.region.map(|r| r.to_ascii_uppercase()), 50)?,
            postal_code: required("postal_code", &form.postal_code, 20)?,
            country,
            phone: optional("phone", form.phone, 30)?,
            email,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn line1(&self) -> &str {
        &self.line1
    }

    pub fn line2(&self) -> Option<&str> {
        self.line2.as_deref()
    }

    pub fn city(&self) -> &str {
        &self.city
    }

    /// Upper-cased (`CA`, `BY`).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }

    /// ISO 3166-1 alpha-2, upper-case.
    pub fn country(&self) -> &str {
        &self.country
    }

    pub fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }

    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// The address as plain parts (for the API and for plugins); parsing it again gives
    /// the same address.
    pub fn to_form(&self) -> AddressForm {
        AddressForm {
            name: self.name.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.clone(),
            phone: self.phone.clone(),
            email: self.email.as_ref().map(|e| e.as_str().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> AddressForm {
        AddressForm {
            name: " Ada Lovelace ".into(),
            line1: "12 Analytical Way".into(),
            line2: Some("  ".into()),
            city: "Oakland".into(),
            region: Some("ca".into()),
            postal_code: "94610".into(),
            country: " us".into(),
            phone: None,
            email: Some("ada@Example.COM".into()),
        }
    }

    #[test]
    fn parses_trims_and_upper_cases() {
        let a = Address::parse(form()).unwrap();
        assert_eq!(a.name(), "Ada Lovelace");
        assert_eq!(a.line2(), None, "blank is absent");
        assert_eq!(a.region(), Some("CA"));
        assert_eq!(a.country(), "US");
        assert_eq!(a.email().map(Email::as_str), Some("ada@example.com"));
    }

    #[test]
    fn reports_the_first_fault_by_field() {
        let bad = |change: fn(&mut AddressForm)| {
            let mut f = form();
            change(&mut f);
            Address::parse(f).unwrap_err()
        };
        let e = bad(|f| f.country = "USA".into());
        assert_eq!(
            (e.field(), e.to_string().as_str()),
            (
                "country",
                "country must be an ISO 3166-1 alpha-2 code like US or DE"
            )
        );
        assert_eq!(bad(|f| f.country = "u1".into()), AddressError::Country);
        assert_eq!(bad(|f| f.email = Some("nope".into())), AddressError::Email);
        let e = bad(|f| f.name = " ".into());
        assert_eq!(
            (e.field(), e.to_string().as_str()),
            ("name", "name must be 1-100 characters")
        );
        assert_eq!(
            bad(|f| f.city = "Oak\u{7}land".into()),
            AddressError::Length {
                field: "city",
                max: 100
            }
        );
        assert_eq!(
            bad(|f| f.postal_code = "1".repeat(21)),
            AddressError::Length {
                field: "postal_code",
                max: 20
            }
        );
        // The country is looked at before anything else.
        assert_eq!(
            bad(|f| {
                f.name = String::new();
                f.country = String::new();
            }),
            AddressError::Country
        );
    }

    #[test]
    fn a_parsed_address_parses_to_itself_and_keeps_the_stored_field_names() {
        let a = Address::parse(form()).unwrap();
        let stored = serde_json::to_value(&a).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({ "name": "Ada Lovelace", "line1": "12 Analytical Way", "line2": null,
                "city": "Oakland", "region": "CA", "postal_code": "94610", "country": "US",
                "phone": null, "email": "ada@example.com" })
        );
        assert_eq!(Address::parse(a.to_form()).unwrap(), a);
        assert_eq!(
            serde_json::to_value(a.to_form()).unwrap(),
            stored,
            "the API shows what is stored"
        );
        assert_eq!(serde_json::from_value::<Address>(stored).unwrap(), a);
    }
}
