//! Durations on the command line: `2s`, `90s`, `5m`, `1m30s`.
//!
//! Parsing is humantime's; this module adds the bounds that make a value sensible for a
//! timeout (not zero, not longer than a day), so a typo fails at start-up with a clear error
//! instead of producing a request that expires at once or never.

use std::time::Duration;

/// Why a duration given on the command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("{0} (write it like 2s, 90s or 5m)")]
    Syntax(#[from] humantime::DurationError),
    #[error("must be more than zero")]
    Zero,
    #[error("must be at most {}", humantime::format_duration(MAX))]
    TooLong,
}

const MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a timeout such as `60s`; usable directly as a clap `value_parser`.
pub fn parse_timeout(s: &str) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(s)?;
    if d.is_zero() {
        Err(DurationError::Zero)
    } else if d > MAX {
        Err(DurationError::TooLong)
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_the_readme_shows() {
        assert_eq!(parse_timeout("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("5m").unwrap(), Duration::from_secs(300));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(matches!(
            parse_timeout("soon"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(parse_timeout("0s"), Err(DurationError::Zero)));
        assert!(matches!(parse_timeout("2d"), Err(DurationError::TooLong)));
    }
}
