//! The article's two self-contradictions, each judged by the measurements: its drawbacks text says
//! CNNs "require a lot of training data" where its table says they make "more efficient use of training
//! data"; its text says CNNs "are computationally demanding" where its table says they are "more
//! computationally efficient".

use super::claims::Claim;
use super::protocol::SeedRecord;
use super::stats::{mean_sd, verdict_greater, Verdict, RULE};
use serde_json::json;

/// The article's two sentences on training data: (drawbacks text, comparison table).
pub const DATA_TEXT: &str = "CNNs require a lot of training data";
pub const DATA_TABLE: &str = "more efficient use of training data";

/// The article's two sentences on compute: (drawbacks text, comparison table); judged in
/// [`super::budget::compute_contradiction`].
pub const COMPUTE_TEXT: &str = "are computationally demanding";
pub const COMPUTE_TABLE: &str = "more computationally efficient";

/// Per training-set size: the CNN's lead in points per seed and the verdict on "the CNN wins there".
fn per_size(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Vec<(usize, Vec<f64>, Verdict)> {
    let sizes = ann[0]
        .data_efficiency
        .len()
        .min(cnn[0].data_efficiency.len());
    (0..sizes)
        .map(|i| {
            let d: Vec<f64> = ann
                .iter()
                .zip(cnn)
                .map(|(a, c)| 100.0 * (c.data_efficiency[i].2 - a.data_efficiency[i].2))
                .collect();
            let v = verdict_greater(&d, 0.5).0;
            (ann[0].data_efficiency[i].0, d, v)
        })
        .collect()
}

/// From the verdicts on "the CNN wins" at each size, smallest first: the table's sentence holds
/// (supported) if the CNN wins at the smallest set and loses at none; the text's drawback (not
/// supported) if the CNN loses at the smallest set, needing more data than the ANN to catch up;
/// anything else (a tie at the smallest, a loss only at a larger size) is inconclusive.
pub fn data_verdict(at: &[Verdict]) -> Verdict {
    match at.first() {
        Some(Verdict::NotSupported) => Verdict::NotSupported,
        Some(Verdict::Supported) if !at.contains(&Verdict::NotSupported) => Verdict::Supported,
        _ => Verdict::Inconclusive,
    }
}

/// "Require a lot of training data" (text) against "more efficient use of training data" (table),
/// judged over every training-set size from 10 images per class up.
pub fn training_data(ann: &[SeedRecord], cnn: &[SeedRecord], classes: usize) -> Claim {
    let points = per_size(ann, cnn);
    let per = |n: usize| n / classes.max(1);
    let at: Vec<Verdict> = points.iter().map(|p| p.2).collect();
    let verdict = data_verdict(&at);
    let losing = at
        .iter()
        .take_while(|&&v| v == Verdict::NotSupported)
        .count();
    let loses_anywhere = at.contains(&Verdict::NotSupported);
    let winner = |v: Verdict| match v {
        Verdict::Supported => "CNN",
        Verdict::NotSupported => "ANN",
        Verdict::Inconclusive => "neither",
    };
    let line = points
        .iter()
        .map(|(n, d, v)| {
            let (m, sd) = mean_sd(d);
            format!(
                "{} per class: {} ({m:+.2} ± {sd:.2} points)",
                per(*n),
                winner(*v)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let tail = match (losing, points.get(losing)) {
        (0, _) if loses_anywhere => {
            "the CNN wins or ties at the smallest set but loses at a larger one".to_string()
        }
        (0, _) => "the CNN loses at no size measured".into(),
        (_, Some(p)) => format!(
            "the ANN wins up to {} per class, the CNN no longer loses from {} per class",
            per(points[losing - 1].0),
            per(p.0)
        ),
        (_, None) => "the ANN wins at every size measured".into(),
    };
    Claim {
        id: "contradiction_data".into(),
        title: "Contradiction: training data".into(),
        statement: format!(
            "the article's text says \"{DATA_TEXT}\", its table says CNNs make \"{DATA_TABLE}\"; supported means the table is right (the CNN wins at the smallest set, down to 10 images per class, and loses at none), not supported means the text is (the CNN loses at the smallest set)"
        ),
        verdict,
        rule: format!("{RULE}; at each training-set size d = CNN - ANN test accuracy (balanced subsets, each net trained from scratch), floor 0.5 points; the winner at a size is the CNN when supported there, the ANN when not supported"),
        evidence: format!("{line}; {tail}"),
        values: json!({
            "sizes": points.iter().map(|p| p.0).collect::<Vec<_>>(),
            "difference": points.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
            "winner": points.iter().map(|p| winner(p.2)).collect::<Vec<_>>(),
        }),
        plot: Some("data_efficiency.png".into()),
        pair: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Inconclusive as I, NotSupported as N, Supported as S};

    #[test]
    fn which_sentence_the_sizes_side_with() {
        assert_eq!(data_verdict(&[S, S, I]), S);
        assert_eq!(
            data_verdict(&[S, I, N]),
            I,
            "a loss with more data is not the text's drawback"
        );
        assert_eq!(data_verdict(&[N, N, S]), N);
        assert_eq!(data_verdict(&[N]), N);
        assert_eq!(data_verdict(&[I, S]), I);
        assert_eq!(data_verdict(&[]), I);
    }
}
