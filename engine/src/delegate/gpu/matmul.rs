//! Dispatch of the matmul kernels: `matmul.wgsl` (tiled through workgroup
//! memory, for real GPUs) or `matmul_sg8.wgsl` (for adapters with 8-wide
//! subgroups, i.e. CPU rasterisers), chosen per adapter by [`Config::for_device`].

use bytemuck::{Pod, Zeroable};

use super::GpuDevice;
use super::device::{Commands, View, u32_of};
use crate::delegate::{Half, Matmul, Operand};
use crate::error::{Error, Result};

/// The kernel's `Params` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_batch: u32,
    a_row: u32,
    a_col: u32,
    b_batch: u32,
    b_row: u32,
    b_col: u32,
    has_bias: u32,
    activation: u32,
    a_off: u32,
    b_off: u32,
    out_off: u32,
    out_row: u32,
    out_batch: u32,
    bias_off: u32,
    /// Int8 B: the global element index of B's first bound element, and the
    /// length of B's stored rows (one scale per stored row).
    b_elem0: u32,
    b_stride: u32,
    /// Values per scale along a stored row: the row (int8), a group (int4).
    b_group: u32,
}

/// Tile configuration (the kernel's `override` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiles {
    pub wg_m: u32,
    pub wg_n: u32,
    pub bk: u32,
}

impl Tiles {
    /// Register block per thread, fixed in the kernel.
    pub const TM: u32 = 4;
    pub const TN: u32 = 4;

    /// 16 × 16 threads of 4 × 4 outputs, K in steps of 16: 256 invocations and
    /// 8 KiB of workgroup memory, inside WebGPU's default limits.
    pub const DEFAULT: Tiles = Tiles { wg_m: 16, wg_n: 16, bk: 16 };

    /// Threads per workgroup.
    pub fn invocations(&self) -> u32 {
        self.wg_m * self.wg_n
    }

    /// Bytes of workgroup memory: the A and B tiles, `BK × (BM + BN)` f32.
    pub fn workgroup_bytes(&self) -> u32 {
        self.workgroup_bytes_of(Tiles::TM)
    }

    /// The same with `tm` rows per thread (`matmul_blocked.wgsl`'s 8).
    fn workgroup_bytes_of(&self, tm: u32) -> u32 {
        4 * self.bk * (self.wg_m * tm + self.wg_n * Tiles::TN)
    }

    /// Refuses a configuration the device cannot run. (wgpu does not check
    /// workgroup sizes that come from `override` values against the limits.)
    pub fn check(&self, limits: &wgpu::Limits) -> Result<()> {
        self.check_of(limits, Tiles::TM)
    }

    /// [`Tiles::check`] with `tm` rows per thread. The blocked kernel's vec4
    /// tiles also need BK and 8 × `wg_m` (its A tile's rows) whole in vec4s.
    fn check_of(&self, limits: &wgpu::Limits, tm: u32) -> Result<()> {
        let fits = self.wg_m > 0
            && self.wg_n > 0
            && self.bk > 0
            && self.invocations() <= limits.max_compute_invocations_per_workgroup
            && self.wg_n <= limits.max_compute_workgroup_size_x
            && self.wg_m <= limits.max_compute_workgroup_size_y
            && self.workgroup_bytes_of(tm) <= limits.max_compute_workgroup_storage_size;
        if fits {
            Ok(())
        } else {
            Err(Error::Gpu(format!(
                "matmul tiles {self:?} ({} invocations, {} bytes of workgroup memory) exceed the device's limits \
                 ({} invocations, {} bytes)",
                self.invocations(),
                self.workgroup_bytes_of(tm),
                limits.max_compute_invocations_per_workgroup,
                limits.max_compute_workgroup_storage_size
            )))
        }
    }

    fn overrides(&self) -> [(&'static str, f64); 3] {
        [("WG_M", self.wg_m as f64), ("WG_N", self.wg_n as f64), ("BK", self.bk as f64)]
    }
}

/// Which matmul kernel, with which tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// `matmul.wgsl`.
    Tiled(Tiles),
    /// `matmul_blocked.wgsl`: the same threads and BK, each 8 rows × 4 columns.
    Blocked(Tiles),
    /// `matmul_sg8.wgsl` with `wg_rows` subgroups per workgroup (each 16 rows × 64 columns).
    Subgroups8 { wg_rows: u32 },
    /// `matmul_subgroup.wgsl`: `lanes` invocations per workgroup (a multiple
    /// of the adapter's widest subgroup), 16 rows × 8 columns each.
    Subgroups { lanes: u32 },
    /// `matmul_f16.wgsl`: as `Tiled`, in f16 arithmetic (A and B rounded to
    /// f16, f16 sums over each BK slice of k, f32 across slices) — reduced
    /// precision, a tuner candidate only where asked for
    /// ([`super::tune::Precision::F16`]).
    F16(Tiles),
    /// `matmul_direct.wgsl`: `wg_m × wg_n` invocations of 4 rows × 8 columns,
    /// no workgroup memory (conv3d, which has no such kernel, takes
    /// `Tiled(Tiles::DEFAULT)` for it).
    Direct { wg_m: u32, wg_n: u32 },
    /// Split-K, for tall-skinny products (few output tiles, a long k): k cut
    /// into `slices` parts, each summed by `matmul.wgsl` with `tiles` into a
    /// plane of partial sums of its own, which `matmul_split_sum.wgsl` adds up
    /// (then bias and activation). More workgroups at once where the output
    /// alone gives the GPU too few; the partial sums cost `slices` outputs of
    /// memory traffic. Where they would not fit one binding, or k is too short
    /// to cut, it is the tiled kernel.
    SplitK { slices: u32, tiles: Tiles },
}

impl Config {
    /// Rows per thread of `matmul_blocked.wgsl`.
    const BLOCKED_TM: u32 = 8;

    /// The tiles conv3d's GEMM kernel (`conv3d.wgsl`) takes for this
    /// configuration: its own when tiled, else the default (conv3d has no
    /// direct or blocked kernel).
    pub fn conv_tiles(&self) -> Tiles {
        match self {
            Config::Tiled(t) | Config::SplitK { tiles: t, .. } => *t,
            _ => Tiles::DEFAULT,
        }
    }

    /// Whether this configuration rounds to f16 ([`Config::F16`]).
    pub fn reduced_precision(&self) -> bool {
        matches!(self, Config::F16(_))
    }

    /// The configuration the tuning table gives this adapter.
    pub fn for_device(dev: &GpuDevice) -> Config {
        super::tuning::matmul(dev)
    }

    /// The kernel file and its configuration, as `kinema inspect` and
    /// `--profile` name them (e.g. `matmul_sg8.wgsl (8 subgroups per workgroup)`).
    pub fn describe(&self) -> String {
        let file = self.kernel(false, BStore::F32).0.name;
        match *self {
            Config::Tiled(t) => format!("{file}.wgsl ({} × {} threads, BK {})", t.wg_m, t.wg_n, t.bk),
            Config::Blocked(t) => {
                format!("{file}.wgsl ({} × {} threads of 8 × 4, BK {})", t.wg_m, t.wg_n, t.bk)
            }
            Config::Subgroups8 { wg_rows } => format!("{file}.wgsl ({wg_rows} subgroups per workgroup)"),
            Config::Subgroups { lanes } => format!("{file}.wgsl ({lanes} threads, any subgroup width)"),
            Config::F16(t) => format!("{file}.wgsl ({} × {} threads, BK {}, f16 arithmetic)", t.wg_m, t.wg_n, t.bk),
            Config::Direct { wg_m, wg_n } => format!("{file}.wgsl ({wg_m} × {wg_n} threads)"),
            Config::SplitK { slices, tiles: t } => format!(
                "{file}.wgsl ({} × {} threads, BK {}) in {slices} slices of k, summed by {}.wgsl",
                t.wg_m,
                t.wg_n,
                t.bk,
                kinema_shaders::MATMUL_SPLIT_SUM.name
            ),
        }
    }

    /// Output block per workgroup, (rows, columns).
    fn block(&self) -> (u32, u32) {
        match *self {
            Config::Tiled(t) | Config::F16(t) | Config::SplitK { tiles: t, .. } => {
                (t.wg_m * Tiles::TM, t.wg_n * Tiles::TN)
            }
            Config::Blocked(t) => (t.wg_m * Config::BLOCKED_TM, t.wg_n * Tiles::TN),
            Config::Subgroups8 { wg_rows } => (16 * wg_rows, 64),
            Config::Subgroups { lanes } => (16, 8 * lanes),
            Config::Direct { wg_m, wg_n } => (4 * wg_m, 8 * wg_n),
        }
    }

    fn check(&self, dev: &GpuDevice) -> Result<()> {
        self.check_limits(&dev.device.limits())
    }

    /// Refuses a configuration a device of these limits cannot run.
    pub fn check_limits(&self, limits: &wgpu::Limits) -> Result<()> {
        let fits = match *self {
            // (The f16 tiles take half the bytes: checked as f32, to be safe.)
            Config::Tiled(t) | Config::F16(t) => return t.check(limits),
            Config::SplitK { slices, tiles } if slices > 0 => return tiles.check(limits),
            Config::SplitK { .. } => false,
            Config::Blocked(t) => return t.check_of(limits, Config::BLOCKED_TM),
            Config::Subgroups8 { wg_rows } => {
                wg_rows > 0 && 8 * wg_rows <= limits.max_compute_invocations_per_workgroup
            }
            Config::Subgroups { lanes } => {
                lanes > 0
                    && lanes <= limits.max_compute_invocations_per_workgroup
                    && lanes <= limits.max_compute_workgroup_size_x
            }
            Config::Direct { wg_m, wg_n } => {
                wg_m > 0
                    && wg_n > 0
                    && wg_m * wg_n <= limits.max_compute_invocations_per_workgroup
                    && wg_n <= limits.max_compute_workgroup_size_x
                    && wg_m <= limits.max_compute_workgroup_size_y
            }
        };
        if fits { Ok(()) } else { Err(Error::Gpu(format!("matmul {self:?} exceeds the device's limits"))) }
    }

    /// The kernel and its `override` values (B as stored, `b`; vec4
    /// loads of A and B when `contiguous`, see [`contiguous`]).
    fn kernel(&self, contiguous: bool, b: BStore) -> (&'static kinema_shaders::Kernel, Vec<(&'static str, f64)>) {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let half = ("B_HALF", b.code() as f64);
        match *self {
            Config::Tiled(t) | Config::SplitK { tiles: t, .. } => {
                let mut overrides = t.overrides().to_vec();
                overrides.push(half);
                (&kinema_shaders::MATMUL, overrides)
            }
            Config::Blocked(t) => {
                let mut overrides = t.overrides().to_vec();
                overrides.push(half);
                (&kinema_shaders::MATMUL_BLOCKED, overrides)
            }
            Config::F16(t) => {
                let mut overrides = t.overrides().to_vec();
                overrides.push(half);
                (&kinema_shaders::MATMUL_F16, overrides)
            }
            Config::Subgroups8 { wg_rows } => {
                let overrides = vec![("WG_ROWS", wg_rows as f64), ("CONTIGUOUS", flag(contiguous)), half];
                (&kinema_shaders::MATMUL_SG8, overrides)
            }
            Config::Subgroups { lanes } => {
                let overrides = vec![("LANES", lanes as f64), ("CONTIGUOUS", flag(contiguous)), half];
                (&kinema_shaders::MATMUL_SUBGROUP, overrides)
            }
            Config::Direct { wg_m, wg_n } => {
                let overrides = vec![("WG_M", wg_m as f64), ("WG_N", wg_n as f64), half];
                (&kinema_shaders::MATMUL_DIRECT, overrides)
            }
        }
    }
}

/// How a matmul's B is stored on the device.
#[derive(Debug, Clone, Copy)]
pub enum BStore<'a> {
    F32,
    /// f16 or bf16, two per 32-bit word.
    Half(Half),
    /// Weight-only int8, four per word, and one scale per stored row of B.
    Int8 {
        scales: View<'a>,
    },
    /// Weight-only int4, eight per word, and one scale per `group` values of
    /// each stored row (`group` a multiple of 8).
    Int4 {
        scales: View<'a>,
        group: usize,
    },
}

impl BStore<'_> {
    /// The kernels' `B_HALF` code.
    fn code(&self) -> u32 {
        match self {
            BStore::F32 => 0,
            BStore::Half(h) => h.code(),
            BStore::Int8 { .. } => 3,
            BStore::Int4 { .. } => 4,
        }
    }

    /// Elements per 32-bit word.
    fn per_word(&self) -> usize {
        match self {
            BStore::F32 => 1,
            BStore::Half(_) => 2,
            BStore::Int8 { .. } => 4,
            BStore::Int4 { .. } => 8,
        }
    }
}

/// `out = act(op(A) · op(B) + bias)` on the GPU, B in f32, f16, bf16 or int8; see [`Matmul`].
/// By the tuned configuration of its shape class ([`super::tuning::matmul_for`]).
pub async fn matmul<'b>(
    dev: &GpuDevice,
    spec: &Matmul,
    a: &[f32],
    b: impl Into<Operand<'b>>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    matmul_with(dev, super::tuning::matmul_for(dev, spec), spec, a, b, bias).await
}

/// [`matmul`] with a given kernel configuration: uploads the operands,
/// records the product (in windows when over one binding), reads it back.
pub async fn matmul_with<'b>(
    dev: &GpuDevice,
    config: Config,
    spec: &Matmul,
    a: &[f32],
    b: impl Into<Operand<'b>>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let b = b.into();
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    let a_buf = dev.upload("matmul.a", a);
    let b_buf = dev.upload_bytes("matmul.b", b.bytes());
    let bias_buf = dev.upload("matmul.bias", bias.unwrap_or(&[]));
    let scales: &[f32] = match b {
        Operand::Int8 { scales, .. } | Operand::Int4 { scales, .. } => scales,
        _ => &[],
    };
    let scales_buf = dev.upload("matmul.scales", scales);
    let out = dev.output("matmul.out", len);
    let mut commands = dev.commands();
    let store = match b {
        Operand::F32(_) => BStore::F32,
        Operand::Half(h, _) => BStore::Half(h),
        Operand::Int8 { .. } => BStore::Int8 { scales: View::whole(&scales_buf, scales.len()) },
        Operand::Int4 { group, .. } => BStore::Int4 { scales: View::whole(&scales_buf, scales.len()), group },
    };
    let b_view = View::whole(&b_buf, b.len().div_ceil(store.per_word()));
    let bias_view = bias.map(|x| View::whole(&bias_buf, x.len()));
    encode_matmul(
        dev,
        &mut commands,
        config,
        spec,
        View::whole(&a_buf, a.len()),
        (b_view, store),
        bias_view,
        View::whole(&out, len),
    )
    .await?;
    commands.submit();
    let result = dev.read(&out, len).await;
    dev.recycle([a_buf, b_buf, bias_buf, scales_buf, out]);
    result
}

/// Whether rows of A and B run along k and n contiguously from 16-byte
/// boundaries (offsets `a_off`, `b_off` in elements), so the subgroup kernel
/// loads them four at a time.
fn contiguous(spec: &Matmul, a_off: usize, b_off: usize) -> bool {
    let (ab, ar, ac) = spec.a_strides();
    let (bb, br, bc) = spec.b_strides();
    ac == 1 && bc == 1 && [ab, ar, bb, br, a_off, b_off].iter().all(|s| s % 4 == 0)
}

/// One dispatch's share of a matmul: `(first, count)` of batches, of rows of
/// A and out, and of columns of B and out.
#[derive(Clone, Copy, Debug)]
struct Window {
    batches: (usize, usize),
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Window {
    /// `(start, len)` in elements of what the window reads of A and B and
    /// writes of out (every element it touches lies in between).
    fn spans(&self, spec: &Matmul) -> [(usize, usize); 3] {
        let ((b0, nb), (m0, nm), (n0, nn)) = (self.batches, self.rows, self.cols);
        let (ab, ar, ac) = spec.a_strides();
        let (bb, br, bc) = spec.b_strides();
        let k = spec.k;
        let span = |start: usize, reach: usize, empty: bool| (start, if empty { 0 } else { reach + 1 });
        [
            span(b0 * ab + m0 * ar, (nb - 1) * ab + (nm - 1) * ar + k.saturating_sub(1) * ac, k == 0),
            span(b0 * bb + n0 * bc, (nb - 1) * bb + k.saturating_sub(1) * br + (nn - 1) * bc, k == 0),
            span(
                b0 * spec.m * spec.n + m0 * spec.n + n0,
                (nb - 1) * spec.m * spec.n + (nm - 1) * spec.n + nn - 1,
                false,
            ),
        ]
    }

    /// How far each axis (batches, rows, columns) spreads operand `i`'s span.
    fn reach(&self, spec: &Matmul, i: usize) -> [usize; 3] {
        let (ab, ar, _) = spec.a_strides();
        let (bb, _, bc) = spec.b_strides();
        let (nb, nm, nn) = (self.batches.1 - 1, self.rows.1 - 1, self.cols.1 - 1);
        match i {
            0 => [nb * ab, nm * ar, 0],
            1 => [nb * bb, 0, nn * bc],
            _ => [nb * spec.m * spec.n, nm * spec.n, nn],
        }
    }

    /// The two halves along `axis` (columns at a multiple of 4, so the
    /// subgroup kernel's vec4 columns stay whole: 4 and the rest for 5 to 7);
    /// `None` when too short.
    fn split(&self, axis: usize) -> Option<(Window, Window)> {
        let (first, count) = [self.batches, self.rows, self.cols][axis];
        let h = if axis == 2 { (count / 2 / 4 * 4).max(if count > 4 { 4 } else { 0 }) } else { count / 2 };
        if h == 0 {
            return None;
        }
        let (mut x, mut y) = (*self, *self);
        let set = |w: &mut Window, v: (usize, usize)| match axis {
            0 => w.batches = v,
            1 => w.rows = v,
            _ => w.cols = v,
        };
        set(&mut x, (first, h));
        set(&mut y, (first + h, count - h));
        Some((x, y))
    }
}

/// Records `out = act(op(A) · op(B) + bias)` over device views; B is stored
/// as `store` says (int8 only as a 2-d B). Operands over one storage binding are split
/// into windows — along whichever of batches, rows and columns spreads the
/// offending operand most, columns at multiples of 4 — until each window's
/// spans fit, each bound from an aligned start; a single row over a binding
/// is an error.
#[allow(clippy::too_many_arguments)]
pub async fn encode_matmul<'a>(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    config: Config,
    spec: &Matmul,
    a: View<'a>,
    b: (View<'a>, BStore<'a>),
    bias: Option<View<'a>>,
    out: View<'a>,
) -> Result<()> {
    encode_matmul_at(dev, cmds, config, spec, a, b, bias, out, [0; 3]).await
}

/// [`encode_matmul`] of operands that start `at` elements (A, B, out) into
/// their views — views that start on the binding-offset alignment, as
/// buffers and arena slots do, holding operands that need not (a block of
/// rows of one head, say).
#[allow(clippy::too_many_arguments)]
pub async fn encode_matmul_at<'a>(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    config: Config,
    spec: &Matmul,
    a: View<'a>,
    (b, store): (View<'a>, BStore<'a>),
    bias: Option<View<'a>>,
    out: View<'a>,
    at: [usize; 3],
) -> Result<()> {
    if let Config::SplitK { slices, tiles } = config {
        return encode_split_k(dev, cmds, slices, tiles, spec, a, (b, store), bias, out, at).await;
    }
    encode_part(dev, cmds, config, spec, a, (b, store), bias, out, at, Part::whole(spec)).await
}

/// Which share of k the dispatches of [`encode_part`] sum, and whether they
/// finish the product (bias, activation) or leave a partial sum.
#[derive(Clone, Copy)]
struct Part {
    k0: usize,
    len: usize,
    finish: bool,
}

impl Part {
    fn whole(spec: &Matmul) -> Part {
        Part { k0: 0, len: spec.k, finish: true }
    }
}

/// [`encode_matmul_at`] of k's `part` (its operands bound as for the whole k).
#[allow(clippy::too_many_arguments)]
async fn encode_part<'a>(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    config: Config,
    spec: &Matmul,
    a: View<'a>,
    (b, store): (View<'a>, BStore<'a>),
    bias: Option<View<'a>>,
    out: View<'a>,
    at: [usize; 3],
    part: Part,
) -> Result<()> {
    let len = spec.check(spec.batch * spec.m * spec.k, spec.batch * spec.k * spec.n, None)?;
    config.check(dev)?;
    if len == 0 {
        return Ok(());
    }
    // Whole vec4s per binding; starts on the offset alignment.
    let max = dev.binding_floats();
    let align = dev.binding_align();
    // Elements → 32-bit words of each operand (a 16-bit B holds two per word, int8 four).
    let per_word = store.per_word();
    let row_len = if spec.trans_b { spec.k } else { spec.n };
    // Values per scale along a stored row of B.
    let group = match store {
        BStore::Int4 { group, .. } => group,
        _ => row_len.max(1),
    };
    if let BStore::Int8 { scales } | BStore::Int4 { scales, .. } = store {
        let rows = if spec.trans_b { spec.n } else { spec.k };
        let per_row = row_len.div_ceil(group.max(1));
        let bad_group = matches!(store, BStore::Int4 { .. }) && (group == 0 || group % 8 != 0 || row_len % 2 != 0);
        if spec.batch != 1 || scales.len != rows * per_row || bad_group {
            return Err(Error::Invalid(format!(
                "matmul {spec:?}: a quantized B is one matrix (int4: rows of even length, groups of a multiple of 8 \
                 values) with a scale per stored row or group ({} scales for {rows} rows of {per_row})",
                scales.len
            )));
        }
    }
    let words = |i: usize, (start, len): (usize, usize)| -> (usize, usize) {
        if i == 1 && len > 0 {
            (start / per_word, (start + len - 1) / per_word - start / per_word + 1)
        } else {
            (start, len)
        }
    };
    let (kernel_rows, kernel_cols) = config.block();
    let mut pending = vec![Window { batches: (0, spec.batch), rows: (0, spec.m), cols: (0, spec.n) }];
    while let Some(w) = pending.pop() {
        let mut spans = w.spans(spec);
        for (span, at) in spans.iter_mut().zip(at) {
            span.0 += at;
        }
        // The first operand whose span, bound from an aligned start, is over one binding.
        let over = (0..3).find(|&i| {
            let (start, len) = words(i, spans[i]);
            start % align + len > max
        });
        if let Some(i) = over {
            let reach = w.reach(spec, i);
            let halves = (0..3).filter(|&d| reach[d] > 0).max_by_key(|&d| reach[d]).and_then(|d| w.split(d));
            let Some((x, y)) = halves else {
                return Err(Error::Gpu(format!(
                    "matmul {spec:?}: a window of {} as small as it can be ({} values, bound from an aligned \
                     start {} values before it) exceeds the device's storage binding limit",
                    ["A", "B", "out"][i],
                    spans[i].1,
                    words(i, spans[i]).0 % align
                )));
            };
            pending.push(x);
            pending.push(y);
            continue;
        }
        let bind = |v: View<'a>, i: usize| {
            let (start, len) = words(i, spans[i]);
            let from = start / align * align;
            let elements_before = if i == 1 { per_word * from } else { from };
            (v.slice(from, start - from + len), spans[i].0 - elements_before)
        };
        let ((av, a_off), (bv, b_off), (ov, out_off)) = (bind(a, 0), bind(b, 1), bind(out, 2));
        let (ab, ar, ac) = spec.a_strides();
        let (bb, br, bc) = spec.b_strides();
        // The part's first column of A and row of B.
        let (a_off, b_off) = (a_off + part.k0 * ac, b_off + part.k0 * br);
        let bias = bias.filter(|_| part.finish);
        let bias_view = bias.map(|v| {
            let from = w.cols.0 / align * align;
            (v.slice(from, w.cols.0 - from + w.cols.1), w.cols.0 - from)
        });
        let params = Params {
            m: u32_of("m", w.rows.1)?,
            n: u32_of("n", w.cols.1)?,
            k: u32_of("k", part.len)?,
            batch: u32_of("batch", w.batches.1)?,
            a_batch: u32_of("A stride", ab)?,
            a_row: u32_of("A stride", ar)?,
            a_col: u32_of("A stride", ac)?,
            b_batch: u32_of("B stride", bb)?,
            b_row: u32_of("B stride", br)?,
            b_col: u32_of("B stride", bc)?,
            has_bias: bias.is_some() as u32,
            activation: if part.finish { spec.activation.code() } else { 0 },
            a_off: u32_of("A offset", a_off)?,
            b_off: u32_of("B offset", b_off)?,
            out_off: u32_of("out offset", out_off)?,
            out_row: u32_of("n", spec.n)?,
            out_batch: u32_of("out stride", spec.m * spec.n)?,
            bias_off: bias_view.map_or(0, |(_, o)| o as u32),
            b_elem0: u32_of("B offset", (words(1, spans[1]).0 / align * align) * per_word)?,
            b_stride: u32_of("B row", row_len)?,
            b_group: u32_of("B group", group)?,
        };
        // Every index the kernel computes within a window must fit in u32.
        for (what, v) in [("A", av.len), ("B", bv.len), ("out", ov.len)] {
            u32_of(&format!("matmul {spec:?}: {what}"), v * if what == "B" { per_word } else { 1 })?;
        }
        let groups = dev.check_groups(
            &format!("matmul {spec:?}"),
            [w.cols.1.div_ceil(kernel_cols as usize), w.rows.1.div_ceil(kernel_rows as usize), w.batches.1],
        )?;
        let (kernel, overrides) = config.kernel(contiguous(spec, a_off, b_off), store);
        let pipeline = dev.pipeline(kernel, &overrides).await?;
        // Without a bias, A stands in for it (never read).
        let bias_v = bias_view.map_or(av, |(v, _)| v);
        // Without int8 scales, A stands in for them (never read).
        let scales_v = match store {
            BStore::Int8 { scales } | BStore::Int4 { scales, .. } => scales,
            _ => av,
        };
        cmds.dispatch_views(&pipeline, &[av, bv, bias_v, ov, scales_v], &params, groups);
    }
    Ok(())
}

/// The sum kernel's `Params` uniform.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumParams {
    len: u32,
    parts: u32,
    n: u32,
    has_bias: u32,
    activation: u32,
    out_off: u32,
    pad: [u32; 2],
}

/// [`Config::SplitK`]: each of up to `slices` parts of k summed by the tiled
/// kernel into its plane of a temporary, then the planes added up, with bias
/// and activation, into `out`.
#[allow(clippy::too_many_arguments)]
async fn encode_split_k<'a>(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    slices: u32,
    tiles: Tiles,
    spec: &Matmul,
    a: View<'a>,
    b: (View<'a>, BStore<'a>),
    bias: Option<View<'a>>,
    out: View<'a>,
    at: [usize; 3],
) -> Result<()> {
    let config = Config::SplitK { slices, tiles };
    config.check(dev)?;
    let inner = Config::Tiled(tiles);
    let len = spec.batch * spec.m * spec.n;
    // Parts of whole BK steps of k.
    let step = (spec.k.div_ceil(slices as usize)).next_multiple_of(tiles.bk as usize).max(1);
    let parts = spec.k.div_ceil(step);
    let max = dev.binding_floats();
    let align = dev.binding_align();
    let out_from = at[2] / align * align;
    let too_large = parts.checked_mul(len).is_none_or(|l| l > max) || at[2] - out_from + len > max;
    if parts <= 1 || len == 0 || too_large {
        return encode_part(dev, cmds, inner, spec, a, b, bias, out, at, Part::whole(spec)).await;
    }
    let temp = cmds.temporary("matmul.partials", parts * len);
    let planes = View::whole(&temp, parts * len);
    for p in 0..parts {
        let k0 = p * step;
        let part = Part { k0, len: step.min(spec.k - k0), finish: false };
        encode_part(dev, cmds, inner, spec, a, b, None, planes, [at[0], at[1], p * len], part).await?;
    }
    let params = SumParams {
        len: u32_of("matmul output", len)?,
        parts: u32_of("split-k parts", parts)?,
        n: u32_of("n", spec.n)?,
        has_bias: bias.is_some() as u32,
        activation: spec.activation.code(),
        out_off: u32_of("out offset", at[2] - out_from)?,
        pad: [0; 2],
    };
    let out_view = out.slice(out_from, at[2] - out_from + len);
    let pipeline = dev.pipeline(&kinema_shaders::MATMUL_SPLIT_SUM, &[]).await?;
    let groups = dev.grid(&format!("matmul {spec:?} (sum of parts)"), len, 256)?;
    // Without a bias, the planes stand in for it (never read).
    cmds.dispatch_views(&pipeline, &[planes, bias.unwrap_or(planes), out_view], &params, groups);
    Ok(())
}
