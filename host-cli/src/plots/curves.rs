//! Loss and metric curves.

use super::*;

// ---------------------------------------------------------------------------------------------
// Curves.

struct Curve {
    name: String,
    color: RGBColor,
    /// Runs of consecutive finite points `(epoch, value)`.
    segments: Vec<Vec<(i32, f64)>>,
}

pub(super) struct CurvesPicture {
    title: String,
    y_label: String,
    x_label: String,
    curves: Vec<Curve>,
    /// Number of epochs on the x axis (at least 1).
    epochs: i32,
    y_range: (f64, f64),
    y_decimals: Option<usize>,
    best_epoch: Option<i32>,
    y_area: u32,
    legend_pos: SeriesLabelPosition,
    has_data: bool,
}

/// Y tick count requested from plotters.
const Y_TICKS: usize = 8;

impl CurvesPicture {
    pub(super) fn new(
        title: &str,
        y_label: &str,
        x_label: &str,
        series: &[Series],
        best_epoch: Option<usize>,
    ) -> Self {
        // Epoch numbers are i32 on the axis; keep one slot of padding on either side.
        let max_epochs = (i32::MAX - 2) as usize;
        let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0).min(max_epochs);
        let curves: Vec<Curve> = series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut segments = Vec::new();
                let mut run: Vec<(i32, f64)> = Vec::new();
                for (e, &v) in s.values.iter().take(n).enumerate() {
                    if v.is_finite() {
                        run.push((e as i32 + 1, v.clamp(-VALUE_LIMIT, VALUE_LIMIT)));
                    } else if !run.is_empty() {
                        segments.push(std::mem::take(&mut run));
                    }
                }
                if !run.is_empty() {
                    segments.push(run);
                }
                Curve { name: clean_text(s.name, 60), color: PALETTE[i % PALETTE.len()], segments }
            })
            .filter(|c| !c.segments.is_empty())
            .collect();
        let has_data = !curves.is_empty();
        let epochs = n.max(1) as i32;
        let best_epoch = best_epoch.filter(|&b| b >= 1 && b <= n).map(|b| b as i32);

        let values = curves.iter().flat_map(|c| c.segments.iter().flatten().map(|p| p.1));
        let (lo, hi) =
            values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let y_range = y_range(lo, hi);
        let y_decimals = y_decimals(y_range);

        let tick_font = font(15.0);
        let widest_tick = RangedCoordf64::from(y_range.0..y_range.1)
            .key_points(Y_TICKS)
            .iter()
            .chain([y_range.0, y_range.1].iter())
            .map(|&v| text_width(&tick_font, &format_tick(v, y_decimals)))
            .max()
            .unwrap_or(0);
        let y_area = widest_tick + 48;

        let title = fit_text(&bold(24.0), title, CURVE_SIZE.0 - 40);
        let mut picture = Self {
            title,
            y_label: fit_text(&font(17.0), y_label, CURVE_SIZE.1 - 160),
            x_label: fit_text(&font(17.0), x_label, CURVE_SIZE.0 - 200),
            curves,
            epochs,
            y_range,
            y_decimals,
            best_epoch,
            y_area,
            legend_pos: SeriesLabelPosition::UpperRight,
            has_data,
        };
        picture.legend_pos = picture.choose_legend_position();
        picture
    }

    fn legend_entries(&self) -> Vec<String> {
        let mut entries: Vec<String> = self.curves.iter().map(|c| c.name.clone()).collect();
        if let Some(b) = self.best_epoch {
            entries.push(format!("best epoch {b}"));
        }
        entries
    }

    /// The legend corner that covers the fewest data points (lines sampled densely).
    fn choose_legend_position(&self) -> SeriesLabelPosition {
        let entries = self.legend_entries();
        if entries.is_empty() {
            return SeriesLabelPosition::UpperRight;
        }
        // Approximate plotting-area size and legend box size, as fractions of it.
        let plot_w = (CURVE_SIZE.0 - self.y_area - 40) as f64;
        let plot_h = (CURVE_SIZE.1 - 56 - 40 - 40) as f64;
        let label_w = entries.iter().map(|e| text_width(&font(15.0), e)).max().unwrap_or(0);
        let fw = ((label_w as f64 + 60.0) / plot_w).min(1.0);
        let fh = ((entries.len() as f64 * 24.0 + 20.0) / plot_h).min(1.0);

        let (x0, x1) = (0.0, f64::from(self.epochs) + 1.0);
        let (y0, y1) = self.y_range;
        let norm = |x: f64, y: f64| ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0));
        let mut samples: Vec<(f64, f64)> = Vec::new();
        for c in &self.curves {
            for seg in &c.segments {
                for w in seg.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    for t in 0..=16 {
                        let t = f64::from(t) / 16.0;
                        let x = f64::from(a.0) + t * f64::from(b.0 - a.0);
                        samples.push(norm(x, a.1 + t * (b.1 - a.1)));
                    }
                }
                if let [p] = seg.as_slice() {
                    samples.push(norm(f64::from(p.0), p.1));
                }
            }
        }
        if let Some(b) = self.best_epoch {
            for t in 0..=32 {
                samples.push(norm(f64::from(b), y0 + f64::from(t) / 32.0 * (y1 - y0)));
            }
        }
        use SeriesLabelPosition as P;
        let candidates = [
            (P::UpperRight, 1.0 - fw, 1.0 - fh),
            (P::UpperLeft, 0.0, 1.0 - fh),
            (P::LowerRight, 1.0 - fw, 0.0),
            (P::LowerLeft, 0.0, 0.0),
            (P::UpperMiddle, 0.5 - fw / 2.0, 1.0 - fh),
            (P::LowerMiddle, 0.5 - fw / 2.0, 0.0),
            (P::MiddleRight, 1.0 - fw, 0.5 - fh / 2.0),
            (P::MiddleLeft, 0.0, 0.5 - fh / 2.0),
        ];
        let mut best = (P::UpperRight, usize::MAX);
        for (pos, left, bottom) in candidates {
            let hits = samples
                .iter()
                .filter(|&&(x, y)| x >= left && x <= left + fw && y >= bottom && y <= bottom + fh)
                .count();
            if hits < best.1 {
                best = (pos, hits);
            }
        }
        best.0
    }
}

/// A y range covering `[lo, hi]` with some padding; `(0, 1)` without data.
fn y_range(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return (-0.05, 1.05);
    }
    let span = hi - lo;
    let mid = lo / 2.0 + hi / 2.0;
    let (a, b) = if span <= mid.abs() * 1e-9 || span == 0.0 {
        let half = if mid == 0.0 { 1.0 } else { mid.abs() * 0.1 };
        (mid - half, mid + half)
    } else {
        (lo - span * 0.06, hi + span * 0.06)
    };
    let (a, b) = (a.max(-f64::MAX / 4.0), b.min(f64::MAX / 4.0));
    if a < b && (b - a).is_finite() {
        (a, b)
    } else {
        (0.0, 1.0)
    }
}

/// Decimal places that show every y tick exactly, or `None` for scientific notation.
fn y_decimals((lo, hi): (f64, f64)) -> Option<usize> {
    let ticks = RangedCoordf64::from(lo..hi).key_points(Y_TICKS);
    let mag = lo.abs().max(hi.abs());
    let step = if ticks.len() >= 2 { (ticks[1] - ticks[0]).abs() } else { hi - lo };
    if !(1e-4..1e7).contains(&mag) || step < 1e-4 {
        return None;
    }
    (0..=6).find(|&d| {
        let scale = 10f64.powi(d as i32);
        ticks.iter().all(|&t| ((t * scale).round() / scale - t).abs() <= step * 1e-3)
    })
}

fn format_tick(v: f64, decimals: Option<usize>) -> String {
    match decimals {
        Some(d) => {
            let s = format!("{v:.d$}");
            // Avoid "-0.00".
            if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
                s[1..].to_owned()
            } else {
                s
            }
        }
        None if v == 0.0 => "0".to_owned(),
        None => format!("{v:.2e}"),
    }
}

impl Picture for CurvesPicture {
    fn size(&self) -> (u32, u32) {
        CURVE_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (lo, hi) = self.y_range;
        let epochs = self.epochs;
        let mut chart = ChartBuilder::on(root)
            .margin_top(16)
            .margin_bottom(16)
            .margin_left(20)
            .margin_right(28)
            .caption(&self.title, bold(24.0).color(&TEXT))
            .x_label_area_size(56)
            .y_label_area_size(self.y_area)
            .build_cartesian_2d(0..epochs + 1, lo..hi)?;

        let x_fmt = move |x: &i32| {
            if (1..=epochs).contains(x) {
                x.to_string()
            } else {
                String::new()
            }
        };
        let decimals = self.y_decimals;
        let y_fmt = move |y: &f64| format_tick(*y, decimals);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .x_labels(((epochs + 2) as usize).min(12))
            .y_labels(Y_TICKS)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(font(15.0).color(&TEXT))
            .axis_desc_style(font(17.0).color(&TEXT))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .draw()?;

        if !self.has_data {
            let area = chart.plotting_area().strip_coord_spec();
            let (w, h) = area.dim_in_pixel();
            let style = font(22.0).color(&MUTED).pos(Pos::new(HPos::Center, VPos::Center));
            area.draw_text("no data", &style, (w as i32 / 2, h as i32 / 2))?;
        }

        let few_points = epochs <= 60;
        for c in &self.curves {
            let line = c.color.stroke_width(2);
            for seg in &c.segments {
                chart.draw_series(LineSeries::new(seg.iter().copied(), line))?;
                if few_points || seg.len() == 1 {
                    let dot = c.color.filled();
                    chart.draw_series(seg.iter().map(|&p| Circle::new(p, 3, dot)))?;
                }
            }
            let color = c.color;
            chart
                .draw_series(LineSeries::new(std::iter::empty(), line))?
                .label(c.name.clone())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(2))
                        + Circle::new((10, 0), 3, color.filled())
                });
        }
        if let Some(b) = self.best_epoch {
            let style = MARKER.stroke_width(1);
            chart.draw_series(DashedLineSeries::new(vec![(b, lo), (b, hi)], 7, 5, style))?;
            chart
                .draw_series(LineSeries::new(std::iter::empty(), style))?
                .label(format!("best epoch {b}"))
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6, 0)], style)
                        + PathElement::new(vec![(10, 0), (16, 0)], style)
                        + PathElement::new(vec![(20, 0), (21, 0)], style)
                });
        }
        if !self.legend_entries().is_empty() {
            chart
                .configure_series_labels()
                .position(self.legend_pos.clone())
                .margin(14)
                .legend_area_size(30)
                .label_font(font(15.0).color(&TEXT))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(200, 200, 200))
                .draw()?;
        }
        Ok(())
    }
}
