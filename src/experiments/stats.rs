//! Summaries over seeds and the verdict rule every claim uses.

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// A claim's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Supported,
    NotSupported,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::NotSupported => "not supported",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The rule, stated once: a claim that "A exceeds B" is judged on the per-seed differences d = A - B.
/// The margin is twice the standard deviation of d across seeds, but never less than `floor` (so one
/// seed, or seeds that happen to agree, cannot make noise look like evidence).
/// supported: mean(d) > margin; not supported: mean(d) < -margin (the opposite holds);
/// inconclusive: |mean(d)| <= margin.
pub fn verdict_greater(differences: &[f64], floor: f64) -> (Verdict, f64, f64, f64) {
    let (mean, sd) = mean_sd(differences);
    let margin = (2.0 * sd).max(floor);
    let v = if mean > margin {
        Verdict::Supported
    } else if mean < -margin {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    };
    (v, mean, sd, margin)
}

/// Text of the rule for reports.
pub const RULE: &str = "per-seed differences d (CNN minus ANN, oriented so that d > 0 means the claim holds); margin = max(2 x sd(d) across seeds, floor); supported if mean(d) > margin, not supported if mean(d) < -margin, inconclusive otherwise";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sd() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn verdict_rule() {
        // Clear win: mean 3, sd 0.1 -> margin max(0.2, 0.5) = 0.5.
        assert_eq!(verdict_greater(&[2.9, 3.0, 3.1], 0.5).0, Verdict::Supported);
        // Clear loss.
        assert_eq!(
            verdict_greater(&[-2.9, -3.0, -3.1], 0.5).0,
            Verdict::NotSupported
        );
        // Mean 1 but sd 1 -> margin 2: inconclusive.
        assert_eq!(
            verdict_greater(&[0.0, 1.0, 2.0], 0.5).0,
            Verdict::Inconclusive
        );
        // Below the floor.
        assert_eq!(verdict_greater(&[0.3], 0.5).0, Verdict::Inconclusive);
        let (_, mean, sd, margin) = verdict_greater(&[0.0, 1.0, 2.0], 0.5);
        assert_eq!((mean, sd, margin), (1.0, 1.0, 2.0));
    }
}
