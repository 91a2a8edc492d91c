//! Deterministic jitter, bit for bit as the Temporal server computes it.
//!
//! The jitter of a nominal time is `fingerprint32(time.MarshalBinary() ++ seed) * max_ms >>
//! 32` milliseconds, where `MarshalBinary` is Go's 15-byte encoding of the UTC instant and
//! `seed` is `"<namespace id>-<schedule id>"` ([`jitter_seed`]). The same schedule thus gets
//! the same jitter for the same nominal time on every node and after every restart.

/// Seconds from 0001-01-01T00:00:00Z (Go's internal epoch) to the unix epoch.
const GO_EPOCH_TO_UNIX: i64 = 62_135_596_800;

/// The seed Temporal uses for a schedule's jitter: `"<namespace id>-<schedule id>"`
/// (the namespace's id, a UUID, not its name).
pub fn jitter_seed(namespace_id: &str, schedule_id: &str) -> String {
    format!("{namespace_id}-{schedule_id}")
}

/// The jitter in milliseconds for `nominal` (unix seconds, a whole second as every nominal
/// time is), below `max_jitter_ms` (0 if that is not positive).
pub(crate) fn jitter_ms(seed: &str, nominal: i64, max_jitter_ms: i64) -> i64 {
    let mut bin = Vec::with_capacity(15 + seed.len());
    bin.push(1u8); // encoding version 1
    bin.extend_from_slice(&(nominal + GO_EPOCH_TO_UNIX).to_be_bytes());
    bin.extend_from_slice(&0u32.to_be_bytes()); // nanoseconds
    bin.extend_from_slice(&(-1i16).to_be_bytes()); // zone offset: UTC
    bin.extend_from_slice(seed.as_bytes());
    let fp = u64::from(farmhash::fingerprint32(&bin));
    let max = u64::try_from(max_jitter_ms)
        .unwrap_or(0)
        .min(u64::from(u32::MAX));
    ((fp * max) >> 32) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>()
            .expect("test timestamp")
            .as_second()
    }

    #[test]
    fn matches_temporal_unit_test_values() {
        // Temporal's own spec tests: a 24h interval with 1h jitter, nominal 2022-03-24T00:00Z.
        let nominal = unix("2022-03-24T00:00:00Z");
        assert_eq!(
            jitter_ms("", nominal, 3_600_000),
            (35 * 60 + 24) * 1000 + 276
        );
        assert_eq!(
            jitter_ms("seed-1", nominal, 3_600_000),
            (6 * 60 + 12) * 1000 + 519
        );
        assert_eq!(
            jitter_ms("seed-2", nominal, 3_600_000),
            (39 * 60 + 16) * 1000 + 922
        );
    }

    #[test]
    fn bounded_and_never_negative() {
        for n in 0..1000 {
            let j = jitter_ms("ns-sched", 1_700_000_000 + n * 60, 5_000);
            assert!((0..5_000).contains(&j), "{j}");
        }
        assert_eq!(jitter_ms("x", 1_700_000_000, 0), 0);
        assert_eq!(jitter_ms("x", 1_700_000_000, -5), 0);
    }

    #[test]
    fn seed_format() {
        assert_eq!(jitter_seed("ns-id", "my-schedule"), "ns-id-my-schedule");
    }
}
