//! Pictures: loss/metric curves and confusion matrices, as SVG and PNG. Checks that both files
//! are written (and only them: no temporary files left), that the PNGs are real PNGs of the
//! announced size with ink in them (the embedded font renders), that the SVGs carry the series
//! names, axis labels and class names as text, and that odd inputs (NaN, ±∞, one epoch, no
//! data, zero or too many classes, huge counts, long or hostile names) never panic.
use std::fs;
use std::path::{Path, PathBuf};

use tinylstm_cli::metrics::ConfusionMatrix;
use tinylstm_cli::plots::{
    confusion, curves, curves_with_best_epoch, training_curves, HistoryView, PlotError, Series,
    MAX_CLASSES,
};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// A decoded RGB(A) picture.
struct Picture {
    width: u32,
    height: u32,
    /// Bytes per pixel.
    bpp: usize,
    pixels: Vec<u8>,
}

impl Picture {
    fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let i = (y as usize * self.width as usize + x as usize) * self.bpp;
        (self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
    }

    /// Pixels within `tol` of `color` (per channel) in the rows `y0..y1`.
    fn count_near(&self, color: (u8, u8, u8), tol: u8, rows: std::ops::Range<u32>) -> usize {
        let mut n = 0;
        for y in rows {
            for x in 0..self.width {
                let (r, g, b) = self.rgb(x, y);
                if r.abs_diff(color.0) <= tol
                    && g.abs_diff(color.1) <= tol
                    && b.abs_diff(color.2) <= tol
                {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Checks the signature and decodes the whole file.
fn read_png(path: &Path) -> Picture {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(&PNG_SIGNATURE), "{}: no PNG signature", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    pixels.truncate(info.buffer_size());
    Picture { width: info.width, height: info.height, bpp, pixels }
}

fn read_svg(path: &Path) -> String {
    let svg = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(svg.contains("<svg"), "{}: not an SVG", path.display());
    assert!(svg.trim_end().ends_with("</svg>"), "{}: truncated SVG", path.display());
    svg
}

/// The contents of the SVG's `<text>` elements, trimmed (still XML-escaped).
fn texts(svg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else { break };
        let Some(close) = rest.find("</text>") else { break };
        out.push(rest[open_end + 1..close].trim());
        rest = &rest[close..];
    }
    out
}

/// `text` is the whole content of one of the SVG's `<text>` elements.
fn has_text(svg: &str, text: &str) -> bool {
    texts(svg).contains(&text)
}

/// The file names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_pair(paths: &[PathBuf], stem: &Path) {
    let mut svg = stem.as_os_str().to_owned();
    svg.push(".svg");
    let mut png = stem.as_os_str().to_owned();
    png.push(".png");
    assert_eq!(paths, [PathBuf::from(svg), PathBuf::from(png)]);
    for p in paths {
        assert!(p.is_file(), "{} missing", p.display());
    }
}

fn no_temp_files(dir: &Path) {
    let names = listing(dir);
    assert!(
        names.iter().all(|n| !n.starts_with(".tmp") && !n.contains("tmp")),
        "temporary files left in {}: {names:?}",
        dir.display()
    );
}

const BLUE: (u8, u8, u8) = (31, 119, 180);
const ORANGE: (u8, u8, u8) = (255, 127, 14);

#[test]
fn curves_write_an_svg_and_a_png_with_text_and_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stem = dir.path().join("loss");
    let train = [1.0, 0.7, 0.5, 0.4, 0.35, 0.3];
    let valid = [1.1, 0.8, 0.6, 0.55, 0.56, 0.6];
    let paths = curves(
        &stem,
        "Loss per epoch",
        "cross-entropy",
        "epoch",
        &[Series { name: "train", values: &train }, Series { name: "valid", values: &valid }],
    )
    .expect("curves");
    assert_pair(&paths, &stem);

    let svg = read_svg(&paths[0]);
    for text in ["Loss per epoch", "cross-entropy", "epoch", "train", "valid"] {
        assert!(has_text(&svg, text), "SVG lacks the text {text:?}");
    }
    assert!(svg.contains(r#"font-family="sans-serif""#));
    // Epoch ticks are whole epochs.
    assert!(has_text(&svg, "1") && has_text(&svg, "6"));
    assert!(!has_text(&svg, "1.5"));

    let png = read_png(&paths[1]);
    assert_eq!((png.width, png.height), (960, 600));
    // Both series are drawn in their colours; the title band holds dark text pixels, which
    // only the embedded font can have put there.
    assert!(png.count_near(BLUE, 8, 0..png.height) > 200, "no training line");
    assert!(png.count_near(ORANGE, 8, 0..png.height) > 200, "no validation line");
    assert!(png.count_near((34, 34, 34), 40, 0..45) > 100, "no title text in the PNG");
    // The plot background is white.
    assert_eq!(png.rgb(png.width - 3, png.height - 3), (255, 255, 255));

    assert_eq!(listing(dir.path()), ["loss.png", "loss.svg"]);
}

#[test]
fn training_curves_write_loss_and_one_picture_per_metric_with_the_best_epoch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("model"); // created on demand
    let loss = [0.9, 0.6, 0.45, 0.4];
    let val_loss = [0.95, 0.7, 0.5, 0.52];
    let acc = [0.5, 0.7, 0.8, 0.85];
    let val_acc = [0.45, 0.65, 0.78, 0.77];
    let top5 = [0.9, 0.95, 0.97, 0.98];
    let history = HistoryView {
        loss: &loss,
        val_loss: &val_loss,
        metrics: vec![("accuracy", &acc, &val_acc), ("top-5/acc", &top5, &[])],
        best_epoch: Some(3),
    };
    let paths = training_curves(&out, &history).expect("training curves");
    let names: Vec<String> =
        paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["loss.svg", "loss.png", "accuracy.svg", "accuracy.png", "top-5_acc.svg", "top-5_acc.png"]
    );
    let svg = read_svg(&out.join("loss.svg"));
    for text in ["training", "validation", "best epoch 3", "loss", "epoch"] {
        assert!(has_text(&svg, text), "loss.svg lacks {text:?}");
    }
    let svg = read_svg(&out.join("accuracy.svg"));
    assert!(has_text(&svg, "accuracy") && has_text(&svg, "best epoch 3"));
    // A metric without validation values: no validation entry in its legend.
    let svg = read_svg(&out.join("top-5_acc.svg"));
    assert!(has_text(&svg, "training") && !has_text(&svg, "validation"));
    for p in &paths {
        if p.extension().is_some_and(|e| e == "png") {
            let png = read_png(p);
            assert_eq!((png.width, png.height), (960, 600));
        }
    }
    no_temp_files(&out);
    assert_eq!(listing(&out).len(), 6);
}

#[test]
fn nan_inf_one_epoch_and_empty_series_do_not_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let cases: Vec<(&str, Vec<Vec<f64>>)> = vec![
        ("gaps", vec![vec![1.0, nan, 0.8, nan, nan, 0.6], vec![nan, 0.9, inf, 0.7, -inf, nan]]),
        ("one_epoch", vec![vec![0.5], vec![0.7]]),
        ("all_nan", vec![vec![nan, nan, nan], vec![inf, -inf]]),
        ("empty_values", vec![vec![], vec![]]),
        ("no_series", vec![]),
        ("extreme", vec![vec![f64::MAX, f64::MIN, 1e-300, -0.0], vec![5e-324]]),
        ("constant", vec![vec![0.25; 5]]),
        ("flat_zero", vec![vec![0.0; 3]]),
        ("tiny_span", vec![vec![1.0, 1.0 + 1e-15, 1.0]]),
        ("scientific", vec![vec![1e-7, 3e-7, 2e-7], vec![1e9, 2e9]]),
        ("many_epochs", vec![(0..5000).map(|i| 1.0 / (1.0 + i as f64)).collect()]),
    ];
    for (name, data) in &cases {
        let series: Vec<Series> = data
            .iter()
            .enumerate()
            .map(|(i, v)| Series { name: if i == 0 { "train" } else { "valid" }, values: v })
            .collect();
        for best in [None, Some(0), Some(1), Some(2), Some(usize::MAX)] {
            let stem = dir.path().join(name);
            let paths = curves_with_best_epoch(&stem, name, "value", "epoch", &series, best)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_pair(&paths, &stem);
            let png = read_png(&paths[1]);
            assert_eq!((png.width, png.height), (960, 600), "{name}");
            let svg = read_svg(&paths[0]);
            assert!(has_text(&svg, name), "{name}: title missing");
        }
    }
    // Without any finite value the chart says so.
    assert!(has_text(&read_svg(&dir.path().join("all_nan.svg")), "no data"));
    assert!(has_text(&read_svg(&dir.path().join("no_series.svg")), "no data"));
    assert!(!has_text(&read_svg(&dir.path().join("gaps.svg")), "no data"));
    // The last pass used a best epoch outside 1..=n: not drawn.
    assert!(!read_svg(&dir.path().join("one_epoch.svg")).contains("best epoch"));
    no_temp_files(dir.path());
    assert_eq!(listing(dir.path()).len(), 2 * cases.len());
}

fn matrix(pairs: &[(u32, u32, usize)], k: usize) -> ConfusionMatrix {
    let mut t = Vec::new();
    let mut p = Vec::new();
    for &(truth, pred, n) in pairs {
        t.extend(std::iter::repeat_n(truth, n));
        p.extend(std::iter::repeat_n(pred, n));
    }
    ConfusionMatrix::new(&t, &p, k).expect("confusion matrix")
}

#[test]
fn confusion_matrix_shows_counts_class_names_and_accuracy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stem = dir.path().join("confusion");
    let cm = matrix(&[(0, 0, 50), (0, 1, 3), (1, 1, 40), (1, 2, 7), (2, 0, 2), (2, 2, 38)], 3);
    let names: Vec<String> = ["cat", "dog", "bird"].map(String::from).into();
    let paths = confusion(&stem, &cm, &names, "Test split").expect("confusion");
    assert_pair(&paths, &stem);

    let svg = read_svg(&paths[0]);
    for text in ["cat", "dog", "bird", "true", "predicted", "50", "3", "40", "7", "38", "0"] {
        assert!(has_text(&svg, text), "SVG lacks {text:?}");
    }
    // 128 of 140 correct.
    assert!(has_text(&svg, "Test split — accuracy 91.4% (128 of 140)"), "title with accuracy");
    // Row-normalised shares are printed under the counts: 50/53 = 94.3%.
    assert!(has_text(&svg, "94.3%"));

    let png = read_png(&paths[1]);
    let (w, h) = svg_size(&svg);
    assert_eq!((png.width, png.height), (w, h), "SVG and PNG have the same size");
    assert!(png.width >= 300 && png.height >= 300);
    // The darkest colour-map blue fills the 50/53 cell; the title band has text.
    assert!(png.count_near((8, 48, 107), 30, 0..png.height) > 1000, "no dark cell");
    assert!(png.count_near((34, 34, 34), 40, 0..50) > 100, "no title text in the PNG");
    assert_eq!(listing(dir.path()), ["confusion.png", "confusion.svg"]);
}

/// The `width`/`height` attributes of the root `<svg>` element.
fn svg_size(svg: &str) -> (u32, u32) {
    let attr = |name: &str| -> u32 {
        let start = svg.find(&format!("{name}=\"")).expect("size attribute") + name.len() + 2;
        let end = start + svg[start..].find('"').expect("closing quote");
        svg[start..end].parse().expect("numeric size")
    };
    (attr("width"), attr("height"))
}

#[test]
fn confusion_matrix_odd_inputs_do_not_panic() {
    let dir = tempfile::tempdir().expect("temp dir");

    // One class, no samples; missing names fall back to indices.
    let cm = ConfusionMatrix::new(&[], &[], 1).expect("empty matrix");
    let paths = confusion(&dir.path().join("empty"), &cm, &[], "").expect("empty");
    let svg = read_svg(&paths[0]);
    assert!(has_text(&svg, "accuracy n/a (no samples)") && has_text(&svg, "0"));
    read_png(&paths[1]);

    // Zero classes (only a deserialised matrix can have them): a note, not a panic.
    let cm: ConfusionMatrix =
        serde_json::from_str(r#"{"num_classes":0,"counts":[]}"#).expect("json");
    let paths = confusion(&dir.path().join("zero"), &cm, &[], "nothing").expect("zero classes");
    assert!(has_text(&read_svg(&paths[0]), "no classes: nothing to show"));
    read_png(&paths[1]);

    // Counts near u64::MAX: sums do not overflow; counts that do not fit are left out.
    let max = u64::MAX;
    let cm: ConfusionMatrix =
        serde_json::from_str(&format!(r#"{{"num_classes":2,"counts":[{max},{max},1,{max}]}}"#))
            .expect("json");
    let paths = confusion(&dir.path().join("huge"), &cm, &[], "huge").expect("huge counts");
    assert!(read_svg(&paths[0]).contains("huge — accuracy 66.7%"));
    read_png(&paths[1]);

    // Long, empty and hostile class names: shortened, replaced by the index, escaped.
    let names = vec!["x".repeat(500), String::new(), "<&>\n\"quoted\"".to_owned()];
    let cm = matrix(&[(0, 0, 5), (1, 2, 4), (2, 1, 2), (2, 2, 3)], 3);
    let paths = confusion(&dir.path().join("names"), &cm, &names, "a <b> & c").expect("names");
    let svg = read_svg(&paths[0]);
    assert!(has_text(&svg, &format!("{}…", "x".repeat(23))), "long name shortened");
    assert!(has_text(&svg, "1"), "empty name replaced by its index");
    assert!(svg.contains("&lt;&amp;&gt;") && !svg.contains("<&>"), "names escaped");
    read_png(&paths[1]);

    // Many classes: still drawn (labels thinned, counts left out), same size in both files.
    let k = MAX_CLASSES;
    let t: Vec<u32> = (0..4 * k as u32).map(|i| i % k as u32).collect();
    let p: Vec<u32> = t.iter().map(|&c| if c % 5 == 0 { (c + 1) % k as u32 } else { c }).collect();
    let cm = ConfusionMatrix::new(&t, &p, k).expect("many classes");
    let paths = confusion(&dir.path().join("many"), &cm, &[], "many").expect("many classes");
    let svg = read_svg(&paths[0]);
    let png = read_png(&paths[1]);
    assert_eq!((png.width, png.height), svg_size(&svg));

    no_temp_files(dir.path());
}

#[test]
fn errors_name_the_file_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("temp dir");

    let cm = ConfusionMatrix::new(&[], &[], MAX_CLASSES + 1).expect("matrix");
    let stem = dir.path().join("too_many");
    let err = confusion(&stem, &cm, &[], "x").expect_err("too many classes");
    assert!(matches!(err, PlotError::TooManyClasses { classes, .. } if classes == MAX_CLASSES + 1));
    assert!(err.to_string().contains("too_many"), "{err}");

    let cm: ConfusionMatrix =
        serde_json::from_str(r#"{"num_classes":3,"counts":[1,2]}"#).expect("json");
    let err = confusion(&dir.path().join("bad"), &cm, &[], "x").expect_err("malformed");
    assert!(matches!(err, PlotError::MalformedMatrix { classes: 3, .. }), "{err}");

    // A parent that is a regular file: an I/O error naming the picture.
    fs::write(dir.path().join("blocker"), b"not a directory").expect("write");
    let stem = dir.path().join("blocker").join("loss");
    let err = curves(&stem, "t", "y", "x", &[Series { name: "a", values: &[1.0] }])
        .expect_err("cannot write under a file");
    assert!(matches!(err, PlotError::Io { .. }), "{err}");
    assert!(err.to_string().contains("blocker"), "{err}");

    assert_eq!(listing(dir.path()), ["blocker"]);
}

#[test]
fn rewriting_replaces_whole_files_atomically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stem = dir.path().join("acc");
    let first = [0.1, 0.2, 0.3];
    let second = [0.9; 40];
    curves(&stem, "first", "acc", "epoch", &[Series { name: "one", values: &first }])
        .expect("first");
    let paths = curves(&stem, "second", "acc", "epoch", &[Series { name: "two", values: &second }])
        .expect("second");
    let svg = read_svg(&paths[0]);
    assert!(has_text(&svg, "second") && has_text(&svg, "two") && !has_text(&svg, "one"));
    read_png(&paths[1]);
    #[cfg(unix)]
    {
        // Pictures get the permissions of a file made by `File::create` (0o666 minus the
        // umask: readable by everyone under the usual 0o022), not a temporary file's 0o600.
        use std::os::unix::fs::PermissionsExt;
        let probe = dir.path().join("probe");
        fs::write(&probe, b"").expect("probe file");
        let created = fs::metadata(&probe).expect("metadata").permissions().mode() & 0o777;
        fs::remove_file(&probe).expect("remove probe");
        for p in &paths {
            let mode = fs::metadata(p).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, created, "{} has a temporary file's mode", p.display());
        }
    }
    assert_eq!(listing(dir.path()), ["acc.png", "acc.svg"]);
}

/// ROC and precision–recall pictures (binary tasks): an SVG with the axis titles and the
/// legend, and a PNG of the stated size whose curve colour is present.
#[test]
fn roc_and_precision_recall_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let y = [1u32, 0, 1, 0, 1, 1, 0, 0];
    let s = [0.9f32, 0.8, 0.7, 0.6, 0.55, 0.4, 0.2, 0.1];
    let roc = tinylstm_cli::metrics::roc_curve(&y, &s).unwrap().unwrap();
    let pr = tinylstm_cli::metrics::precision_recall_curve(&y, &s).unwrap().unwrap();
    let series = [tinylstm_cli::plots::XySeries { name: "model (AUC 0.6875)", points: &roc }];
    let written = tinylstm_cli::plots::roc(&dir.path().join("roc"), "ROC — test", &series).unwrap();
    assert_pair(&written, &dir.path().join("roc"));
    let svg = read_svg(&written[0]);
    for t in ["false positive rate", "true positive rate", "model (AUC 0.6875)", "chance"] {
        assert!(has_text(&svg, t), "missing {t:?}");
    }
    let png = read_png(&written[1]);
    assert_eq!((png.width, png.height), (720, 640));
    // The curve is drawn in the palette's first colour (31, 119, 180).
    assert!(png.count_near((31, 119, 180), 40, 0..png.height) > 200);
    let series = [tinylstm_cli::plots::XySeries { name: "model", points: &pr }];
    let stem = dir.path().join("precision_recall");
    let written = tinylstm_cli::plots::precision_recall(&stem, "PR — test", &series).unwrap();
    assert_pair(&written, &stem);
    let svg = read_svg(&written[0]);
    assert!(has_text(&svg, "recall") && has_text(&svg, "precision"));
    no_temp_files(dir.path());
}

/// A training history whose loss spans two decades or more gets a log-scale loss picture
/// (`loss_log`, axis `log10(loss)`) beside the linear one; one within a decade does not.
#[test]
fn a_loss_spanning_decades_gets_a_log_scale_picture() {
    use tinylstm_cli::history::{write_history_plots, EpochStats};
    let epoch = |epoch: usize, loss: f64| EpochStats {
        epoch,
        loss,
        accuracy: Some(0.5),
        val_loss: Some(loss * 1.1),
        val_accuracy: Some(0.5),
        lr: 1e-3,
        seconds: 1.0,
        samples_per_sec: 100.0,
    };
    let dir = tempfile::tempdir().unwrap();
    let wide: Vec<EpochStats> =
        [5000.0, 40.0, 0.9, 0.02].iter().enumerate().map(|(i, &l)| epoch(i + 1, l)).collect();
    let written = write_history_plots(dir.path(), &wide, Some(4)).unwrap();
    assert_pair(
        &written
            .iter()
            .filter(|p| p.to_string_lossy().contains("loss_log"))
            .cloned()
            .collect::<Vec<_>>(),
        &dir.path().join("loss_log"),
    );
    let svg = read_svg(&dir.path().join("loss_log.svg"));
    assert!(has_text(&svg, "log10(loss)"), "{:?}", texts(&svg));
    assert!(has_text(&svg, "Training and validation loss (log scale)"));
    let narrow_dir = tempfile::tempdir().unwrap();
    let narrow: Vec<EpochStats> =
        [0.9, 0.5, 0.2, 0.1].iter().enumerate().map(|(i, &l)| epoch(i + 1, l)).collect();
    let written = write_history_plots(narrow_dir.path(), &narrow, Some(4)).unwrap();
    assert!(written.iter().all(|p| !p.to_string_lossy().contains("loss_log")), "{written:?}");
    assert!(narrow_dir.path().join("loss.svg").exists());
}
