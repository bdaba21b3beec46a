//! Reads a generated clip back — which colour, which shape, which way it
//! moves — to score the embedded model. A port of `tools/train/checker.py`
//! (the same rules and thresholds, so training's accuracy curve and this test
//! agree); the palette and background mirror `tools/train/data.py`.
//!
//! The blob is the set of pixels far from the dark background; its colour is
//! the palette colour nearest its mean; its shape comes from how much of its
//! bounding box it fills (median over frames); its direction from the slope
//! of a straight-line fit of its centroid over the frames that show it.

pub const BACKGROUND: f32 = 0.08;
pub const PALETTE: [(&str, [f32; 3]); 5] = [
    ("red", [0.95, 0.15, 0.15]),
    ("green", [0.15, 0.85, 0.2]),
    ("blue", [0.2, 0.35, 0.95]),
    ("yellow", [0.95, 0.9, 0.15]),
    ("white", [0.95, 0.95, 0.95]),
];
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
pub const DIRECTIONS: [&str; 4] = ["left", "right", "up", "down"];

/// What the checker saw; `None` where it could not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub colour: Option<&'static str>,
    pub shape: Option<&'static str>,
    pub direction: Option<&'static str>,
}

/// Least-squares slope of `ys` against 0, 1, 2, ….
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    let mt = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let num: f64 = ys.iter().enumerate().map(|(t, y)| (t as f64 - mt) * (y - my)).sum();
    let den: f64 = (0..ys.len()).map(|t| (t as f64 - mt).powi(2)).sum();
    num / den
}

/// `rgb`: `frames × height × width × 3` values in [0, 1].
pub fn check(rgb: &[f32], frames: usize, height: usize, width: usize) -> Seen {
    let none = Seen { colour: None, shape: None, direction: None };
    let plane = height * width;
    let mut sum = [0f64; 3];
    let mut count = 0usize;
    let mut centroids: Vec<(f64, f64)> = Vec::new();
    let mut fills: Vec<f64> = Vec::new();
    for f in 0..frames {
        let (mut n, mut sx, mut sy) = (0usize, 0f64, 0f64);
        let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
        for i in 0..plane {
            let p = &rgb[(f * plane + i) * 3..][..3];
            if p.iter().map(|v| (v - BACKGROUND).abs()).fold(0.0, f32::max) <= 0.3 {
                continue;
            }
            p.iter().zip(&mut sum).for_each(|(v, s)| *s += *v as f64);
            count += 1;
            let (y, x) = (i / width, i % width);
            n += 1;
            sx += x as f64;
            sy += y as f64;
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if n >= 3 {
            centroids.push((sx / n as f64, sy / n as f64));
            fills.push(n as f64 / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64);
        }
    }
    if count < 4 {
        return none;
    }
    let mean = sum.map(|s| s / count as f64);
    let colour = PALETTE
        .iter()
        .map(|(name, c)| (*name, c.iter().zip(&mean).map(|(c, m)| (*c as f64 - m).powi(2)).sum::<f64>()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(name, _)| name);
    let direction = (centroids.len() >= 2)
        .then(|| {
            let sx = slope(&centroids.iter().map(|c| c.0).collect::<Vec<_>>());
            let sy = slope(&centroids.iter().map(|c| c.1).collect::<Vec<_>>());
            (sx.abs().max(sy.abs()) > 0.3).then(|| match (sx.abs() >= sy.abs(), sx > 0.0, sy > 0.0) {
                (true, true, _) => "right",
                (true, false, _) => "left",
                (false, _, true) => "down",
                (false, _, false) => "up",
            })
        })
        .flatten();
    fills.sort_by(f64::total_cmp);
    let fill = match fills.len() {
        0 => 0.0,
        n if n % 2 == 1 => fills[n / 2],
        n => (fills[n / 2 - 1] + fills[n / 2]) / 2.0,
    };
    let shape = if fill > 0.88 {
        "square"
    } else if fill > 0.66 {
        "circle"
    } else {
        "triangle"
    };
    Seen { colour, shape: Some(shape), direction }
}

/// A clip drawn by hand (no anti-aliasing): `shape` of radius `r` in `colour`
/// moving `step` pixels per frame in `direction`, starting at `(cx, cy)` —
/// to test the checker without the training code.
#[allow(clippy::too_many_arguments)] // a test helper: every argument is one property of the clip
pub fn draw(
    colour: &str,
    shape: &str,
    direction: &str,
    frames: usize,
    size: usize,
    start: (f32, f32),
    r: f32,
    step: f32,
) -> Vec<f32> {
    let rgb = PALETTE.iter().find(|(n, _)| *n == colour).expect("a palette colour").1;
    let (vx, vy) = match direction {
        "left" => (-1.0, 0.0),
        "right" => (1.0, 0.0),
        "up" => (0.0, -1.0),
        _ => (0.0, 1.0),
    };
    let mut out = vec![BACKGROUND; frames * size * size * 3];
    for f in 0..frames {
        let (cx, cy) = (start.0 + vx * step * f as f32, start.1 + vy * step * f as f32);
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let inside = match shape {
                    "circle" => dx * dx + dy * dy <= r * r,
                    "square" => dx.abs() <= r && dy.abs() <= r,
                    _ => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.6,
                };
                if inside {
                    out[((f * size + y) * size + x) * 3..][..3].copy_from_slice(&rgb);
                }
            }
        }
    }
    out
}
