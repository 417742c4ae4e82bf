//! Reading a Prometheus histogram out of a `/metrics` page (the agent's
//! `skiff_network_programming_duration_seconds`, …) and bounding its quantiles, so an
//! integration test can assert "p99 ≤ 100 ms" after a run of changes.
//!
//! ```text
//! let before = Histogram::parse(&scrape_1, "skiff_network_programming_duration_seconds")?;
//! … changes …
//! let after = Histogram::parse(&scrape_2, "skiff_network_programming_duration_seconds")?;
//! let p99 = after.since(&before).quantile_upper_bound(0.99);
//! ```

/// One histogram (without labels other than `le`): cumulative counts by upper bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, ascending, the last one `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("histogram {name}: no `{name}_bucket` lines in the exposition")]
    Missing { name: String },
    #[error("histogram {name}: line {line:?}: {what}")]
    Line {
        name: String,
        line: String,
        what: &'static str,
    },
}

impl Histogram {
    /// Parses histogram `name` from Prometheus text exposition `text`.
    pub fn parse(text: &str, name: &str) -> Result<Self, MetricsError> {
        let bad = |line: &str, what| MetricsError::Line {
            name: name.to_string(),
            line: line.to_string(),
            what,
        };
        let bucket = format!("{name}_bucket{{");
        let (mut buckets, mut sum, mut count) = (Vec::new(), 0.0, 0);
        for line in text.lines().map(str::trim) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if let Some(labels) = series.strip_prefix(&bucket) {
                let le = labels
                    .split(',')
                    .find_map(|l| l.trim().strip_prefix("le=\""))
                    .and_then(|l| l.split('"').next())
                    .ok_or_else(|| bad(line, "no le label"))?;
                let le = match le {
                    "+Inf" => f64::INFINITY,
                    b => b.parse().map_err(|_| bad(line, "le is not a number"))?,
                };
                let n = parse_count(value).ok_or_else(|| bad(line, "count is not a number"))?;
                buckets.push((le, n));
            } else if series == format!("{name}_sum") {
                sum = value
                    .parse()
                    .map_err(|_| bad(line, "sum is not a number"))?;
            } else if series == format!("{name}_count") {
                count = parse_count(value).ok_or_else(|| bad(line, "count is not a number"))?;
            }
        }
        if buckets.is_empty() {
            return Err(MetricsError::Missing {
                name: name.to_string(),
            });
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().is_some_and(|b| b.0.is_finite()) {
            buckets.push((f64::INFINITY, count));
        }
        Ok(Self {
            buckets,
            sum,
            count,
        })
    }

    /// What was observed after `earlier` (a scrape of the same histogram taken before).
    pub fn since(&self, earlier: &Self) -> Self {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|b| b.0 == le)
                .map_or(0, |b| b.1)
        };
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, n)| (le, n.saturating_sub(before(le))))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// An upper bound of quantile `q` (0..=1): the `le` of the first bucket holding at
    /// least `q · count` observations, so "p99 ≤ 0.1" is proved when a bucket bound equals
    /// 0.1. Unlike Prometheus' `histogram_quantile` it does not interpolate inside the
    /// bucket, and a quantile in the `+Inf` bucket is `+Inf` (not the highest finite
    /// bound). `None` when nothing was observed.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        self.buckets.iter().find(|b| b.1 >= rank).map(|b| b.0)
    }
}

fn parse_count(v: &str) -> Option<u64> {
    // Counts are integers, but some exporters write them as floats (`3e+00`).
    v.parse::<u64>()
        .ok()
        .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "skiff_network_programming_duration_seconds";

    fn page(counts: [u64; 4], sum: f64) -> String {
        format!(
            "# HELP {NAME} Time to program.\n\
             # TYPE {NAME} histogram\n\
             {NAME}_bucket{{le=\"0.01\"}} {}\n\
             {NAME}_bucket{{le=\"0.05\"}} {}\n\
             {NAME}_bucket{{le=\"0.1\"}} {}\n\
             {NAME}_bucket{{le=\"+Inf\"}} {}\n\
             {NAME}_sum {sum}\n\
             {NAME}_count {}\n\
             other_metric_bucket{{le=\"1\"}} 99\n",
            counts[0], counts[1], counts[2], counts[3], counts[3]
        )
    }

    #[test]
    fn parses_buckets_sum_and_count() {
        let h = Histogram::parse(&page([1, 3, 4, 5], 2.5), NAME).unwrap();
        assert_eq!(
            h.buckets,
            [(0.01, 1), (0.05, 3), (0.1, 4), (f64::INFINITY, 5)]
        );
        assert_eq!((h.sum, h.count), (2.5, 5));
        let e = Histogram::parse(&page([1, 3, 4, 5], 2.5), "nope").unwrap_err();
        assert!(e.to_string().contains("nope_bucket"), "{e}");
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        // 100 observations: 90 ≤ 10 ms, 9 more ≤ 50 ms, 1 more ≤ 100 ms, none above.
        let h = Histogram::parse(&page([90, 99, 100, 100], 1.0), NAME).unwrap();
        assert_eq!(h.quantile_upper_bound(0.5), Some(0.01));
        assert_eq!(h.quantile_upper_bound(0.9), Some(0.01));
        assert_eq!(h.quantile_upper_bound(0.95), Some(0.05));
        assert_eq!(h.quantile_upper_bound(0.99), Some(0.05));
        assert_eq!(h.quantile_upper_bound(1.0), Some(0.1));
        // One slow observation in 50 puts p99 past every finite bound.
        let h = Histogram::parse(&page([49, 49, 49, 50], 1.0), NAME).unwrap();
        assert_eq!(h.quantile_upper_bound(0.99), Some(f64::INFINITY));
        let empty = Histogram::parse(&page([0, 0, 0, 0], 0.0), NAME).unwrap();
        assert_eq!(empty.quantile_upper_bound(0.99), None);
    }

    #[test]
    fn since_subtracts_an_earlier_scrape() {
        let before = Histogram::parse(&page([5, 5, 5, 6], 3.0), NAME).unwrap();
        let after = Histogram::parse(&page([105, 105, 105, 106], 3.5), NAME).unwrap();
        let d = after.since(&before);
        assert_eq!(d.count, 100);
        assert_eq!(d.quantile_upper_bound(0.99), Some(0.01));
        assert!((d.sum - 0.5).abs() < 1e-9);
    }
}
