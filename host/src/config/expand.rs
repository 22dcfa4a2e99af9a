//! `${NAME}` and `${NAME:-default}` expansion of plugin config values from the
//! environment, so secrets live in the environment and never in the file.

/// Why a value could not be expanded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error("environment variable {0} is not set (use ${{{0}:-default}} for a default)")]
    Missing(String),
    #[error("unterminated ${{ in value")]
    Unterminated,
    #[error("invalid variable name {0:?}")]
    BadName(String),
}

/// Expands every `${…}` in `raw` with `lookup`; `$$` is a literal `$`.
pub fn expand(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(ExpandError::Unterminated)?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(ExpandError::BadName(name.to_string()));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(ExpandError::Missing(name.to_string())),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "sk_test_123".to_string())
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand("${KEY}", env).unwrap(), "sk_test_123");
        assert_eq!(expand("Bearer ${KEY}!", env).unwrap(), "Bearer sk_test_123!");
        assert_eq!(
            expand("${BASE:-https://api.open-meteo.com}", env).unwrap(),
            "https://api.open-meteo.com"
        );
        assert_eq!(
            expand("cost: $5 and $${KEY}", env).unwrap(),
            "cost: $5 and ${KEY}"
        );
    }

    #[test]
    fn reports_missing_and_malformed_variables() {
        assert_eq!(expand("${NOPE}", env), Err(ExpandError::Missing("NOPE".into())));
        assert_eq!(expand("${KEY", env), Err(ExpandError::Unterminated));
        assert_eq!(expand("${1X}", env), Err(ExpandError::BadName("1X".into())));
    }
}
