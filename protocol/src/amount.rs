//! Token amounts: decimal strings such as "0.01" parsed exactly into base units, and
//! back. No floating point anywhere near money.

/// Why a decimal amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("an amount must be a decimal number such as \"0.01\"")]
    Malformed,
    #[error("the amount has more than {decimals} decimal places")]
    TooPrecise { decimals: u8 },
    #[error("the amount is too large")]
    Overflow,
}

/// Parses `text` (e.g. "0.01", "2", "1.500000") into base units of a token with
/// `decimals` decimal places. Signs, exponents, spaces and empty parts are refused.
pub fn parse_units(text: &str, decimals: u8) -> Result<u64, AmountError> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.ends_with('.')) {
        return Err(AmountError::Malformed);
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > usize::from(decimals) {
        return Err(AmountError::TooPrecise { decimals });
    }
    let scale = 10u64
        .checked_pow(u32::from(decimals))
        .ok_or(AmountError::Overflow)?;
    let whole: u64 = whole.parse().map_err(|_| AmountError::Overflow)?;
    let fraction_units: u64 = if significant.is_empty() {
        0
    } else {
        let padding = 10u64.pow((usize::from(decimals) - significant.len()) as u32);
        significant
            .parse::<u64>()
            .map_err(|_| AmountError::Overflow)?
            * padding
    };
    whole
        .checked_mul(scale)
        .and_then(|units| units.checked_add(fraction_units))
        .ok_or(AmountError::Overflow)
}

/// Formats base units as a decimal string with no trailing zeros ("0.01", "2").
pub fn format_units(units: u64, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let (whole, fraction) = (u128::from(units) / scale, u128::from(units) % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0width$}", width = usize::from(decimals));
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_prices_exactly() {
        assert_eq!(parse_units("0.01", 6), Ok(10_000));
        assert_eq!(parse_units("2", 6), Ok(2_000_000));
        assert_eq!(parse_units("1.500000", 6), Ok(1_500_000));
        assert_eq!(parse_units("0.000001", 6), Ok(1));
        assert_eq!(parse_units("0", 6), Ok(0));
        // 0.1 + 0.2 style float error cannot happen: 0.3 is exactly 300000.
        assert_eq!(parse_units("0.3", 6), Ok(300_000));
        assert_eq!(parse_units("18446744073709.551615", 6), Ok(u64::MAX));
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for bad in [
            "", ".5", "5.", "-1", "+1", "1e6", " 1", "1,5", "0x10", "1.2.3", "one",
        ] {
            assert_eq!(parse_units(bad, 6), Err(AmountError::Malformed), "{bad:?}");
        }
        assert_eq!(
            parse_units("0.0000001", 6),
            Err(AmountError::TooPrecise { decimals: 6 })
        );
        assert_eq!(
            parse_units("18446744073709.551616", 6),
            Err(AmountError::Overflow)
        );
        assert_eq!(
            parse_units("99999999999999999999", 0),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn formats_base_units_back() {
        assert_eq!(format_units(10_000, 6), "0.01");
        assert_eq!(format_units(2_000_000, 6), "2");
        assert_eq!(format_units(1, 6), "0.000001");
        assert_eq!(format_units(u64::MAX, 6), "18446744073709.551615");
        assert_eq!(format_units(42, 0), "42");
        for units in [1, 999, 10_000, 123_456_789] {
            assert_eq!(parse_units(&format_units(units, 6), 6), Ok(units));
        }
    }
}
