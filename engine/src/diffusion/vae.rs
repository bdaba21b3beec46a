//! The VAE decoder stage: latents `[1, C, F, H, W]` (already un-normalised)
//! to the decoder's raw output `[1, 3, F', H·s, W·s]`.
//!
//! A decoder is one program for the whole clip, or a `first` program (latent
//! frame 0 → the first frames and the feature cache) and a `chunk` program
//! (each further latent frame and the cache → the next frames and the cache),
//! so memory is set by one latent frame (`python -m kinema_export wan-vae-chunks`).
//! Tiled, as diffusers' `AutoencoderKLWan.tiled_decode`, the latent is cut into
//! overlapping spatial tiles, each decoded chunk by chunk on its own with the
//! decoder exported for its size, and neighbouring tiles are blended linearly
//! where they overlap, so memory is set by one tile's latent frame. Decoders
//! are opened a tile size at a time and, staged, released after it.

use serde::Deserialize;

use super::folder::Folder;
use super::pipeline::{Latent, Model};
use crate::error::{Error, Result};
use crate::program::Program;
use crate::runtime::{Options, Session};

/// `vae_decoder.tiling` in `kinema.json`: tile and stride in latent units
/// (diffusers' `tile_sample_min_*` and `tile_sample_stride_*` over the spatial
/// factor). The decoder's own `program`/`chunk_program` decode a full tile;
/// `edges` the smaller tiles the grid leaves at the bottom and right.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiling {
    pub tile: [usize; 2],
    pub stride: [usize; 2],
    #[serde(default)]
    pub edges: Vec<EdgeDecoder>,
}

/// The decoder of one edge-tile size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDecoder {
    pub height: usize,
    pub width: usize,
    pub program: String,
    pub chunk_program: String,
}

/// A part of one latent axis: where a tile starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

/// The tiles along an axis of `size` latents, as `tiled_decode` cuts them:
/// one every `stride`, `tile` long or up to the end.
pub fn spans(size: usize, tile: usize, stride: usize) -> Vec<Span> {
    (0..size).step_by(stride.max(1)).map(|start| Span { start, len: tile.min(size - start) }).collect()
}

/// Decoded video `[3, frames, height, width]` (the batch of 1 left out).
#[derive(Debug, Clone, PartialEq)]
pub struct Frames {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Frames {
    fn from_pieces(pieces: Vec<crate::runtime::Tensor>) -> Result<Frames> {
        let (mut f, mut h, mut w) = (0, 0, 0);
        for p in &pieces {
            let [1, 3, pf, ph, pw] = p.shape[..] else {
                return Err(Error::Invalid(format!("the VAE decoder gave {:?}, not [1, 3, F, H, W]", p.shape)));
            };
            if f > 0 && (ph, pw) != (h, w) {
                return Err(Error::Invalid("the VAE decoder's chunks differ in size".into()));
            }
            (f, h, w) = (f + pf, ph, pw);
        }
        if pieces.len() == 1 {
            return Ok(Frames { frames: f, height: h, width: w, data: pieces.into_iter().next().unwrap().data });
        }
        // [3, f_i, h, w] pieces → [3, Σf_i, h, w]
        let mut data = Vec::with_capacity(3 * f * h * w);
        for c in 0..3 {
            for p in &pieces {
                let plane = p.shape[2] * h * w;
                data.extend_from_slice(&p.data[c * plane..][..plane]);
            }
        }
        Ok(Frames { frames: f, height: h, width: w, data })
    }

    /// Blends the bottom `extent` rows of `above` into the top of `self`, as
    /// diffusers' `blend_v`: row y becomes `above[−extent + y]·(1 − y/extent) + self[y]·y/extent`.
    fn blend_v(&mut self, above: &Frames, extent: usize) {
        let extent = extent.min(above.height).min(self.height);
        let (w, planes) = (self.width, 3 * self.frames);
        for p in 0..planes {
            for y in 0..extent {
                let t = y as f32 / extent as f32;
                let a = &above.data[(p * above.height + above.height - extent + y) * w..][..w];
                let b = &mut self.data[(p * self.height + y) * w..][..w];
                b.iter_mut().zip(a).for_each(|(b, a)| *b = a * (1.0 - t) + *b * t);
            }
        }
    }

    /// Blends the right `extent` columns of `left` into the left of `self` (`blend_h`).
    fn blend_h(&mut self, left: &Frames, extent: usize) {
        let extent = extent.min(left.width).min(self.width);
        let rows = 3 * self.frames * self.height;
        for r in 0..rows {
            let a = &left.data[r * left.width + left.width - extent..][..extent];
            let b = &mut self.data[r * self.width..][..extent];
            for (x, (b, a)) in b.iter_mut().zip(a).enumerate() {
                let t = x as f32 / extent as f32;
                *b = a * (1.0 - t) + *b * t;
            }
        }
    }
}

/// One decoder's sessions.
enum Sessions {
    Whole(Box<Session>),
    Chunked { first: Box<Session>, chunk: Box<Session> },
}

impl Sessions {
    async fn open(
        folder: &Folder,
        options: Options,
        program: &str,
        chunk: Option<&str>,
        weights: &str,
    ) -> Result<Self> {
        let first = super::pipeline::open_session(folder, options, program, weights).await?;
        let Some(chunk) = chunk else { return Ok(Sessions::Whole(Box::new(first))) };
        let chunk = super::pipeline::open_session(folder, options, chunk, weights).await?;
        check_caches(folder, first.program(), chunk.program())?;
        Ok(Sessions::Chunked { first: Box::new(first), chunk: Box::new(chunk) })
    }

    /// Decodes `z` `[1, C, F, h, w]`, calling `done(frames)` after each run
    /// with the latent frames it decoded.
    async fn decode(&mut self, z: &[f32], [c, f, h, w]: [usize; 4], done: &mut dyn FnMut(usize)) -> Result<Frames> {
        let pieces = match self {
            Sessions::Whole(s) => {
                let out = s.run(&[("z", z)]).await?.swap_remove(0);
                done(f);
                vec![out]
            }
            Sessions::Chunked { first, chunk } => {
                let mut out = first.run(&[("z", &latent_frame(z, c, f, h * w, 0))]).await?;
                done(1);
                let mut pieces = vec![out.remove(0)];
                let names: Vec<String> = (0..out.len()).map(|i| format!("cache_{i}")).collect();
                for k in 1..f {
                    let zk = latent_frame(z, c, f, h * w, k);
                    let mut inputs: Vec<(&str, &[f32])> = vec![("z", &zk)];
                    inputs.extend(names.iter().map(String::as_str).zip(out.iter().map(|t| &t.data[..])));
                    let mut next = chunk.run(&inputs).await?;
                    done(1);
                    pieces.push(next.remove(0));
                    out = next; // the cache for the next chunk; this chunk's is dropped
                }
                pieces
            }
        };
        Frames::from_pieces(pieces)
    }
}

/// Latent frame `k` of `[1, C, F, H, W]` (`plane` = H·W), as `[1, C, 1, H, W]`.
fn latent_frame(z: &[f32], c: usize, f: usize, plane: usize, k: usize) -> Vec<f32> {
    (0..c).flat_map(|ci| &z[(ci * f + k) * plane..][..plane]).copied().collect()
}

/// The first chunk gives the video and one feature cache per cache input of the chunk program.
fn check_caches(folder: &Folder, first: &Program, chunk: &Program) -> Result<()> {
    let caches = chunk.inputs.len().saturating_sub(1);
    if first.outputs.len() != caches + 1 {
        return Err(Error::Invalid(format!(
            "{}: the VAE's first chunk gives {} outputs, the chunk program takes {caches} cache inputs",
            folder.name(),
            first.outputs.len()
        )));
    }
    Ok(())
}

/// The decoder of a tile size: its program and chunk program.
struct Decoder {
    size: (usize, usize),
    program: String,
    chunk: Option<String>,
}

/// The VAE decoder stage of a pipeline.
pub struct VaeDecoder {
    model: Model,
    latent: Latent,
    folder: Folder,
    options: Options,
    /// Sessions kept between decodes, by tile size (the whole latent untiled).
    loaded: Vec<((usize, usize), Sessions)>,
    /// Keep sessions after a decode (else each is released after its tile size).
    keep: bool,
}

impl VaeDecoder {
    /// The programs of the sessions it holds now (none when released).
    pub fn programs(&self) -> Vec<&crate::program::Program> {
        let mut out = Vec::new();
        for (_, sessions) in &self.loaded {
            match sessions {
                Sessions::Whole(s) => out.push(s.program()),
                Sessions::Chunked { first, chunk } => out.extend([first.program(), chunk.program()]),
            }
        }
        out
    }

    /// Checks the decoder's programs (every tile size the latent's grid has a
    /// decoder; first and chunk programs fit); loads them now if `keep`.
    pub async fn open(folder: &Folder, options: Options, model: &Model, latent: &Latent, keep: bool) -> Result<Self> {
        let mut vae = VaeDecoder {
            model: model.clone(),
            latent: latent.clone(),
            folder: folder.clone(),
            options,
            loaded: Vec::new(),
            keep,
        };
        let decoders = vae.decoders()?;
        for d in &decoders {
            if keep {
                let s = Sessions::open(folder, options, &d.program, d.chunk.as_deref(), &model.weights).await?;
                vae.loaded.push((d.size, s));
            } else {
                let parse = |text: String, name: &str| {
                    Program::from_json(&text).map_err(|e| Error::Invalid(format!("{}: {name}: {e}", folder.name())))
                };
                let first = parse(folder.read_text(&d.program).await?, &d.program)?;
                if let Some(chunk) = &d.chunk {
                    check_caches(folder, &first, &parse(folder.read_text(chunk).await?, chunk)?)?;
                }
            }
        }
        Ok(vae)
    }

    /// Whether any of its sessions is loaded now.
    pub fn is_loaded(&self) -> bool {
        !self.loaded.is_empty()
    }

    /// The tile grid: rows and columns (one span each, untiled).
    fn grid(&self) -> (Vec<Span>, Vec<Span>) {
        let l = &self.latent;
        match &self.model.tiling {
            Some(t) => (spans(l.height, t.tile[0], t.stride[0]), spans(l.width, t.tile[1], t.stride[1])),
            None => (vec![Span { start: 0, len: l.height }], vec![Span { start: 0, len: l.width }]),
        }
    }

    /// Every tile size of the grid with its decoder, in the order tiles meet them.
    fn decoders(&self) -> Result<Vec<Decoder>> {
        let m = &self.model;
        let shown = |msg: String| Error::Invalid(format!("{}: kinema.json: vae_decoder: {msg}", self.folder.name()));
        if let Some(t) = &m.tiling {
            if t.tile.contains(&0) || t.stride.contains(&0) || t.stride[0] > t.tile[0] || t.stride[1] > t.tile[1] {
                return Err(shown(format!(
                    "tiling: tile {:?} and stride {:?} must be ≥ 1, stride ≤ tile",
                    t.tile, t.stride
                )));
            }
            if m.chunk_program.is_none() {
                return Err(shown("tiling needs a chunk_program".into()));
            }
        }
        let (rows, cols) = self.grid();
        let mut out: Vec<Decoder> = Vec::new();
        for r in &rows {
            for c in &cols {
                let size = (r.len, c.len);
                if out.iter().any(|d| d.size == size) {
                    continue;
                }
                let full = match &m.tiling {
                    Some(t) => size == (t.tile[0], t.tile[1]),
                    None => true,
                };
                let d = if full {
                    Decoder { size, program: m.program.clone(), chunk: m.chunk_program.clone() }
                } else {
                    let edges = &m.tiling.as_ref().expect("only tiled grids have edge tiles").edges;
                    let e = edges.iter().find(|e| (e.height, e.width) == size).ok_or_else(|| {
                        shown(format!(
                            "the {}×{} latent's tiles include {}×{}, and tiling.edges has no decoder for it",
                            self.latent.height, self.latent.width, size.0, size.1
                        ))
                    })?;
                    Decoder { size, program: e.program.clone(), chunk: Some(e.chunk_program.clone()) }
                };
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Decodes latents `[1, C, F, H, W]` as the transformer makes them
    /// (normalised: each channel is un-normalised, `z · std + mean`, first) to
    /// the decoder's raw output.
    pub async fn decode(&mut self, latents: Vec<f32>) -> Result<Frames> {
        self.decode_with(latents, &mut |_, _| {}).await
    }

    /// [`VaeDecoder::decode`], calling `on_progress(done, total)` as it goes,
    /// counted in latent frames of tiles (`total` = tiles × latent frames).
    pub async fn decode_with(
        &mut self,
        mut latents: Vec<f32>,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Frames> {
        let l = self.latent.clone();
        let (c, f, h, w) = (l.channels, l.frames, l.height, l.width);
        if latents.len() != c * f * h * w {
            return Err(Error::Invalid(format!("latents have {} values, expected {}", latents.len(), c * f * h * w)));
        }
        for (ch, plane) in latents.chunks_mut(f * h * w).enumerate() {
            plane.iter_mut().for_each(|x| *x = *x * l.std[ch] + l.mean[ch]);
        }
        let z = &latents[..];
        let (rows, cols) = self.grid();
        let total = rows.len() * cols.len() * f;
        let mut decoded = 0;
        let mut done = |n: usize| {
            decoded += n;
            on_progress(decoded, total);
        };
        if rows.len() == 1 && cols.len() == 1 {
            let sessions = self.sessions((h, w)).await?;
            let out = sessions.decode(z, [c, f, h, w], &mut done).await;
            self.release((h, w));
            return out;
        }
        // Decode tile by tile, one tile size at a time.
        let mut tiles: Vec<Option<Frames>> = vec![None; rows.len() * cols.len()];
        let sizes: Vec<(usize, usize)> = self.decoders()?.iter().map(|d| d.size).collect();
        for size in sizes {
            for (i, r) in rows.iter().enumerate() {
                for (j, col) in cols.iter().enumerate() {
                    if (r.len, col.len) != size {
                        continue;
                    }
                    let mut sub = Vec::with_capacity(c * f * r.len * col.len);
                    for plane in 0..c * f {
                        for y in r.start..r.start + r.len {
                            sub.extend_from_slice(&z[(plane * h + y) * w + col.start..][..col.len]);
                        }
                    }
                    let sessions = self.sessions(size).await?;
                    tiles[i * cols.len() + j] = Some(sessions.decode(&sub, [c, f, r.len, col.len], &mut done).await?);
                }
            }
            self.release(size);
        }
        let mut tiles: Vec<Frames> = tiles.into_iter().map(|t| t.expect("every tile decoded")).collect();
        let t = self.model.tiling.as_ref().expect("a grid of several tiles is tiled");
        blend(&mut tiles, &rows, &cols, t)
    }

    async fn sessions(&mut self, size: (usize, usize)) -> Result<&mut Sessions> {
        if let Some(i) = self.loaded.iter().position(|(s, _)| *s == size) {
            return Ok(&mut self.loaded[i].1);
        }
        let d = self.decoders()?.into_iter().find(|d| d.size == size).expect("sizes come from the grid");
        let s = Sessions::open(&self.folder, self.options, &d.program, d.chunk.as_deref(), &self.model.weights).await?;
        self.loaded.push((size, s));
        Ok(&mut self.loaded.last_mut().expect("just pushed").1)
    }

    fn release(&mut self, size: (usize, usize)) {
        if !self.keep {
            self.loaded.retain(|(s, _)| *s != size);
        }
    }
}

/// `tiled_decode`'s assembly: in row-major order each tile is blended with the
/// (already blended) tile above and the one to its left over the overlap, then
/// cropped to the stride, and the crops are laid side by side.
fn blend(tiles: &mut [Frames], rows: &[Span], cols: &[Span], t: &Tiling) -> Result<Frames> {
    let first = &tiles[0];
    let scale = first.height / rows[0].len.max(1);
    let frames = first.frames;
    for (k, tile) in tiles.iter().enumerate() {
        let (r, c) = (rows[k / cols.len()], cols[k % cols.len()]);
        if tile.frames != frames || tile.height != r.len * scale || tile.width != c.len * scale {
            return Err(Error::Invalid(format!(
                "the VAE decoder gave a {}×{}×{} tile for {}×{} latents; its other tiles are scaled {scale}×",
                tile.frames, tile.height, tile.width, r.len, c.len
            )));
        }
    }
    let [stride_h, stride_w] = [t.stride[0] * scale, t.stride[1] * scale];
    let [blend_h, blend_w] = [(t.tile[0] - t.stride[0]) * scale, (t.tile[1] - t.stride[1]) * scale];
    let n = cols.len();
    for k in 0..tiles.len() {
        let (i, j) = (k / n, k % n);
        if i > 0 {
            let (done, rest) = tiles.split_at_mut(k);
            rest[0].blend_v(&done[k - n], blend_h);
        }
        if j > 0 {
            let (done, rest) = tiles.split_at_mut(k);
            rest[0].blend_h(&done[k - 1], blend_w);
        }
    }
    // Row i's crop covers pixels i·stride … (the last row's tile is at most a stride long).
    let (height, width) =
        (rows.last().map_or(0, |r| r.start + r.len) * scale, cols.last().map_or(0, |c| c.start + c.len) * scale);
    let mut data = vec![0f32; 3 * frames * height * width];
    for p in 0..3 * frames {
        for y in 0..height {
            let (i, ty) = (y / stride_h, y % stride_h);
            for (j, _) in cols.iter().enumerate() {
                let tile = &tiles[i * n + j];
                let x0 = j * stride_w;
                let len = stride_w.min(tile.width).min(width - x0);
                let src = &tile.data[(p * tile.height + ty) * tile.width..][..len];
                data[(p * height + y) * width + x0..][..len].copy_from_slice(src);
            }
        }
    }
    Ok(Frames { frames, height, width, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cut_like_tiled_decode() {
        // range(0, 60, 24) with 32-long tiles: the Wan 480-pixel height.
        let s = spans(60, 32, 24);
        assert_eq!(s, [Span { start: 0, len: 32 }, Span { start: 24, len: 32 }, Span { start: 48, len: 12 }]);
        assert_eq!(spans(104, 32, 24).iter().map(|s| s.len).collect::<Vec<_>>(), [32, 32, 32, 32, 8]);
        assert_eq!(spans(8, 8, 8), [Span { start: 0, len: 8 }]);
    }
}
