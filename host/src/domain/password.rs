use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// Shortest password accepted, in characters (OWASP ASVS 5.0 V6.2.1).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: well above the 64 characters ASVS asks for,
/// low enough that hashing cost stays bounded. Never truncated.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A new password that passed the policy: at least 8 characters, at most 1024 bytes,
/// not one of the most common passwords. No composition rules (ASVS V6.2.5). Never
/// printed: `Debug` is redacted.
pub struct NewPassword(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password may have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("this password is one of the most common passwords; choose another")]
    Common,
    #[error("the password must not be the username")]
    SameAsUsername,
}

const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.starts_with('#') && l.chars().count() >= MIN_PASSWORD_CHARS)
            .collect()
    })
}

/// How many common passwords of a usable length the policy rejects.
pub fn common_password_count() -> usize {
    common_passwords().len()
}

impl NewPassword {
    pub fn parse(raw: String, username: &str) -> Result<Self, PasswordError> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        if common_passwords().contains(raw.to_lowercase().as_str()) {
            return Err(PasswordError::Common);
        }
        if raw.eq_ignore_ascii_case(username) {
            return Err(PasswordError::SameAsUsername);
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ships_at_least_ten_thousand_usable_common_passwords() {
        assert!(common_password_count() >= 10_000, "{}", common_password_count());
    }

    #[test]
    fn applies_the_policy() {
        let ok = NewPassword::parse("correct horse battery".into(), "alice").unwrap();
        assert_eq!(ok.expose(), "correct horse battery");
        assert!(!format!("{ok:?}").contains("horse"));
        assert_eq!(
            NewPassword::parse("short".into(), "alice").unwrap_err(),
            PasswordError::TooShort
        );
        // Characters, not bytes: eight emoji are fine.
        assert!(NewPassword::parse("🔒🔒🔒🔒🔒🔒🔒🔒".into(), "alice").is_ok());
        assert_eq!(
            NewPassword::parse("x".repeat(1025), "alice").unwrap_err(),
            PasswordError::TooLong
        );
        assert!(NewPassword::parse("y".repeat(1024), "alice").is_ok());
        for common in ["password", "PASSWORD", "12345678", "baseball", "iloveyou"] {
            assert_eq!(
                NewPassword::parse(common.into(), "alice").unwrap_err(),
                PasswordError::Common,
                "{common}"
            );
        }
        assert_eq!(
            NewPassword::parse("alice.smith".into(), "alice.smith").unwrap_err(),
            PasswordError::SameAsUsername
        );
    }
}
