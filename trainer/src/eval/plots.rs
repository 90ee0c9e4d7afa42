//! Report plots as PNG (ROC curves, training curves): axes, a 0.1 grid and coloured lines, drawn
//! directly into an RGB buffer. The numbers behind them are in `metrics.json`.

const SIZE: usize = 480;
const MARGIN: usize = 40;

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        let mut c = Self { px: vec![255; SIZE * SIZE * 3] };
        let span = (SIZE - 2 * MARGIN) as f64;
        for k in 0..=10 {
            let v = k as f64 / 10.0;
            let shade = if k == 0 || k == 10 { [0, 0, 0] } else { [220, 220, 220] };
            c.line((0.0, v), (1.0, v), shade, span);
            c.line((v, 0.0), (v, 1.0), shade, span);
        }
        c
    }

    fn put(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        if (0..SIZE as i64).contains(&x) && (0..SIZE as i64).contains(&y) {
            let i = (y as usize * SIZE + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// A line between two points in unit coordinates (y up).
    fn line(&mut self, a: (f64, f64), b: (f64, f64), rgb: [u8; 3], span: f64) {
        let to = |p: (f64, f64)| {
            (MARGIN as f64 + p.0.clamp(0.0, 1.0) * span, (SIZE - MARGIN) as f64 - p.1.clamp(0.0, 1.0) * span)
        };
        let ((x0, y0), (x1, y1)) = (to(a), to(b));
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = ((x0 + t * (x1 - x0)).round() as i64, (y0 + t * (y1 - y0)).round() as i64);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                self.put(x + dx, y + dy, rgb);
            }
        }
    }

    fn polyline(&mut self, pts: &[(f64, f64)], rgb: [u8; 3]) {
        let span = (SIZE - 2 * MARGIN) as f64;
        for w in pts.windows(2) {
            self.line(w[0], w[1], rgb, span);
        }
    }

    fn png(self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, SIZE as u32, SIZE as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&self.px)?;
        Ok(out)
    }
}

/// ROC curve (x: false-positive rate, y: true-positive rate) with the chance diagonal.
pub fn roc_png(scores: &[f32], labels: &[bool]) -> anyhow::Result<Vec<u8>> {
    let mut c = Canvas::new();
    c.polyline(&[(0.0, 0.0), (1.0, 1.0)], [160, 160, 160]);
    let pts: Vec<(f64, f64)> =
        vericlip_core::metrics::roc(scores, labels).iter().map(|p| (p.1, 1.0 - p.2)).chain([(1.0, 1.0)]).collect();
    c.polyline(&pts, [200, 30, 30]);
    c.png()
}

/// Training (blue) and validation (red) loss per epoch, scaled to the largest loss; validation
/// EER in green (0..1).
pub fn training_png(history: &[crate::model::train::EpochStats]) -> anyhow::Result<Vec<u8>> {
    let mut c = Canvas::new();
    let n = history.len().max(2) as f64 - 1.0;
    let top = history.iter().map(|h| h.train_loss.max(h.val_loss)).fold(1e-9, f64::max);
    let series = |f: &dyn Fn(&crate::model::train::EpochStats) -> f64| -> Vec<(f64, f64)> {
        history.iter().enumerate().map(|(i, h)| (i as f64 / n, f(h))).collect()
    };
    c.polyline(&series(&|h| h.train_loss / top), [30, 60, 200]);
    c.polyline(&series(&|h| h.val_loss / top), [200, 30, 30]);
    c.polyline(&series(&|h| h.val_eer.unwrap_or(0.0)), [30, 150, 30]);
    c.png()
}

/// One ROC curve per fake engine family of a split, each family's fakes against every real
/// segment: `(file name, PNG)` pairs named `roc-<family>.png` for the report, so the operating
/// point on each engine (the number that differs most between engines) can be seen, not only the
/// pooled curve. The per-family numbers are in `metrics.json` (`per_family`).
pub fn family_roc_pngs(scores: &[f32], data: &crate::data::SplitData) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut families: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    let mut reals = Vec::new();
    for (i, &fake) in data.labels.iter().enumerate() {
        if !fake {
            reals.push(i);
        } else if let Some(path) = data.file_of.get(i).and_then(|&f| data.files.get(f)) {
            families.entry(crate::data::naming::family_of(path, true)).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    if reals.is_empty() {
        return Ok(out);
    }
    for (family, fakes) in families {
        let idx: Vec<usize> = fakes.iter().chain(&reals).copied().collect();
        let sub_scores: Vec<f32> = idx.iter().filter_map(|&i| scores.get(i).copied()).collect();
        let sub_labels: Vec<bool> = idx.iter().map(|&i| data.labels[i]).collect();
        if sub_scores.len() != sub_labels.len() {
            anyhow::bail!("{} scores for {} segments", scores.len(), data.labels.len());
        }
        // Report file names: letters, digits, '-' and '_' only (`other:<stem>` families too).
        let name: String =
            family.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        out.push((format!("roc-{name}.png"), roc_png(&sub_scores, &sub_labels)?));
    }
    Ok(out)
}
