//! Text rendering for the PNG backend.

use std::sync::OnceLock;

use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontStyle;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
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
                    let c =
                        BackendColor { alpha: color.alpha * f64::from(coverage), rgb: color.rgb };
                    self.inner.draw_pixel((x, y), c)?;
                }
            }
        }
        Ok(())
    }
}
