//! `application/x-www-form-urlencoded` bodies, the way Stripe's API takes its parameters.

/// A form body under construction: `key=value` pairs joined by `&`, both sides
/// percent-encoded (so `metadata[order_id]` goes out as `metadata%5Border_id%5D`, which
/// Stripe decodes like the bare brackets).
#[derive(Debug, Default)]
pub struct Form(String);

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one pair.
    pub fn push(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(&encode(key));
        self.0.push('=');
        self.0.push_str(&encode(value));
        self
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_body(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

/// Percent-encodes every byte except RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`); UTF-8 text is encoded byte by byte.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0x0f)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_non_ascii_bytes() {
        assert_eq!(encode("a b&c=d+e/f?"), "a%20b%26c%3Dd%2Be%2Ff%3F");
        assert_eq!(encode("metadata[order_id]"), "metadata%5Border_id%5D");
        assert_eq!(encode("Größe 10 €"), "Gr%C3%B6%C3%9Fe%2010%20%E2%82%AC");
        assert_eq!(encode("pm_card_visa-1.2~"), "pm_card_visa-1.2~");
        assert_eq!(encode(""), "");
    }

    #[test]
    fn joins_pairs() {
        let mut form = Form::new();
        form.push("amount", "1999")
            .push("payment_method_types[]", "card")
            .push("receipt_email", "a+b@example.com");
        assert_eq!(
            form.as_str(),
            "amount=1999&payment_method_types%5B%5D=card&receipt_email=a%2Bb%40example.com"
        );
    }
}
