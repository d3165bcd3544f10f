//! Search pictures: the objective against each searched parameter (one dot per finished
//! trial; log axis for log-scale ranges, one column per value for lists), and the best
//! objective so far against the number of trials (drawn by [`crate::plots::curves`]). Every
//! picture is written as SVG and PNG, each atomically.

use super::plan::Search;
use super::results::{TrialRecord, TrialStatus};
use super::space::{Dist, Scale};
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::Ranged;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontFamily, FontStyle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SIZE: (u32, u32) = (900, 560);
const DOT: RGBColor = RGBColor(31, 119, 180);
const BEST: RGBColor = RGBColor(214, 39, 40);
const TEXT: RGBColor = RGBColor(34, 34, 34);
const GRID: RGBColor = RGBColor(228, 228, 228);

fn fonts() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
            && plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
                .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be registered"))
    }
}

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

/// The x position of a parameter value.
enum Axis {
    /// Numbers (log or linear).
    Numeric { log: bool },
    /// One column per distinct value, labelled.
    Categories(Vec<String>),
}

fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(label).collect::<Vec<_>>().join("/"),
        other => other.to_string(),
    }
}

struct Scatter {
    title: String,
    x_label: String,
    y_label: String,
    axis: Axis,
    /// `(x, y, is_best)`; for categories x is the column index.
    points: Vec<(f64, f64, bool)>,
}

impl Scatter {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
        root.fill(&WHITE).map_err(e)?;
        let ys: Vec<f64> = self.points.iter().map(|p| p.1).collect();
        let (mut lo, mut hi) =
            ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = if hi > lo { (hi - lo) * 0.08 } else { lo.abs().max(1.0) * 0.05 };
        let (lo, hi) = (lo - pad, hi + pad);
        let mut builder = ChartBuilder::on(root);
        builder
            .margin(18)
            .caption(&self.title, font(22.0).color(&TEXT))
            .x_label_area_size(60)
            .y_label_area_size(80);
        match &self.axis {
            Axis::Numeric { log } => {
                let xs: Vec<f64> = self.points.iter().map(|p| p.0).collect();
                let (mut a, mut b) = xs
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
                if !(a.is_finite() && b.is_finite()) {
                    (a, b) = (1.0, 2.0);
                }
                if *log {
                    // Points are at log10 of the value (see `write_search_plots`), labelled
                    // with the value: nice ticks even within one decade.
                    let span = if b > a { (b - a) * 0.06 } else { 0.15 };
                    let mut chart =
                        builder.build_cartesian_2d(a - span..b + span, lo..hi).map_err(e)?;
                    let fmt = |x: &f64| {
                        let v = 10f64.powf(*x);
                        if (1e-2..1e4).contains(&v) {
                            format!("{v:.3}")
                                .trim_end_matches('0')
                                .trim_end_matches('.')
                                .to_string()
                        } else {
                            format!("{v:.1e}")
                        }
                    };
                    chart
                        .configure_mesh()
                        .bold_line_style(GRID)
                        .light_line_style(TRANSPARENT)
                        .x_desc(format!("{} (log scale)", self.x_label))
                        .y_desc(&self.y_label)
                        .x_label_formatter(&fmt)
                        .label_style(font(14.0).color(&TEXT))
                        .axis_desc_style(font(16.0).color(&TEXT))
                        .draw()
                        .map_err(e)?;
                    self.dots(&mut chart).map_err(e)?;
                } else {
                    let span = if b > a { (b - a) * 0.06 } else { a.abs().max(1.0) * 0.1 };
                    let mut chart =
                        builder.build_cartesian_2d(a - span..b + span, lo..hi).map_err(e)?;
                    chart
                        .configure_mesh()
                        .bold_line_style(GRID)
                        .light_line_style(TRANSPARENT)
                        .x_desc(&self.x_label)
                        .y_desc(&self.y_label)
                        .label_style(font(14.0).color(&TEXT))
                        .axis_desc_style(font(16.0).color(&TEXT))
                        .draw()
                        .map_err(e)?;
                    self.dots(&mut chart).map_err(e)?;
                }
            }
            Axis::Categories(names) => {
                let n = names.len().max(1);
                let mut chart =
                    builder.build_cartesian_2d(-0.5..n as f64 - 0.5, lo..hi).map_err(e)?;
                let names = names.clone();
                let fmt = move |x: &f64| {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && i >= 0.0 {
                        names.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                };
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .bold_line_style(GRID)
                    .light_line_style(TRANSPARENT)
                    .x_labels(n.min(24) * 2 + 1)
                    .x_label_formatter(&fmt)
                    .x_desc(&self.x_label)
                    .y_desc(&self.y_label)
                    .label_style(font(14.0).color(&TEXT))
                    .axis_desc_style(font(16.0).color(&TEXT))
                    .draw()
                    .map_err(e)?;
                self.dots(&mut chart).map_err(e)?;
            }
        }
        root.present().map_err(e)?;
        Ok(())
    }

    fn dots<DB: DrawingBackend, X: Ranged<ValueType = f64>>(
        &self,
        chart: &mut ChartContext<'_, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        chart.draw_series(
            self.points
                .iter()
                .filter(|p| !p.2)
                .map(|&(x, y, _)| Circle::new((x, y), 4, DOT.mix(0.75).filled())),
        )?;
        chart.draw_series(
            self.points
                .iter()
                .filter(|p| p.2)
                .map(|&(x, y, _)| Circle::new((x, y), 7, BEST.filled())),
        )?;
        Ok(())
    }
}

fn write(stem: &Path, s: &Scatter) -> Result<Vec<PathBuf>> {
    fonts()?;
    let svg_path = stem.with_extension("svg");
    let png_path = stem.with_extension("png");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        s.draw(&root)?;
    }
    crate::files::write_atomic(&svg_path, svg.as_bytes())?;
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        s.draw(&root)?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, SIZE.0, SIZE.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&rgb)?;
        w.finish()?;
    }
    crate::files::write_atomic(&png_path, &png_bytes)?;
    Ok(vec![svg_path, png_path])
}

fn better(d: super::plan::Direction) -> &'static str {
    match d {
        super::plan::Direction::Minimize => "lower is better",
        super::plan::Direction::Maximize => "higher is better",
    }
}

/// File-name-safe form of a key.
fn stem_name(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// Writes `<dir>/best_so_far.{svg,png}` and `<dir>/<key>.{svg,png}` for every parameter that
/// varies. Only finished (`ok`) trials are drawn; the best one is marked.
pub fn write_search_plots(
    dir: &Path,
    search: &Search,
    records: &[TrialRecord],
    best: Option<usize>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let objective = search.settings.objective;
    let name = objective.metric.name();
    let mut written = Vec::new();

    // Best so far against trials, in trial-number order.
    let n = records.iter().map(|r| r.trial + 1).max().unwrap_or(0);
    let mut value = vec![f64::NAN; n];
    for r in records {
        if r.status == TrialStatus::Ok {
            value[r.trial] = r.objective.unwrap_or(f64::NAN);
        }
    }
    let mut best_so_far = Vec::with_capacity(n);
    let mut cur = f64::NAN;
    for (i, &v) in value.iter().enumerate() {
        if v.is_finite()
            && (cur.is_nan()
                || objective.cmp((v, i), (cur, usize::MAX)) == std::cmp::Ordering::Less)
        {
            cur = v;
        }
        best_so_far.push(cur);
    }
    written.extend(crate::plots::curves(
        &dir.join("best_so_far"),
        &format!("Best {name} so far ({})", better(objective.direction)),
        name,
        "trials run (in trial order: trial k is number k+1)",
        &[
            crate::plots::Series { name: "trial", values: &value },
            crate::plots::Series { name: "best so far", values: &best_so_far },
        ],
    )?);

    for p in &search.space.params {
        if matches!(p.dist, Dist::Fixed(_)) {
            continue;
        }
        let ok: Vec<&TrialRecord> = records
            .iter()
            .filter(|r| r.status == TrialStatus::Ok && !r.baseline)
            .filter(|r| r.objective.is_some_and(f64::is_finite))
            .collect();
        let numeric = matches!(p.dist, Dist::Range { .. })
            || ok.iter().all(|r| r.params.get(&p.key).is_some_and(Value::is_number));
        let axis = if numeric && !ok.is_empty() {
            let log = match &p.dist {
                Dist::Range { scale, .. } => *scale == Scale::Log,
                _ => {
                    let xs: Vec<f64> =
                        ok.iter().filter_map(|r| r.params.get(&p.key)?.as_f64()).collect();
                    let (a, b) =
                        xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        });
                    a > 0.0 && b / a >= 20.0
                }
            };
            Axis::Numeric { log }
        } else {
            let mut names: Vec<String> = Vec::new();
            if let Dist::Choice(values) = &p.dist {
                names.extend(values.iter().map(label));
            }
            for r in &ok {
                let l = r.params.get(&p.key).map(label).unwrap_or_default();
                if !names.contains(&l) {
                    names.push(l);
                }
            }
            Axis::Categories(names)
        };
        let points = ok
            .iter()
            .filter_map(|r| {
                let v = r.params.get(&p.key)?;
                let x = match &axis {
                    Axis::Numeric { log: true } => v.as_f64()?.max(1e-300).log10(),
                    Axis::Numeric { log: false } => v.as_f64()?,
                    Axis::Categories(names) => names.iter().position(|n| *n == label(v))? as f64,
                };
                Some((x, r.objective?, Some(r.trial) == best))
            })
            .collect();
        let s = Scatter {
            title: format!("{name} against {} ({})", p.key, better(objective.direction)),
            x_label: p.key.clone(),
            y_label: name.to_string(),
            axis,
            points,
        };
        written.extend(write(&dir.join(stem_name(&p.key)), &s)?);
    }
    Ok(written)
}
