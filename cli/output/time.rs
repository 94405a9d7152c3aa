//! Times as people read them in a table: `12s ago`, `3m ago`, `5h ago`, `4d ago`, then the
//! date. The wire's RFC 3339 timestamps stay available with `--wide` and `--json`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `ts` (RFC 3339) relative to now; the text as given when it cannot be read.
pub fn relative_time(ts: &str) -> String {
    match OffsetDateTime::parse(ts, &Rfc3339) {
        Ok(t) => ago(OffsetDateTime::now_utc() - t, t),
        Err(_) => ts.to_string(),
    }
}

/// How long ago `t` was, `elapsed` before now.
pub fn ago(elapsed: time::Duration, t: OffsetDateTime) -> String {
    let secs = elapsed.whole_seconds();
    match secs {
        // A daemon clock slightly ahead of ours.
        ..=0 => "just now".to_string(),
        1..=59 => format!("{secs}s ago"),
        60..=3_599 => format!("{}m ago", secs / 60),
        3_600..=86_399 => format!("{}h ago", secs / 3_600),
        86_400..=2_591_999 => format!("{}d ago", secs / 86_400),
        _ => format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_at_a_glance() {
        let t = OffsetDateTime::parse("2026-11-21T23:19:23.123Z", &Rfc3339).unwrap();
        let s = time::Duration::seconds;
        assert_eq!(ago(s(-3), t), "just now");
        assert_eq!(ago(s(12), t), "12s ago");
        assert_eq!(ago(s(190), t), "3m ago");
        assert_eq!(ago(s(5 * 3600 + 10), t), "5h ago");
        assert_eq!(ago(s(4 * 86_400), t), "4d ago");
        assert_eq!(ago(s(90 * 86_400), t), "2026-11-21");
    }

    #[test]
    fn unreadable_times_are_shown_as_they_are() {
        assert_eq!(relative_time("yesterday"), "yesterday");
        assert!(relative_time("2000-01-01T00:00:00Z").starts_with("2000-01-01"));
    }
}
