//! Shippo's decimal strings (`"5.50"`) → integer minor units, exactly: no floats.

/// ISO 4217 currencies without minor units; the same list as the host's `Currency`.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF",
    "XPF",
];
/// ISO 4217 currencies with three decimals.
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Digits after the decimal point of `currency`'s major unit (JPY 0, USD 2, KWD 3).
pub fn minor_digits(currency: &str) -> usize {
    if ZERO_DECIMALS.contains(&currency) {
        0
    } else if THREE_DECIMALS.contains(&currency) {
        3
    } else {
        2
    }
}

/// An upper-cased ISO 4217 code, or an error for anything that is not three letters.
pub fn currency_code(currency: &str) -> Result<String, String> {
    let code = currency.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(format!("not a currency code: {currency:?}"))
    }
}

/// Parses a plain decimal (`"5.5"`, `"12"`, `"0.125"`, `"-3.10"`) into minor units of
/// `currency`. Trailing zeros beyond the currency's precision are fine (`"1200.00"` JPY);
/// any other extra digit is an error, never a rounding.
pub fn to_minor(amount: &str, currency: &str) -> Result<i64, String> {
    let bad = || format!("not an amount of {currency}: {amount:?}");
    let digits = minor_digits(currency);
    let text = amount.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return Err(bad());
    }
    let (kept, extra) = frac.split_at(frac.len().min(digits));
    if extra.bytes().any(|b| b != b'0') {
        return Err(format!("{amount:?} has more precision than {currency} allows"));
    }
    let padding = std::iter::repeat_n(b'0', digits - kept.len());
    let mut minor: i64 = 0;
    for b in whole.bytes().chain(kept.bytes()).chain(padding) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(|| format!("{amount:?} is too large"))?;
    }
    Ok(if negative { -minor } else { minor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_decimal_currencies() {
        assert_eq!(to_minor("5.50", "USD"), Ok(550));
        assert_eq!(to_minor("5.5", "USD"), Ok(550));
        assert_eq!(to_minor("12", "EUR"), Ok(1200));
        assert_eq!(to_minor("12.", "EUR"), Ok(1200));
        assert_eq!(to_minor(".07", "EUR"), Ok(7));
        assert_eq!(to_minor("0.01", "USD"), Ok(1));
        assert_eq!(to_minor(" 19.990 ", "GBP"), Ok(1999));
        assert_eq!(to_minor("-3.10", "USD"), Ok(-310));
        assert_eq!(to_minor("0", "USD"), Ok(0));
        // 0.1 + 0.2 style float trouble cannot happen.
        assert_eq!(to_minor("1234567.89", "USD"), Ok(123_456_789));
    }

    #[test]
    fn zero_and_three_decimal_currencies() {
        assert_eq!(to_minor("1200", "JPY"), Ok(1200));
        assert_eq!(to_minor("1200.00", "JPY"), Ok(1200));
        assert!(to_minor("1200.5", "JPY").is_err());
        assert_eq!(to_minor("1.234", "KWD"), Ok(1234));
        assert_eq!(to_minor("1.2", "BHD"), Ok(1200));
        assert_eq!(to_minor("7", "OMR"), Ok(7000));
        assert_eq!(to_minor("5000", "KRW"), Ok(5000));
    }

    #[test]
    fn rejects_what_is_not_an_exact_decimal() {
        for bad in [
            "", ".", "-", "abc", "1,50", "1.2.3", "1e3", "5.505", "0x10", "--1", "1 000", "NaN",
        ] {
            assert!(to_minor(bad, "USD").is_err(), "{bad:?}");
        }
        assert!(to_minor("92233720368547758.08", "USD").is_err(), "overflow");
        assert_eq!(to_minor("92233720368547758.07", "USD"), Ok(i64::MAX));
    }

    #[test]
    fn currency_codes() {
        assert_eq!(currency_code("usd"), Ok("USD".to_string()));
        assert!(currency_code("US").is_err());
        assert!(currency_code("U$D").is_err());
        assert_eq!(minor_digits("JPY"), 0);
        assert_eq!(minor_digits("KWD"), 3);
        assert_eq!(minor_digits("EUR"), 2);
    }
}
