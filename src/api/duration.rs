//! Go-style durations (`24h`, `1h30m`, `90s`) as used in Flux and
//! cert-manager specs, parsed without panicking.

use std::time::Duration;

/// Schema pattern for duration fields, so the API server rejects garbage.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: use units h, m, s or ms, e.g. 24h or 1h30m")]
pub struct DurationError(pub String);

/// Parses `1h30m`, `15m`, `90s`, `250ms`, `1.5h`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(input.to_string());
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let (unit_secs, unit_len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return Err(err());
        };
        total += value * unit_secs;
        rest = &rest[unit_len..];
    }
    // Ten years is far beyond any sensible interval and keeps the value finite.
    if !total.is_finite() || total > 315_360_000.0 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "h", "10", "10d", "1h-", "-5m", "1e9h", "99999999999h"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
