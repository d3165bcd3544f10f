//! Loss/metric curves and confusion matrices as SVG and PNG.
//!
//! Every picture is written twice, as `<stem>.svg` and `<stem>.png`, next to each other. Each
//! file is rendered in memory and written with [`crate::export::write_atomic`] (a temporary file
//! in the destination directory, `fsync`ed and renamed over the destination), so a crash never
//! leaves a half-written picture behind (at worst a stray `.<name>.<random>.tmp` file, and only if
//! the process dies between creating and renaming it). Missing parent directories are created;
//! a new picture gets the permissions `File::create` would give it (0o666 minus the umask).
//!
//! Text is laid out and rasterised with DejaVu Sans, embedded in the binary (the `dejavu`
//! crate) and registered with plotters' `ab_glyph` font table on first use, so no system font
//! library is needed. SVG files keep their text as `<text>` elements (font family
//! `sans-serif`), which makes labels searchable and the files small.
//!
//! Robustness conventions:
//! * non-finite values (NaN, ±∞) in a curve are skipped: the line is broken there, and
//!   isolated points are drawn as dots; finite values beyond ±10³⁰⁰ are drawn at ±10³⁰⁰;
//! * a curve picture without any finite value is still drawn, with a "no data" note, rather
//!   than being an error; likewise a confusion matrix with zero classes;
//! * a confusion matrix with more than [`MAX_CLASSES`] classes is an error
//!   ([`PlotError::TooManyClasses`]): it could not be read anyway;
//! * missing or empty class names fall back to the class index, long names are shortened
//!   with "…", and counts that do not fit in their cell are left out (the colour still shows).
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::backend::RGBPixel;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontFamily, FontStyle, FontTransform};

use crate::metrics::ConfusionMatrix;

/// Font family name under which the embedded DejaVu Sans is registered.
const FONT: &str = "sans-serif";
/// Size of a curve picture, in pixels.
const CURVE_SIZE: (u32, u32) = (960, 600);
/// The largest class count [`confusion`] draws.
pub const MAX_CLASSES: usize = 256;
/// Finite values are clamped to ±this before plotting, so that axis spans stay finite.
const VALUE_LIMIT: f64 = 1e300;
/// Class names longer than this many characters are shortened.
const MAX_NAME_CHARS: usize = 24;
/// Confusion-matrix titles are shortened to fit the picture's width or this many pixels,
/// whichever is larger.
const MIN_TITLE_PX: i32 = 900;

/// Matplotlib's "tab10" palette: series colours, in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const TEXT: RGBColor = RGBColor(34, 34, 34);
const MUTED: RGBColor = RGBColor(110, 110, 110);
const GRID: RGBColor = RGBColor(228, 228, 228);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const MARKER: RGBColor = RGBColor(85, 85, 85);

/// One named curve: `values[i]` is the value at epoch `i + 1`; NaN or ±∞ means "no value".
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// One value per epoch, from epoch 1.
    pub values: &'a [f64],
}

/// A training history, as [`training_curves`] draws it.
#[derive(Debug, Clone, Default)]
pub struct HistoryView<'a> {
    /// Training loss per epoch.
    pub loss: &'a [f64],
    /// Validation loss per epoch (empty without a validation split).
    pub val_loss: &'a [f64],
    /// `(name, training values, validation values)` per metric.
    pub metrics: Vec<(&'a str, &'a [f64], &'a [f64])>,
    /// The epoch (1-based, as on the x axis) whose weights were kept; marked with a dashed
    /// vertical line. Ignored when outside `1..=epochs`.
    pub best_epoch: Option<usize>,
}

/// Why a picture could not be written. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Creating the directory, writing the temporary file or renaming it failed.
    #[error("{}: cannot write picture: {source}", .path.display())]
    Io {
        /// The picture (or directory) being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The plotting library reported an error while drawing.
    #[error("{}: drawing failed: {message}", .path.display())]
    Draw {
        /// The picture being drawn.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// The PNG encoder failed.
    #[error("{}: PNG encoding failed: {message}", .path.display())]
    Png {
        /// The picture being encoded.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// The embedded DejaVu Sans font could not be registered.
    #[error("{}: the embedded DejaVu Sans font could not be registered", .path.display())]
    Font {
        /// The picture being drawn.
        path: PathBuf,
    },
    /// Too many classes for a readable confusion-matrix picture.
    #[error(
        "{}: {classes} classes are more than the {max} a confusion-matrix picture shows",
        .path.display()
    )]
    TooManyClasses {
        /// The picture that was not drawn.
        path: PathBuf,
        /// The matrix's class count.
        classes: usize,
        /// [`MAX_CLASSES`].
        max: usize,
    },
    /// The matrix's counts do not match its class count (a corrupt deserialised matrix).
    #[error("{}: malformed confusion matrix: counts do not match {classes} classes", .path.display())]
    MalformedMatrix {
        /// The picture that was not drawn.
        path: PathBuf,
        /// The matrix's class count.
        classes: usize,
    },
}

/// Draws `series` against epochs `1..=n` (`n` the longest series) with a legend, and writes
/// `<path_stem>.svg` and `<path_stem>.png`. Returns the paths written (SVG first).
///
/// Non-finite values are skipped; with no finite value at all, the chart carries a "no data"
/// note. Series without any finite value are left out of the legend.
pub fn curves(
    path_stem: &Path,
    title: &str,
    y_label: &str,
    x_label: &str,
    series: &[Series],
) -> Result<Vec<PathBuf>, PlotError> {
    curves_with_best_epoch(path_stem, title, y_label, x_label, series, None)
}

/// [`curves`], plus a dashed vertical line at `best_epoch` (1-based) with the legend entry
/// "best epoch N". A `best_epoch` outside `1..=n` is not drawn.
pub fn curves_with_best_epoch(
    path_stem: &Path,
    title: &str,
    y_label: &str,
    x_label: &str,
    series: &[Series],
    best_epoch: Option<usize>,
) -> Result<Vec<PathBuf>, PlotError> {
    ensure_fonts(path_stem)?;
    let picture = CurvesPicture::new(title, y_label, x_label, series, best_epoch);
    write_picture(path_stem, &picture)
}

/// Writes `loss.svg`/`loss.png` (training vs validation loss) and one `<metric>.svg`/`.png`
/// per metric into `dir`, each with the best epoch marked. Metric names are made safe for file
/// names (characters other than letters, digits, `-`, `_` and `.` become `_`; a name met twice
/// gets a `_2`, `_3`… suffix). Returns every path written.
pub fn training_curves(dir: &Path, history: &HistoryView) -> Result<Vec<PathBuf>, PlotError> {
    let mut written = Vec::new();
    let mut used = vec!["loss".to_owned()];
    written.extend(curves_with_best_epoch(
        &dir.join("loss"),
        "Training and validation loss",
        "loss",
        "epoch",
        &[
            Series { name: "training", values: history.loss },
            Series { name: "validation", values: history.val_loss },
        ],
        history.best_epoch,
    )?);
    for &(name, train, valid) in &history.metrics {
        let stem = unique_stem(name, &mut used);
        let label = if name.trim().is_empty() { "metric" } else { name };
        written.extend(curves_with_best_epoch(
            &dir.join(stem),
            &format!("Training and validation {label}"),
            label,
            "epoch",
            &[
                Series { name: "training", values: train },
                Series { name: "validation", values: valid },
            ],
            history.best_epoch,
        )?);
    }
    Ok(written)
}

/// Draws `cm` as a heat map and writes `<path_stem>.svg` and `<path_stem>.png`. Rows are the
/// true classes, columns the predicted ones; each cell shows its count (and, when there is
/// room, its share of the row), and its colour is that share (row-normalised), with a colour
/// bar. The title gets the accuracy appended. `class_names[i]` labels class `i`; missing or
/// empty names fall back to the index. Returns the paths written (SVG first).
pub fn confusion(
    path_stem: &Path,
    cm: &ConfusionMatrix,
    class_names: &[String],
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let k = cm.num_classes();
    if k > MAX_CLASSES {
        return Err(PlotError::TooManyClasses {
            path: path_stem.to_owned(),
            classes: k,
            max: MAX_CLASSES,
        });
    }
    check_matrix(path_stem, cm)?;
    ensure_fonts(path_stem)?;
    let picture = ConfusionPicture::new(cm, class_names, title);
    write_picture(path_stem, &picture)
}

// ---------------------------------------------------------------------------------------------
// Shared machinery.

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A picture that can be drawn on any backend, at a size known before drawing.
trait Picture {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Registers DejaVu Sans (regular and bold) as `sans-serif`, once per process.
fn ensure_fonts(path: &Path) -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font { path: path.to_owned() })
    }
}

/// `stem` with `.ext` appended (not replacing an existing extension: `acc.top5` → `acc.top5.svg`).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_picture(stem: &Path, picture: &impl Picture) -> Result<Vec<PathBuf>, PlotError> {
    let svg_path = with_suffix(stem, "svg");
    let png_path = with_suffix(stem, "png");
    let (w, h) = picture.size();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        picture
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| PlotError::Draw { path: svg_path.clone(), message: e.to_string() })?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;

    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (w, h))
            .map_err(|e| PlotError::Draw { path: png_path.clone(), message: e.to_string() })?;
        let root = crisp::CrispText { inner: backend }.into_drawing_area();
        picture
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| PlotError::Draw { path: png_path.clone(), message: e.to_string() })?;
    }
    let png = encode_png(&rgb, (w, h))
        .map_err(|e| PlotError::Png { path: png_path.clone(), message: e.to_string() })?;
    write_atomic(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Writes a picture atomically ([`crate::export::write_atomic`]: temporary file in the same
/// directory, `fsync`, rename, directory `fsync`), creating missing parent directories first.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    let io = |source| PlotError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    crate::export::write_atomic(path, bytes).map_err(io)
}

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

fn bold(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Bold)
}

/// Width in pixels of `text` in `font` (a generous estimate if the font cannot lay it out).
fn text_width(font: &FontDesc, text: &str) -> u32 {
    font.box_size(text)
        .map(|(w, _)| w)
        .unwrap_or_else(|_| (text.chars().count() as f64 * font.get_size() * 0.7) as u32)
}

/// `text` without control characters, shortened with "…" to at most `max_chars` characters.
fn clean_text(text: &str, max_chars: usize) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= max_chars {
        cleaned.to_owned()
    } else {
        let mut s: String = cleaned.chars().take(max_chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// `text` shortened with "…" until it is at most `max_px` wide in `font`.
fn fit_text(font: &FontDesc, text: &str, max_px: u32) -> String {
    let mut s = clean_text(text, 400);
    while text_width(font, &s) > max_px && s.chars().count() > 1 {
        let n = s.chars().count();
        s = s.chars().take(n.saturating_sub(2)).collect();
        s.push('…');
    }
    s
}

fn unique_stem(name: &str, used: &mut Vec<String>) -> String {
    let mut base: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    base = base.trim_start_matches('.').to_owned();
    if base.is_empty() {
        base = "metric".to_owned();
    }
    let mut stem = base.clone();
    let mut n = 2;
    while used.iter().any(|u| u.eq_ignore_ascii_case(&stem)) {
        stem = format!("{base}_{n}");
        n += 1;
    }
    used.push(stem.clone());
    stem
}

// ---------------------------------------------------------------------------------------------
// Curves.

struct Curve {
    name: String,
    color: RGBColor,
    /// Runs of consecutive finite points `(epoch, value)`.
    segments: Vec<Vec<(i32, f64)>>,
}

struct CurvesPicture {
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
    fn new(
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

// ---------------------------------------------------------------------------------------------
// Confusion matrix.

/// Rejects a matrix whose serialised counts do not hold `k²` entries, which would make
/// [`ConfusionMatrix::get`] index out of bounds (only a corrupt deserialised matrix can).
fn check_matrix(path: &Path, cm: &ConfusionMatrix) -> Result<(), PlotError> {
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

struct ConfusionPicture {
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
    fn new(cm: &ConfusionMatrix, class_names: &[String], title: &str) -> Self {
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
        let shown = |i: usize| i % label_step == 0;
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

// ---------------------------------------------------------------------------------------------
// Text rendering for the PNG backend.

mod crisp {
    use std::sync::OnceLock;

    use plotters::style::text_anchor::{HPos, VPos};
    use plotters::style::FontStyle;
    use plotters_backend::{
        BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend,
        DrawingErrorKind,
    };

    /// A backend wrapper that draws text itself with `ab_glyph`, placing each glyph by its own
    /// bounds at a sub-pixel caret position. (plotters' `ab_glyph` text drawing ignores the glyphs'
    /// left side bearings, which makes narrow glyphs such as "l" or "1" collide with their
    /// neighbours.) Widths match plotters' layout estimate: the sum of advances and kernings.
    pub(super) struct CrispText<DB> {
        pub(super) inner: DB,
    }

    /// DejaVu Sans regular and bold, parsed once.
    fn parsed_fonts() -> Option<&'static (ab_glyph::FontRef<'static>, ab_glyph::FontRef<'static>)> {
        static FONTS: OnceLock<Option<(ab_glyph::FontRef<'static>, ab_glyph::FontRef<'static>)>> =
            OnceLock::new();
        FONTS
            .get_or_init(|| {
                let regular = ab_glyph::FontRef::try_from_slice(dejavu::sans::regular()).ok()?;
                let bold = ab_glyph::FontRef::try_from_slice(dejavu::sans::bold()).ok()?;
                Some((regular, bold))
            })
            .as_ref()
    }

    #[derive(Debug)]
    struct NoFont;

    impl std::fmt::Display for NoFont {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the embedded DejaVu Sans font cannot be parsed")
        }
    }

    impl std::error::Error for NoFont {}

    impl<DB: DrawingBackend> DrawingBackend for CrispText<DB> {
        type ErrorType = DB::ErrorType;

        fn get_size(&self) -> (u32, u32) {
            self.inner.get_size()
        }

        fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.ensure_prepared()
        }

        fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.present()
        }

        fn draw_pixel(
            &mut self,
            point: BackendCoord,
            color: BackendColor,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.draw_pixel(point, color)
        }

        fn draw_line<S: BackendStyle>(
            &mut self,
            from: BackendCoord,
            to: BackendCoord,
            style: &S,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.draw_line(from, to, style)
        }

        fn draw_rect<S: BackendStyle>(
            &mut self,
            upper_left: BackendCoord,
            bottom_right: BackendCoord,
            style: &S,
            fill: bool,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.draw_rect(upper_left, bottom_right, style, fill)
        }

        fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            path: I,
            style: &S,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.draw_path(path, style)
        }

        fn draw_circle<S: BackendStyle>(
            &mut self,
            center: BackendCoord,
            radius: u32,
            style: &S,
            fill: bool,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.draw_circle(center, radius, style, fill)
        }

        fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            vert: I,
            style: &S,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.fill_polygon(vert, style)
        }

        fn blit_bitmap(
            &mut self,
            pos: BackendCoord,
            size: (u32, u32),
            src: &[u8],
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.inner.blit_bitmap(pos, size, src)
        }

        fn draw_text<TStyle: BackendTextStyle>(
            &mut self,
            text: &str,
            style: &TStyle,
            pos: BackendCoord,
        ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
            use ab_glyph::{Font, ScaleFont};
            let color = style.color();
            if color.alpha == 0.0 || text.is_empty() {
                return Ok(());
            }
            let Some((regular, bold)) = parsed_fonts() else {
                return Err(DrawingErrorKind::FontError(Box::new(NoFont)));
            };
            let font = match style.style() {
                FontStyle::Bold => bold,
                _ => regular,
            };
            let size = style.size() as f32;
            if !(size.is_finite() && size > 0.0) {
                return Ok(());
            }
            let scaled = font.as_scaled(size);

            // Caret positions, as plotters lays the text out.
            let mut glyphs = Vec::with_capacity(text.len());
            let mut caret = 0f32;
            let mut prev = None;
            for c in text.chars() {
                let id = scaled.glyph_id(c);
                if let Some(p) = prev {
                    caret += scaled.kern(p, id);
                }
                glyphs.push(id.with_scale_and_position(size, ab_glyph::point(caret, 0.0)));
                caret += scaled.h_advance(id);
                prev = Some(id);
            }
            // The layout box is `caret` wide and size / 1.24 high (plotters' estimate); its top is
            // the cap height above the baseline, and "centre" centres the capitals.
            let width = caret;
            let cap = scaled.ascent() * 0.77;
            let height = size / 1.24;
            let dx = match style.anchor().h_pos {
                HPos::Left => 0.0,
                HPos::Right => -width,
                HPos::Center => -width / 2.0,
            };
            let baseline = match style.anchor().v_pos {
                VPos::Top => cap,
                VPos::Center => cap / 2.0,
                VPos::Bottom => cap - height,
            };
            let trans = style.transform();
            let (w, h) = self.inner.get_size();
            for glyph in glyphs {
                let Some(outline) = font.outline_glyph(glyph) else { continue };
                let bounds = outline.px_bounds();
                let mut pixels = Vec::new();
                outline.draw(|x, y, coverage| {
                    if coverage > 0.0 {
                        let lx = (bounds.min.x + x as f32 + dx).round() as i32;
                        let ly = (bounds.min.y + y as f32 + baseline).round() as i32;
                        pixels.push((lx, ly, coverage.min(1.0)));
                    }
                });
                for (lx, ly, coverage) in pixels {
                    let (x, y) = trans.transform(lx, ly);
                    let (x, y) = (pos.0.saturating_add(x), pos.1.saturating_add(y));
                    if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                        let c = BackendColor {
                            alpha: color.alpha * f64::from(coverage),
                            rgb: color.rgb,
                        };
                        self.inner.draw_pixel((x, y), c)?;
                    }
                }
            }
            Ok(())
        }
    }
}
