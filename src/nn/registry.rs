//! Every layer token the `--arch` spec knows: one line per op family. A parser returns `None` when
//! the token is not its own, and an error saying what it expected when it is but is malformed.

use super::op::Layer;
use crate::error::{Error, Result};

type Parser = fn(&str) -> Option<std::result::Result<Box<dyn Layer>, String>>;

/// (syntax shown in errors and `--help`, parser), tried in order.
pub const LAYERS: &[(&str, Parser)] = &[
    ("convKHxKWxOUT[pP][sS][nb]", crate::ops::conv2d::parse),
    ("maxpoolK[sS]", crate::ops::pool::parse),
    ("avgpoolK[sS]", crate::ops::pool::parse),
    ("fcN", crate::ops::matmul::parse),
    ("flatten", super::layers::parse_flatten),
    ("relu", crate::ops::relu::parse),
    ("bn", crate::ops::batchnorm::parse),
    ("gap", crate::ops::gap::parse),
    ("dropoutP", crate::ops::dropout::parse),
    ("res(LAYERS)", super::layers::parse_residual),
];

/// The token syntaxes, comma-separated (for error messages).
pub fn syntax() -> String {
    LAYERS
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Split a spec at its top-level commas (commas inside `res(...)` belong to the block).
pub fn split_top_level(spec: &str) -> std::result::Result<Vec<&str>, String> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced `)` at character {}", i + 1));
                }
            }
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced `(`: a block is not closed".into());
    }
    parts.push(&spec[start..]);
    Ok(parts)
}

/// Parse one token (already lower-case, no spaces).
pub fn parse_token(tok: &str) -> std::result::Result<Box<dyn Layer>, String> {
    if tok.is_empty() {
        return Err("empty layer".into());
    }
    LAYERS
        .iter()
        .find_map(|(_, parse)| parse(tok))
        .unwrap_or_else(|| Err("unknown layer".into()))
}

/// Parse a comma-separated list of layers; errors name the position and token.
pub fn parse_layers(spec: &str) -> std::result::Result<Vec<Box<dyn Layer>>, String> {
    let mut layers = Vec::new();
    for (i, raw) in split_top_level(spec)?.into_iter().enumerate() {
        let tok: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let layer =
            parse_token(&tok).map_err(|why| format!("layer {} `{}`: {why}", i + 1, raw.trim()))?;
        layers.push(layer);
    }
    Ok(layers)
}

/// Parse an `--arch` spec into layers.
pub fn parse_spec(spec: &str) -> Result<Vec<Box<dyn Layer>>> {
    parse_layers(spec).map_err(|e| {
        Error::Config(format!(
            "--arch: {e}; tokens are {} (e.g. conv3x3x16p1,relu,maxpool2,flatten,fc10)",
            syntax()
        ))
    })
}
