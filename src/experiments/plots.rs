//! PNG line charts for the report (plotters, bitmap backend, an embedded font so text renders on
//! machines without system fonts).

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; failing to parse it is a build defect, not a user error.
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| "embedded font")
            .expect("the embedded DejaVuSans.ttf parses");
    });
}

/// One line of a chart: legend name and (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Standard deviation at each point (drawn as an error bar); empty for none.
    pub sd: Vec<f64>,
    /// Drawn thinner and lighter (e.g. training accuracy next to test accuracy).
    pub secondary: bool,
    /// Colour index (one per net).
    pub color: usize,
}

/// A labelled chart.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    /// Roughly how many x-axis labels to draw.
    pub x_ticks: usize,
    /// The y axis is a percentage (clamped to 0..100); otherwise it starts at 0 and is not clamped.
    pub percent: bool,
}

fn color(i: usize, secondary: bool) -> RGBAColor {
    let base = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ][i % 8];
    if secondary {
        base.mix(0.55)
    } else {
        base.to_rgba()
    }
}

/// An x-axis label: at most three decimals, trailing zeros dropped (60000, 2, 0.5, 0.125).
fn tick(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::data(path, format!("cannot draw plot: {e}"))
}

/// Draw `series` as lines with markers (and error bars where `sd` is given) into a 900-wide PNG at
/// `path`, the legend under the chart.
pub fn line_chart(path: &Path, chart: &Chart<'_>, series: &[Series]) -> Result<()> {
    register_font();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for s in series {
        for (i, &(x, y)) in s.points.iter().enumerate() {
            let e = s.sd.get(i).copied().unwrap_or(0.0);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y - e);
            y1 = y1.max(y + e);
        }
    }
    if x0 > x1 {
        return Err(plot_err(path, "no data"));
    }
    let pad = ((y1 - y0) * 0.08).max(0.5);
    let (y0, y1) = if chart.percent {
        ((y0 - pad).max(0.0), (y1 + pad).min(100.0))
    } else {
        (0.0, y1 + pad)
    };
    if x0 == x1 {
        x1 = x0 + 1.0;
    }
    // The legend goes in a strip under the chart (two entries per row), where it cannot cover data.
    let legend_rows = series.len().div_ceil(2) as u32;
    let legend_h = 16 + 24 * legend_rows;
    let root = BitMapBackend::new(path, (900, 520 + legend_h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (plot_area, legend_area) = root.split_vertically(520);
    for (i, s) in series.iter().enumerate() {
        let c = color(s.color, s.secondary);
        let (x, y) = (70 + 420 * (i % 2) as i32, 8 + 24 * (i / 2) as i32);
        legend_area
            .draw(&PathElement::new(
                vec![(x, y + 9), (x + 28, y + 9)],
                c.stroke_width(if s.secondary { 2 } else { 3 }),
            ))
            .map_err(|e| plot_err(path, e))?;
        legend_area
            .draw(&Text::new(
                s.name.clone(),
                (x + 36, y),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(|e| plot_err(path, e))?;
    }
    let mut builder = ChartBuilder::on(&plot_area);
    builder
        .caption(chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64);
    macro_rules! draw {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_labels(chart.x_ticks)
                .x_label_formatter(&|x| tick(*x))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .light_line_style(RGBColor(238, 238, 238))
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 17))
                .draw()
                .map_err(|e| plot_err(path, e))?;
            for s in series {
                let c = color(s.color, s.secondary);
                let width = if s.secondary { 2 } else { 3 };
                ctx.draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    c.stroke_width(width),
                ))
                .map_err(|e| plot_err(path, e))?;
                ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(|e| plot_err(path, e))?;
                // Error bars: mean ± sd over seeds.
                ctx.draw_series(s.points.iter().zip(&s.sd).filter(|(_, &e)| e > 0.0).map(
                    |(&(x, y), &e)| {
                        PathElement::new(vec![(x, y - e), (x, y + e)], c.stroke_width(2))
                    },
                ))
                .map_err(|e| plot_err(path, e))?;
            }
        }};
    }
    if chart.log_x {
        // Ticks at the measured x values (a log axis would otherwise label only the decades).
        let mut keys: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        keys.sort_by(f64::total_cmp);
        keys.dedup();
        draw!(builder
            .build_cartesian_2d(
                (x0 * 0.8..x1 * 1.25).log_scale().with_key_points(keys),
                y0..y1
            )
            .map_err(|e| plot_err(path, e))?);
    } else {
        let xp = (x1 - x0) * 0.04;
        draw!(builder
            .build_cartesian_2d(x0 - xp..x1 + xp, y0..y1)
            .map_err(|e| plot_err(path, e))?);
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// A confusion-matrix heat map: rows = true class, columns = predicted class, each cell shaded by its
/// share of the row and labelled with its count.
pub fn confusion_png(path: &Path, m: &crate::metrics::ConfusionMatrix, title: &str) -> Result<()> {
    register_font();
    let n = m.counts.len();
    let cell = 56i32;
    let (left, top) = (150i32, 60i32);
    let size = (
        (left + cell * n as i32 + 20) as u32,
        (top + cell * n as i32 + 150) as u32,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let style = |px: u32| ("sans-serif", px).into_font();
    root.draw(&Text::new(title.to_string(), (20, 18), style(22)))
        .map_err(|e| plot_err(path, e))?;
    for (t, row) in m.counts.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        let y = top + t as i32 * cell;
        root.draw(&Text::new(
            m.class_names[t].clone(),
            (8, y + cell / 2 - 8),
            style(14),
        ))
        .map_err(|e| plot_err(path, e))?;
        for (p, &count) in row.iter().enumerate() {
            let x = left + p as i32 * cell;
            let share = count as f64 / total;
            let shade = (255.0 * (1.0 - share)) as u8;
            let color = RGBColor(shade, shade, 255);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                color.filled(),
            ))
            .map_err(|e| plot_err(path, e))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                BLACK.mix(0.2),
            ))
            .map_err(|e| plot_err(path, e))?;
            let ink = if share > 0.5 { WHITE } else { BLACK };
            root.draw(&Text::new(
                count.to_string(),
                (x + 8, y + cell / 2 - 8),
                style(14).color(&ink),
            ))
            .map_err(|e| plot_err(path, e))?;
        }
    }
    let bottom = top + cell * n as i32;
    for (p, name) in m.class_names.iter().enumerate() {
        let x = left + p as i32 * cell + 4;
        let label = if name.chars().count() > 7 {
            format!("{}.", name.chars().take(6).collect::<String>())
        } else {
            name.clone()
        };
        root.draw(&Text::new(label, (x, bottom + 8), style(12)))
            .map_err(|e| plot_err(path, e))?;
    }
    root.draw(&Text::new(
        "predicted class (columns) vs true class (rows)".to_string(),
        (left, bottom + 40),
        style(16),
    ))
    .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// The first convolution's filters as a grid of small grey (1 input channel) or colour (3 channels)
/// images, each scaled to its own min..max, `scale` pixels per weight.
pub fn filters_png(
    path: &Path,
    weights: &[f32],
    out_c: usize,
    in_c: usize,
    kh: usize,
    kw: usize,
    title: &str,
) -> Result<()> {
    register_font();
    let scale = 12i32;
    let cols = out_c.min(8);
    let rows = out_c.div_ceil(cols);
    let (fw, fh) = (kw as i32 * scale, kh as i32 * scale);
    let gap = 8i32;
    let size = (
        (cols as i32 * (fw + gap) + gap).max(320) as u32,
        (rows as i32 * (fh + gap) + gap + 40) as u32,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    root.draw(&Text::new(
        title.to_string(),
        (gap, 10),
        ("sans-serif", 16).into_font(),
    ))
    .map_err(|e| plot_err(path, e))?;
    let k = kh * kw;
    for f in 0..out_c {
        let w = &weights[f * in_c * k..(f + 1) * in_c * k];
        let (lo, hi) = w
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let norm = |v: f32| (255.0 * (v - lo) / (hi - lo).max(1e-12)) as u8;
        let (x0, y0) = (
            gap + (f % cols) as i32 * (fw + gap),
            40 + (f / cols) as i32 * (fh + gap),
        );
        for ky in 0..kh {
            for kx in 0..kw {
                let at = |c: usize| norm(w[c * k + ky * kw + kx]);
                let color = if in_c == 3 {
                    RGBColor(at(0), at(1), at(2))
                } else {
                    let g = at(0);
                    RGBColor(g, g, g)
                };
                let (x, y) = (x0 + kx as i32 * scale, y0 + ky as i32 * scale);
                root.draw(&Rectangle::new(
                    [(x, y), (x + scale, y + scale)],
                    color.filled(),
                ))
                .map_err(|e| plot_err(path, e))?;
            }
        }
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}
