use std::fmt;

/// Active ISO 4217 currency codes.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP \
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ \
GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD \
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR \
RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH \
UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

/// Currencies whose minor unit is not 1/100.
const ZERO_DECIMALS: &str = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF";
const THREE_DECIMALS: &str = "BHD IQD JOD KWD LYD OMR TND";

/// An ISO 4217 currency code (upper-case on the way in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an ISO 4217 currency code")]
pub struct CurrencyError(pub String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        let upper = raw.trim().to_ascii_uppercase();
        if upper.len() == 3 && ISO_4217.split(' ').any(|c| c == upper) {
            let b = upper.as_bytes();
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(CurrencyError(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the major unit (JPY 0, USD 2, KWD 3).
    pub fn minor_digits(&self) -> u32 {
        if ZERO_DECIMALS.split(' ').any(|c| c == self.as_str()) {
            0
        } else if THREE_DECIMALS.split(' ').any(|c| c == self.as_str()) {
            3
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Currency::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: integer minor units of a currency. Never a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Minor units (cents for USD).
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("a price cannot be negative")]
    Negative,
    #[error("amount is too large")]
    TooLarge,
}

/// Largest amount accepted for a price (about 10^13 major units). Not a guarantee
/// against overflow (prices × quantities and sums are checked where they are computed).
const MAX_PRICE: i64 = 1_000_000_000_000_000;

impl fmt::Display for Money {
    /// `25.50 USD`, `1200 JPY`, `-0.05 EUR`: exact, from the minor units.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let sign = if self.amount < 0 { "-" } else { "" };
        let minor = self.amount.unsigned_abs();
        let unit = 10u64.pow(digits);
        if digits == 0 {
            write!(f, "{sign}{minor} {}", self.currency)
        } else {
            let (major, rest) = (minor / unit, minor % unit);
            write!(
                f,
                "{sign}{major}.{rest:0width$} {}",
                self.currency,
                width = digits as usize
            )
        }
    }
}

impl Money {
    /// A price: non-negative and bounded.
    pub fn price(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount < 0 {
            return Err(MoneyError::Negative);
        }
        if amount > MAX_PRICE {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self { amount, currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_iso_codes() {
        assert_eq!(Currency::parse("usd").unwrap().as_str(), "USD");
        assert_eq!(Currency::parse("JPY").unwrap().minor_digits(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_digits(), 3);
        assert_eq!(Currency::parse("EUR").unwrap().minor_digits(), 2);
        for bad in ["", "US", "USDD", "XYZ", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_displays_exactly_in_major_units() {
        let m = |amount, c: &str| {
            Money {
                amount,
                currency: Currency::parse(c).unwrap(),
            }
            .to_string()
        };
        assert_eq!(m(2550, "USD"), "25.50 USD");
        assert_eq!(m(5, "EUR"), "0.05 EUR");
        assert_eq!(m(-5, "EUR"), "-0.05 EUR");
        assert_eq!(m(1200, "JPY"), "1200 JPY");
        assert_eq!(m(1, "KWD"), "0.001 KWD");
        assert_eq!(m(i64::MIN, "USD"), "-92233720368547758.08 USD");
    }

    #[test]
    fn prices_are_non_negative_integers() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(Money::price(1999, usd).unwrap().amount, 1999);
        assert_eq!(Money::price(-1, usd), Err(MoneyError::Negative));
        assert_eq!(Money::price(i64::MAX, usd), Err(MoneyError::TooLarge));
        let parsed: Money = serde_json::from_str(r#"{"amount":500,"currency":"eur"}"#).unwrap();
        assert_eq!(parsed.currency.as_str(), "EUR");
        assert!(
            serde_json::from_str::<Money>(r#"{"amount":5.5,"currency":"EUR"}"#).is_err(),
            "no floats"
        );
    }
}
