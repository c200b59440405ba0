//! Latency samples reduced to the two percentiles the report shows.
//!
//! Averages hide what a user notices (the slow outliers), so every latency figure is a p50 and
//! a p99 over all the samples of a measurement, by the nearest-rank method: the p-th
//! percentile is a sample that was actually observed.

use std::time::Duration;

/// The p50 and p99 of a set of latency samples, and how many samples there were.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
}

impl Summary {
    /// Summarizes `samples`; `None` when there are none.
    pub fn of(mut samples: Vec<Duration>) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Summary {
            count: samples.len(),
            p50: nearest_rank(&samples, 50),
            p99: nearest_rank(&samples, 99),
        })
    }
}

/// The smallest sample that at least `percent`% of the samples are less than or equal to.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The median of a few whole-run measurements (start times, resident sizes).
pub fn median<T: Copy + Ord>(mut values: Vec<T>) -> Option<T> {
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_observed_samples() {
        let samples: Vec<Duration> = (1..=200).rev().map(Duration::from_micros).collect();
        let s = Summary::of(samples).unwrap();
        assert_eq!(s.count, 200);
        assert_eq!(s.p50, Duration::from_micros(100));
        assert_eq!(s.p99, Duration::from_micros(198));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let s = Summary::of(vec![Duration::from_millis(3)]).unwrap();
        assert_eq!(
            (s.p50, s.p99),
            (Duration::from_millis(3), Duration::from_millis(3))
        );
        assert!(Summary::of(Vec::new()).is_none());
    }

    #[test]
    fn the_median_of_an_even_count_is_the_lower_middle() {
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(Vec::<u32>::new()), None);
    }
}
