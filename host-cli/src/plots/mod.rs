//! Loss/metric curves and confusion matrices as SVG and PNG.
//!
//! Every picture is written twice, as `<stem>.svg` and `<stem>.png`, next to each other. Each
//! file is rendered in memory and written with [`crate::files::write_atomic`] (a temporary file
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

mod confusion;
mod crisp;
mod curves;
mod xy;

use confusion::{check_matrix, ConfusionPicture};
use curves::CurvesPicture;
pub use xy::XySeries;
use xy::{unit_points, XyPicture};

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

/// Draws ROC curves (false positive rate → true positive rate, with the chance line) and writes
/// `<path_stem>.svg` and `<path_stem>.png`. Non-finite points are left out; points are clamped
/// to the unit square. Returns the paths written (SVG first).
pub fn roc(path_stem: &Path, title: &str, series: &[XySeries]) -> Result<Vec<PathBuf>, PlotError> {
    ensure_fonts(path_stem)?;
    let picture = XyPicture {
        title: clean_text(title, 120),
        x_label: "false positive rate".into(),
        y_label: "true positive rate".into(),
        curves: series.iter().map(|s| (clean_text(s.name, 60), unit_points(s.points))).collect(),
        diagonal: true,
        legend_pos: SeriesLabelPosition::LowerRight,
    };
    write_picture(path_stem, &picture)
}

/// Draws precision–recall curves (recall → precision) and writes `<path_stem>.svg` and
/// `<path_stem>.png`, as [`roc`] does. Returns the paths written (SVG first).
pub fn precision_recall(
    path_stem: &Path,
    title: &str,
    series: &[XySeries],
) -> Result<Vec<PathBuf>, PlotError> {
    ensure_fonts(path_stem)?;
    let picture = XyPicture {
        title: clean_text(title, 120),
        x_label: "recall".into(),
        y_label: "precision".into(),
        curves: series.iter().map(|s| (clean_text(s.name, 60), unit_points(s.points))).collect(),
        diagonal: false,
        legend_pos: SeriesLabelPosition::LowerLeft,
    };
    write_picture(path_stem, &picture)
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

/// Writes a picture atomically ([`crate::files::write_atomic`]: temporary file in the same
/// directory, `fsync`, rename, directory `fsync`), creating missing parent directories first.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    let io = |source| PlotError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    crate::files::write_atomic(path, bytes).map_err(io)
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
