//! Token and lease times: unix milliseconds, so a short TTL is never cut
//! by rounding to whole seconds (a 3 s token renewed at 44.9 s lives until
//! 47.9 s). Answers still give TTLs in whole seconds, as Vault does.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `secs` later than `from_ms`, saturating.
pub fn after_secs(from_ms: i64, secs: u64) -> i64 {
    from_ms.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000))
}

/// Whole seconds from `now_ms` to `until_ms`, rounded to the nearest second
/// (a lookup a few milliseconds after creation still shows the TTL given).
pub fn secs_left(until_ms: i64, now_ms: i64) -> u64 {
    let left = until_ms.saturating_sub(now_ms).max(0) as u64;
    left.saturating_add(500) / 1000
}

/// The unix second at or after `ms` (for engines, whose external expiry, such
/// as a database `VALID UNTIL`, must never come before the lease's).
pub fn ceil_secs(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

/// The unix second containing `ms` (for fields Vault gives as integers).
pub fn floor_secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// RFC 3339 with the sub-second part, as Vault writes `expire_time`.
pub fn rfc3339_ms(ms: i64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_never_shortens() {
        assert_eq!(after_secs(44_900, 3), 47_900);
        assert_eq!(secs_left(47_900, 44_900), 3);
        assert_eq!(secs_left(47_900, 45_401), 2);
        assert_eq!(secs_left(1_000, 2_000), 0);
        assert_eq!(ceil_secs(47_900), 48);
        assert_eq!(ceil_secs(47_000), 47);
        assert_eq!(floor_secs(47_900), 47);
        assert_eq!(after_secs(i64::MAX - 5, 10), i64::MAX);
    }

    #[test]
    fn rfc3339_keeps_the_fraction() {
        assert_eq!(
            rfc3339_ms(1_500),
            Value::String("1970-01-01T00:00:01.5Z".into())
        );
        assert_eq!(
            rfc3339_ms(2_000),
            Value::String("1970-01-01T00:00:02Z".into())
        );
    }
}
