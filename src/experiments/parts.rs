//! Finished measurements kept on disk, so that a long `compare` can stop and go on (`--full` with a
//! deep CNN takes hours). Every (net, seed) record, and every strong-ANN run, is written to
//! `OUT/parts/NAME.json` (atomically) as soon as it is measured, with the configuration it was measured
//! under. `compare --resume` reads back each part whose configuration matches the run's instead of
//! measuring it again; a part measured under another configuration is an error, never mixed in.

use crate::error::{Error, Result};
use crate::metrics::write_json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a report's part came from, as listed in report.json (`parts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// The file name without `.json`, e.g. `mlp-seed0`.
    pub name: String,
    /// The wgtrain version, git commit and UTC date it was measured with and on.
    pub wgtrain_version: String,
    pub build: String,
    pub date_utc: String,
    /// Whether this run read it back (`--resume`) rather than measuring it.
    pub resumed: bool,
}

#[derive(Serialize, Deserialize)]
struct Part<T> {
    /// Everything the measurement depends on apart from the seed and the net, which the name carries.
    key: Value,
    /// The net (its full layer spec), so two nets with one label cannot be confused.
    net: String,
    info: PartInfo,
    record: T,
}

/// The parts directory of one `compare` run.
pub struct Parts {
    dir: PathBuf,
    resume: bool,
    key: Value,
    date_utc: String,
    /// Every part this run used, in the order it used them.
    pub used: Vec<PartInfo>,
}

impl Parts {
    /// Parts under `out/parts`, for a run configured as `key`; read back only when `resume` is set.
    pub fn new(out: &Path, resume: bool, key: Value, date_utc: String) -> Self {
        Parts {
            dir: out.join("parts"),
            resume,
            key,
            date_utc,
            used: Vec::new(),
        }
    }

    /// The file of part `name`: characters other than letters, digits, `-`, `_` and `.` (a layer
    /// spec's commas and colons) become `_`.
    pub fn path(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }

    /// The record `name` of `net` (a layer spec) when resuming and it was measured under this run's
    /// configuration; `None` when not resuming or not measured yet. A part that cannot be read, or
    /// was measured under another configuration, is an error naming the file.
    pub fn load<T: DeserializeOwned>(&mut self, name: &str, net: &str) -> Result<Option<T>> {
        let path = self.path(name);
        if !self.resume || !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let part: Part<T> = serde_json::from_str(&text).map_err(|e| {
            Error::data(
                &path,
                format!("not a compare part ({e}); delete it to measure it again"),
            )
        })?;
        if part.key != self.key || part.net != net {
            let what = if part.net != net {
                format!("net {}", part.net)
            } else {
                first_difference(&part.key, &self.key)
            };
            return Err(Error::data(
                &path,
                format!(
                    "measured under another configuration ({what}); rerun without --resume, or use another --out"
                ),
            ));
        }
        let mut info = part.info;
        info.resumed = true;
        self.used.push(info);
        Ok(Some(part.record))
    }

    /// Write the freshly measured record `name` of `net`.
    pub fn store<T: Serialize>(&mut self, name: &str, net: &str, record: &T) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let info = PartInfo {
            name: name.into(),
            wgtrain_version: env!("CARGO_PKG_VERSION").into(),
            build: crate::BUILD_COMMIT.into(),
            date_utc: self.date_utc.clone(),
            resumed: false,
        };
        write_json(
            &self.path(name),
            &Part {
                key: self.key.clone(),
                net: net.into(),
                info: info.clone(),
                record,
            },
        )?;
        self.used.push(info);
        Ok(())
    }
}

/// The first field (a dotted path) where two configurations differ, with both values.
fn first_difference(stored: &Value, now: &Value) -> String {
    fn walk(a: &Value, b: &Value, at: &str) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, va) in x {
                    let here = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match y.get(k) {
                        Some(vb) => {
                            if let Some(d) = walk(va, vb, &here) {
                                return Some(d);
                            }
                        }
                        None => return Some(format!("{here} is not in this run's configuration")),
                    }
                }
                y.keys()
                    .find(|k| !x.contains_key(*k))
                    .map(|k| format!("{at}.{k} is new in this run's configuration"))
            }
            _ if a != b => Some(format!("{at}: {a} there, {b} now")),
            _ => None,
        }
    }
    walk(stored, now, "").unwrap_or_else(|| "unknown difference".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_part_is_read_back_only_under_the_same_configuration() {
        let dir = std::env::temp_dir().join(format!("wgtrain-parts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = json!({"protocol": {"epochs": 5}, "lr": 0.001});
        let mut p = Parts::new(&dir, false, key.clone(), "2026-12-06".into());
        assert_eq!(p.load::<Vec<f64>>("a", "fc10").unwrap(), None);
        p.store("a", "fc10", &vec![0.5, 0.25]).unwrap();

        let mut again = Parts::new(&dir, true, key.clone(), "2026-12-07".into());
        let r: Option<Vec<f64>> = again.load("a", "fc10").unwrap();
        assert_eq!(r, Some(vec![0.5, 0.25]));
        assert!(again.used[0].resumed);
        assert_eq!(again.used[0].date_utc, "2026-12-06");
        // Not resuming: nothing is read back.
        let mut fresh = Parts::new(&dir, false, key, "2026-12-07".into());
        assert_eq!(fresh.load::<Vec<f64>>("a", "fc10").unwrap(), None);
        assert!(fresh
            .path("conv3x3x8,relu:x")
            .ends_with("parts/conv3x3x8_relu_x.json"));

        let other = json!({"protocol": {"epochs": 6}, "lr": 0.001});
        let mut changed = Parts::new(&dir, true, other, "2026-12-07".into());
        let e = changed
            .load::<Vec<f64>>("a", "fc10")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.json") && e.contains("protocol.epochs: 5 there, 6 now"),
            "{e}"
        );
        let e = Parts::new(
            &dir,
            true,
            json!({"protocol": {"epochs": 5}, "lr": 0.001}),
            "x".into(),
        )
        .load::<Vec<f64>>("a", "fc20")
        .unwrap_err()
        .to_string();
        assert!(e.contains("net fc10"), "{e}");
        std::fs::write(dir.join("parts/a.json"), "{ torn").unwrap();
        let e = Parts::new(&dir, true, json!({}), "x".into())
            .load::<Vec<f64>>("a", "fc10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a compare part"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
