//! Rate limits by the generic cell rate algorithm (GCRA): one number per key, the
//! theoretical arrival time (TAT) of the next request. A quota of `n` per `period` spaces
//! requests `T = period / n` apart; a burst of `b` lets up to `b` arrive at once
//! (tolerance `τ = T·(b − 1)`). Time is milliseconds, passed in.
//!
//! The same step runs in process ([`Gcra::check`]) and, for limits shared by replicas, as a
//! Lua script in Redis (`tollgate-store`); a contract test runs one sequence on both.

use std::fmt;
use std::time::Duration;

/// A quota: `limit` requests per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
    pub burst: u32,
}

/// Why a quota is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate `{0}`: write it as N/s, N/min or N/h with N ≥ 1, and a burst ≥ 1")]
pub struct QuotaError(pub String);

impl Quota {
    /// Parses `"10/s"`, `"60/min"`, `"1000/h"`.
    pub fn parse(rate: &str, burst: u32) -> Result<Self, QuotaError> {
        let bad = || QuotaError(rate.to_owned());
        let (n, unit) = rate.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if limit == 0 || burst == 0 {
            return Err(bad());
        }
        Ok(Self { limit, period, burst })
    }

    /// The GCRA parameters of this quota.
    #[must_use]
    pub fn gcra(&self) -> Gcra {
        let period_ms = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        // At least 1 ms apart: a quota above 1000/s is not limited more finely than that.
        let emission_ms = (period_ms / i64::from(self.limit)).max(1);
        Gcra {
            emission_ms,
            tolerance_ms: emission_ms.saturating_mul(i64::from(self.burst) - 1),
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit} (burst {})", self.limit, self.burst)
    }
}

/// The GCRA parameters: emission interval `T` and burst tolerance `τ`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub emission_ms: i64,
    pub tolerance_ms: i64,
}

/// One step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Allowed; store this TAT (until it has passed: then the key may be forgotten).
    Allowed { tat: i64 },
    /// Refused; nothing changes. Retry after this many milliseconds.
    Limited { retry_after_ms: i64 },
}

impl Gcra {
    /// A request at `now` for a key whose stored TAT is `tat` (none: never seen, or expired).
    #[must_use]
    pub fn check(&self, tat: Option<i64>, now: i64) -> Step {
        let tat = tat.map_or(now, |t| t.max(now));
        let allow_at = tat - self.tolerance_ms;
        if now < allow_at {
            Step::Limited {
                retry_after_ms: allow_at - now,
            }
        } else {
            Step::Allowed {
                tat: tat + self.emission_ms,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotas_parse_and_refuse_nonsense() {
        let q = Quota::parse("60/min", 10).expect("valid");
        assert_eq!(
            q.gcra(),
            Gcra {
                emission_ms: 1000,
                tolerance_ms: 9000
            }
        );
        assert_eq!(q.to_string(), "60/min (burst 10)");
        assert!(Quota::parse("0/s", 1).is_err());
        assert!(Quota::parse("5/day", 1).is_err());
        assert!(Quota::parse("5", 1).is_err());
        assert!(Quota::parse("5/s", 0).is_err());
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let g = Quota::parse("1/s", 3).expect("valid").gcra();
        let mut tat = None;
        for _ in 0..3 {
            match g.check(tat, 0) {
                Step::Allowed { tat: t } => tat = Some(t),
                Step::Limited { .. } => panic!("within the burst"),
            }
        }
        assert_eq!(g.check(tat, 0), Step::Limited { retry_after_ms: 1000 });
        assert_eq!(g.check(tat, 999), Step::Limited { retry_after_ms: 1 });
        assert!(matches!(g.check(tat, 1000), Step::Allowed { .. }));
    }

    proptest! {
        /// Over any window, no more than `burst + window / T` requests get through.
        #[test]
        fn never_more_than_the_quota_allows(limit in 1u32..50, burst in 1u32..20, gaps in proptest::collection::vec(0i64..400, 1..300)) {
            let g = Quota { limit, period: Duration::from_secs(1), burst }.gcra();
            let (mut now, mut tat, mut allowed) = (0i64, None, 0i64);
            for gap in gaps {
                now += gap;
                if let Step::Allowed { tat: t } = g.check(tat, now) {
                    tat = Some(t);
                    allowed += 1;
                }
            }
            prop_assert!(allowed <= i64::from(burst) + now / g.emission_ms + 1);
        }
    }
}
