//! Confusion matrices.

use super::*;

// ---------------------------------------------------------------------------------------------
// Confusion matrix.

/// Rejects a matrix whose serialised counts do not hold `k²` entries, which would make
/// [`ConfusionMatrix::get`] index out of bounds (only a corrupt deserialised matrix can).
pub(super) fn check_matrix(path: &Path, cm: &ConfusionMatrix) -> Result<(), PlotError> {
    let k = cm.num_classes();
    let counts_len = serde_json::to_value(cm)
        .ok()
        .and_then(|v| v.get("counts").and_then(|c| c.as_array()).map(Vec::len));
    match counts_len {
        Some(len) if Some(len) != k.checked_mul(k) => {
            Err(PlotError::MalformedMatrix { path: path.to_owned(), classes: k })
        }
        _ => Ok(()),
    }
}

/// Matplotlib's "Blues" colour map, from white to dark blue.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

fn blues(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (BLUES.len() - 1) as f64;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

pub(super) struct ConfusionPicture {
    size: (u32, u32),
    title: String,
    k: usize,
    /// `[true][pred]` counts.
    counts: Vec<Vec<u64>>,
    /// Row sums.
    row_sums: Vec<u128>,
    labels: Vec<String>,
    /// Pixel origin of the matrix and the side of a cell.
    origin: (i32, i32),
    cell: i32,
    tick_font: f64,
    /// Draw every `label_step`-th class label.
    label_step: usize,
    rotate_columns: bool,
    /// Pixel height of the column-label band.
    column_band: i32,
    count_font: Option<f64>,
    share_font: Option<f64>,
    /// Left edge of the band holding the rotated "true" axis title.
    true_axis_x: i32,
}

const CM_MARGIN: i32 = 20;
const CM_AXIS_FONT: f64 = 17.0;
const CM_TITLE_FONT: f64 = 22.0;
const CM_BAR_WIDTH: i32 = 18;

impl ConfusionPicture {
    pub(super) fn new(cm: &ConfusionMatrix, class_names: &[String], title: &str) -> Self {
        let k = cm.num_classes();
        let counts: Vec<Vec<u64>> =
            (0..k).map(|t| (0..k).map(|p| cm.get(t, p)).collect()).collect();
        let row_sums: Vec<u128> =
            counts.iter().map(|r| r.iter().map(|&c| u128::from(c)).sum()).collect();
        let total: u128 = row_sums.iter().sum();
        let correct: u128 = (0..k).map(|i| u128::from(counts[i][i])).sum();
        let accuracy = if total == 0 {
            "accuracy n/a (no samples)".to_owned()
        } else {
            format!("accuracy {:.1}% ({correct} of {total})", correct as f64 / total as f64 * 100.0)
        };
        let title = clean_text(title, 400);
        let full_title =
            if title.is_empty() { accuracy } else { format!("{title} — {accuracy}") };

        let labels: Vec<String> = (0..k)
            .map(|i| {
                let name = class_names.get(i).map(|s| clean_text(s, MAX_NAME_CHARS));
                match name {
                    Some(n) if !n.is_empty() => n,
                    _ => i.to_string(),
                }
            })
            .collect();

        let cell: i32 = if k == 0 { 0 } else { (720 / k as i32).clamp(6, 96) };
        let tick_font = if cell >= 18 { 15.0 } else { f64::from(cell.max(10) - 1) };
        let label_step =
            if k == 0 { 1 } else { ((tick_font + 3.0) / f64::from(cell)).ceil() as usize };
        let label_step = label_step.max(1);
        let tf = font(tick_font);
        let shown = |i: usize| i.is_multiple_of(label_step);
        let label_w = labels
            .iter()
            .enumerate()
            .filter(|&(i, _)| shown(i))
            .map(|(_, l)| text_width(&tf, l) as i32)
            .max()
            .unwrap_or(0);
        let rotate_columns = label_step > 1 || label_w + 8 > cell;
        let column_band = if rotate_columns { label_w } else { tick_font as i32 + 2 };

        // Counts: as large as fits, none if even 8 px does not.
        let widest_count = counts.iter().flatten().max().copied().unwrap_or(0).to_string();
        let mut count_font = None;
        let mut size = (f64::from(cell) * 0.3).clamp(8.0, 20.0);
        while cell >= 14 && size >= 8.0 {
            if text_width(&bold(size), &widest_count) as i32 + 6 <= cell
                && size * 1.1 <= f64::from(cell)
            {
                count_font = Some(size);
                break;
            }
            size -= 1.0;
        }
        let share_font = count_font
            .map(|f| (f * 0.72).max(10.0))
            .filter(|&f| cell >= 60 && text_width(&font(f), "100.0%") as i32 + 8 <= cell);

        let axis_h = CM_AXIS_FONT as i32 + 4;
        let title_font = bold(CM_TITLE_FONT);
        let side = cell * k as i32;
        let left = CM_MARGIN + axis_h + 10 + label_w + 10;
        let top = CM_MARGIN + CM_TITLE_FONT as i32 + 22;
        let bar_labels_w = text_width(&font(13.0), "100%") as i32;
        let right_extent =
            if k == 0 { 0 } else { side + 28 + CM_BAR_WIDTH + 8 + bar_labels_w + 12 + axis_h };
        let content_w = left + right_extent + CM_MARGIN;
        let title_max = (content_w - 2 * CM_MARGIN).max(MIN_TITLE_PX) as u32;
        let title = fit_text(&title_font, &full_title, title_max);
        let title_w = text_width(&title_font, &title) as i32;
        let width = content_w.max(title_w + 2 * CM_MARGIN).max(420);
        let shift = (width - content_w) / 2;
        let height =
            if k == 0 { top + 80 } else { top + side + 8 + column_band + 12 + axis_h + CM_MARGIN };
        Self {
            size: (width as u32, height as u32),
            title,
            k,
            counts,
            row_sums,
            labels,
            origin: (left + shift, top),
            cell,
            tick_font,
            label_step,
            rotate_columns,
            column_band,
            count_font,
            share_font,
            true_axis_x: shift + CM_MARGIN,
        }
    }
}

impl Picture for ConfusionPicture {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = self.size;
        let centre_top = Pos::new(HPos::Center, VPos::Top);
        root.draw_text(
            &self.title,
            &bold(CM_TITLE_FONT).color(&TEXT).pos(centre_top),
            (w as i32 / 2, CM_MARGIN),
        )?;
        let (x0, y0) = self.origin;
        if self.k == 0 {
            root.draw_text(
                "no classes: nothing to show",
                &font(18.0).color(&MUTED).pos(centre_top),
                (w as i32 / 2, y0 + 20),
            )?;
            return Ok(());
        }
        let (k, cell) = (self.k as i32, self.cell);
        let side = k * cell;

        // Cells.
        for (t, row) in self.counts.iter().enumerate() {
            let row_sum = self.row_sums[t];
            for (p, &count) in row.iter().enumerate() {
                let share = if row_sum == 0 { 0.0 } else { count as f64 / row_sum as f64 };
                let (cx, cy) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(cx, cy), (cx + cell, cy + cell)],
                    blues(share).filled(),
                ))?;
                let Some(size) = self.count_font else { continue };
                let ink = match (share > 0.55, count) {
                    (true, _) => WHITE,
                    (false, 0) => MUTED,
                    (false, _) => TEXT,
                };
                let centre = Pos::new(HPos::Center, VPos::Center);
                let (mx, my) = (cx + cell / 2, cy + cell / 2);
                match self.share_font {
                    Some(small) if count > 0 => {
                        root.draw_text(
                            &count.to_string(),
                            &bold(size).color(&ink).pos(centre),
                            (mx, my - (small * 0.6) as i32),
                        )?;
                        root.draw_text(
                            &format!("{:.1}%", share * 100.0),
                            &font(small).color(&ink.mix(0.85)).pos(centre),
                            (mx, my + (size * 0.6) as i32),
                        )?;
                    }
                    _ => {
                        // Zeros are quieter: regular weight, grey.
                        let face = if count == 0 { font(size) } else { bold(size) };
                        root.draw_text(&count.to_string(), &face.color(&ink).pos(centre), (mx, my))?
                    }
                }
            }
        }
        // Cell separators for readable grids, and a frame.
        if cell >= 24 {
            for i in 1..k {
                let (x, y) = (x0 + i * cell, y0 + i * cell);
                root.draw(&PathElement::new(vec![(x, y0), (x, y0 + side)], WHITE.stroke_width(1)))?;
                root.draw(&PathElement::new(vec![(x0, y), (x0 + side, y)], WHITE.stroke_width(1)))?;
            }
        }
        root.draw(&Rectangle::new([(x0, y0), (x0 + side, y0 + side)], AXIS.stroke_width(1)))?;

        // Class labels: rows on the left, columns below.
        let tick = font(self.tick_font);
        for (i, label) in self.labels.iter().enumerate() {
            if i % self.label_step != 0 {
                continue;
            }
            let mid = i as i32 * cell + cell / 2;
            root.draw_text(
                label,
                &tick.color(&TEXT).pos(Pos::new(HPos::Right, VPos::Center)),
                (x0 - 8, y0 + mid),
            )?;
            if self.rotate_columns {
                root.draw_text(
                    label,
                    &tick
                        .transform(FontTransform::Rotate270)
                        .color(&TEXT)
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                    (x0 + mid, y0 + side + 8),
                )?;
            } else {
                root.draw_text(
                    label,
                    &tick.color(&TEXT).pos(Pos::new(HPos::Center, VPos::Top)),
                    (x0 + mid, y0 + side + 8),
                )?;
            }
        }
        // Axis titles.
        let axis = font(CM_AXIS_FONT);
        root.draw_text(
            "predicted",
            &axis.color(&TEXT).pos(Pos::new(HPos::Center, VPos::Top)),
            (x0 + side / 2, y0 + side + 8 + self.column_band + 12),
        )?;
        root.draw_text(
            "true",
            &axis.transform(FontTransform::Rotate270).color(&TEXT).pos(centre_top),
            (self.true_axis_x, y0 + side / 2),
        )?;

        // Colour bar: share of the true class, 0 at the bottom.
        let bx = x0 + side + 28;
        let steps = side.max(1);
        for s in 0..steps {
            let t = 1.0 - (f64::from(s) + 0.5) / f64::from(steps);
            root.draw(&Rectangle::new(
                [(bx, y0 + s), (bx + CM_BAR_WIDTH, y0 + s + 1)],
                blues(t).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + CM_BAR_WIDTH, y0 + side)],
            AXIS.stroke_width(1),
        ))?;
        let bar_font = font(13.0);
        let ticks: &[u32] = if side >= 120 { &[0, 25, 50, 75, 100] } else { &[0, 50, 100] };
        let mut label_right = bx + CM_BAR_WIDTH + 6;
        for &p in ticks {
            let y = y0 + side - (side as f64 * f64::from(p) / 100.0).round() as i32;
            root.draw(&PathElement::new(
                vec![(bx + CM_BAR_WIDTH, y), (bx + CM_BAR_WIDTH + 4, y)],
                AXIS.stroke_width(1),
            ))?;
            let label = format!("{p}%");
            label_right =
                label_right.max(bx + CM_BAR_WIDTH + 8 + text_width(&bar_font, &label) as i32);
            root.draw_text(
                &label,
                &bar_font.color(&TEXT).pos(Pos::new(HPos::Left, VPos::Center)),
                (bx + CM_BAR_WIDTH + 8, y),
            )?;
        }
        root.draw_text(
            "share of true class",
            &font(14.0).transform(FontTransform::Rotate90).color(&MUTED).pos(centre_top),
            (label_right + 10 + 14, y0 + side / 2),
        )?;
        Ok(())
    }
}
