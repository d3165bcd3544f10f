//! Curves of one quantity against another on the unit square: ROC and precision–recall.

use super::*;

/// A named curve of `(x, y)` points in `[0, 1]²`, drawn in order.
#[derive(Debug, Clone, Copy)]
pub struct XySeries<'a> {
    /// Legend text.
    pub name: &'a str,
    /// The points.
    pub points: &'a [(f64, f64)],
}

pub(super) struct XyPicture {
    pub(super) title: String,
    pub(super) x_label: String,
    pub(super) y_label: String,
    pub(super) curves: Vec<(String, Vec<(f64, f64)>)>,
    /// Draw the chance line `y = x` (ROC).
    pub(super) diagonal: bool,
    pub(super) legend_pos: SeriesLabelPosition,
}

impl Picture for XyPicture {
    fn size(&self) -> (u32, u32) {
        (720, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .margin_top(16)
            .margin_bottom(16)
            .margin_left(20)
            .margin_right(28)
            .caption(&self.title, bold(22.0).color(&TEXT))
            .x_label_area_size(56)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.02f64..1.02f64, -0.02f64..1.02f64)?;
        let fmt = |v: &f64| if (0.0..=1.0).contains(v) { format!("{v:.1}") } else { String::new() };
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .x_labels(7)
            .y_labels(7)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .label_style(font(15.0).color(&TEXT))
            .axis_desc_style(font(17.0).color(&TEXT))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .draw()?;
        if self.diagonal {
            let style = MARKER.stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 7, 5, style))?
                .label("chance")
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6, 0)], style)
                        + PathElement::new(vec![(10, 0), (16, 0)], style)
                });
        }
        for (i, (name, points)) in self.curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let line = color.stroke_width(2);
            chart.draw_series(LineSeries::new(points.iter().copied(), line))?.label(name).legend(
                move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(2))
                },
            );
        }
        chart
            .configure_series_labels()
            .position(self.legend_pos.clone())
            .margin(14)
            .legend_area_size(30)
            .label_font(font(15.0).color(&TEXT))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .draw()?;
        Ok(())
    }
}

/// Keeps the finite points, clamped to `[0, 1]²`.
pub(super) fn unit_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| (x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)))
        .collect()
}
