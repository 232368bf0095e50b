//! Label checks and class names: classes are 0..K-1 with at least one training image each (unless the
//! user declares `--num-classes K`), test labels lie in the training set's classes, and class names
//! come from `--class-names`, a `classes.txt` beside the data, the format's own names, or the numbers.

use super::Dataset;
use crate::error::{Error, Result};
use std::path::Path;

/// The classes a training set defines.
#[derive(Debug, Clone, PartialEq)]
pub struct Classes {
    /// K: the model's output count.
    pub count: usize,
    /// Classes in 0..K with no training image (only ever non-empty with `--num-classes`).
    pub empty: Vec<usize>,
}

/// "0-4, 6, 9-200": the set of labels present, as ranges.
fn ranges(present: &[bool]) -> String {
    let mut out = Vec::new();
    let mut c = 0;
    while c < present.len() {
        if !present[c] {
            c += 1;
            continue;
        }
        let start = c;
        while c + 1 < present.len() && present[c + 1] {
            c += 1;
        }
        out.push(if start == c {
            start.to_string()
        } else {
            format!("{start}-{c}")
        });
        c += 1;
    }
    out.join(", ")
}

/// Check the labels of `train` (read from `train_file`) and `test` (from `test_file`). `declared` is
/// `--num-classes`. Errors name the file, the first offending index, its label and the labels seen.
pub fn check(
    train: &Dataset,
    test: &Dataset,
    declared: Option<usize>,
    train_file: &Path,
    test_file: &Path,
) -> Result<Classes> {
    let mut present = [false; 256];
    for &l in &train.labels {
        present[l as usize] = true;
    }
    let max = train.labels.iter().copied().max().unwrap_or(0) as usize;
    let seen = ranges(&present[..=max]);
    let count = match declared {
        Some(k) => {
            if let Some(i) = train.labels.iter().position(|&l| l as usize >= k) {
                return Err(Error::data(
                    train_file,
                    format!(
                        "label {} at index {i} is outside --num-classes {k} (labels seen: {seen}); raise --num-classes or fix the label",
                        train.labels[i]
                    ),
                ));
            }
            k
        }
        None => {
            if let Some(gap) = present[..=max].iter().position(|&p| !p) {
                let i = train
                    .labels
                    .iter()
                    .position(|&l| l as usize > gap)
                    .expect("a label above the gap exists");
                let next = (gap..=max).find(|&c| present[c]).unwrap_or(max);
                let missing = if next - 1 == gap {
                    format!("class {gap} has")
                } else {
                    format!("classes {gap}-{} have", next - 1)
                };
                return Err(Error::data(
                    train_file,
                    format!(
                        "label {} at index {i}: {missing} no training image (labels seen: {seen}); labels must be contiguous 0..K-1: fix the label, or declare --num-classes {} to allow empty classes",
                        train.labels[i],
                        max + 1
                    ),
                ));
            }
            max + 1
        }
    };
    if count < 2 {
        return Err(Error::data(
            train_file,
            "the training labels hold a single class; need at least 2",
        ));
    }
    // Without a declaration every class in 0..count has a training image; with one, test labels may
    // use any declared class.
    if let Some(i) = test.labels.iter().position(|&l| l as usize >= count) {
        return Err(Error::data(
            test_file,
            format!(
                "test label {} at index {i} is not a training class (training labels seen: {seen}; {count} classes); fix the label, or declare --num-classes",
                test.labels[i]
            ),
        ));
    }
    Ok(Classes {
        count,
        empty: (0..count)
            .filter(|&c| !present.get(c).copied().unwrap_or(false))
            .collect(),
    })
}

/// Class names in label order: `--class-names`, else `classes.txt` in `dir` (one per line), else the
/// format's names, else the label numbers. A list of the wrong length is an error naming its source.
pub fn names(
    count: usize,
    flag: Option<Vec<String>>,
    dir: Option<&Path>,
    format_names: Option<Vec<String>>,
) -> Result<Vec<String>> {
    let file = dir.map(|d| d.join("classes.txt")).filter(|f| f.is_file());
    let (names, source): (Vec<String>, String) = if let Some(n) = flag {
        (n, "--class-names".into())
    } else if let Some(f) = file {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        let n: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        (n, f.display().to_string())
    } else if let Some(n) = format_names.filter(|n| n.len() >= count) {
        return Ok(n[..count].to_vec());
    } else {
        return Ok((0..count).map(|c| c.to_string()).collect());
    };
    if names.len() != count {
        return Err(Error::Config(format!(
            "{source}: gives {} class names but the data has {count} classes; give one name per class in label order",
            names.len()
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    fn ds(labels: &[u8]) -> Dataset {
        Dataset {
            shape: ImageShape {
                channels: 1,
                height: 1,
                width: 1,
            },
            images: vec![0; labels.len()],
            labels: labels.to_vec(),
        }
    }

    #[test]
    fn gaps_are_refused_unless_declared() {
        let (tr, te) = (ds(&[0, 1, 2, 200, 1]), ds(&[0, 2]));
        let p = Path::new("train-labels");
        let e = check(&tr, &te, None, p, p).unwrap_err().to_string();
        assert!(e.contains("label 200 at index 3"), "{e}");
        assert!(e.contains("classes 3-199 have no training image"), "{e}");
        assert!(e.contains("labels seen: 0-2, 200"), "{e}");
        let c = check(&tr, &te, Some(201), p, p).unwrap();
        assert_eq!(c.count, 201);
        assert_eq!(c.empty.len(), 197);
        let e = check(&tr, &te, Some(10), p, p).unwrap_err().to_string();
        assert!(e.contains("outside --num-classes 10"), "{e}");
    }

    #[test]
    fn test_labels_must_be_training_classes() {
        let p = Path::new("t10k-labels");
        let e = check(&ds(&[0, 1, 2]), &ds(&[1, 3]), None, p, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("test label 3 at index 1"), "{e}");
        assert!(e.contains("training labels seen: 0-2"), "{e}");
        assert_eq!(
            check(&ds(&[0, 1, 2]), &ds(&[1, 2]), None, p, p).unwrap(),
            Classes {
                count: 3,
                empty: vec![]
            }
        );
        assert!(check(&ds(&[0, 0]), &ds(&[0]), None, p, p).is_err());
    }

    #[test]
    fn names_come_from_the_flag_then_the_format() {
        let flag = Some(vec!["a".to_string(), "b".into()]);
        assert_eq!(names(2, flag.clone(), None, None).unwrap(), ["a", "b"]);
        assert!(names(3, flag, None, None).is_err());
        assert_eq!(names(2, None, None, None).unwrap(), ["0", "1"]);
        let fmt = Some(vec!["x".to_string(), "y".into(), "z".into()]);
        assert_eq!(names(2, None, None, fmt).unwrap(), ["x", "y"]);
    }
}
