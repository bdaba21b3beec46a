//! Choosing an adapter, opening a device, and what every dispatch shares:
//! the pipeline cache, buffer upload and readback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};

/// An open GPU device with its queue and compiled pipelines.
pub struct GpuDevice {
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
    pool: Mutex<Pool>,
    /// The first error no error scope caught (wgpu would panic on it by
    /// default), or the device's loss: handed out by [`check`](Self::check).
    fault: Arc<Mutex<Option<String>>>,
    /// Set when the device is lost (destroyed, a driver reset): for good.
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// Bytes of the [`Tracked`] buffers alive (sessions' weights and arenas).
    live: Arc<std::sync::atomic::AtomicU64>,
    /// The tuning table ([`super::tune`]), read on first use.
    tuning: Mutex<Option<Arc<super::tune::Table>>>,
    /// Time this process has spent tuning at first use.
    tuning_spent: Mutex<std::time::Duration>,
    /// The arithmetic the tuner may choose ([`super::tune::Precision`]).
    precision: super::tune::Precision,
}

/// A device buffer counted in its device's [`live_bytes`](GpuDevice::live_bytes)
/// until dropped (which frees it).
pub struct Tracked {
    pub buffer: wgpu::Buffer,
    live: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(self.buffer.size(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Buffers kept for reuse, by (size, usage): repeated work of the same shapes
/// (a denoising loop) allocates once. Bounded by [`POOL_BYTES`].
#[derive(Default)]
struct Pool {
    free: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    bytes: u64,
}

/// The most bytes the pool keeps.
const POOL_BYTES: u64 = 256 << 20;

const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);
const STAGING: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

impl GpuDevice {
    /// Opens the default adapter (`WGPU_BACKEND` and `WGPU_ADAPTER_NAME` are
    /// honoured) with its own limits, and `SHADER_F16`, `SUBGROUP` and
    /// `TIMESTAMP_QUERY` when it has them (every kernel has a path without them).
    pub async fn new() -> Result<GpuDevice> {
        GpuDevice::with_limits(None).await
    }

    /// Opens the default adapter with the given limits (`None`: the adapter's own).
    pub async fn with_limits(limits: Option<wgpu::Limits>) -> Result<GpuDevice> {
        let precision = super::tune::Precision::from_env()?;
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter: {e}")))?;
        let mut info = adapter.get_info();
        if info.name.is_empty() {
            // Browsers hide the adapter's name; say what they do tell.
            let what: Vec<&str> =
                [info.driver.as_str(), info.driver_info.as_str()].into_iter().filter(|s| !s.is_empty()).collect();
            info.name = format!(
                "{:?} adapter{}",
                info.device_type,
                if what.is_empty() { String::new() } else { format!(" ({})", what.join(", ")) }
            );
        }
        let features = adapter.features()
            & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("kinema"),
                required_features: features,
                required_limits: limits.unwrap_or_else(|| adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("{}: cannot open the device: {e}", info.name)))?;
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        let record = |fault: &Arc<Mutex<Option<String>>>| {
            let fault = fault.clone();
            move |message: String| {
                let mut f = fault.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert(message);
            }
        };
        let on_error = record(&fault);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| on_error(e.to_string())));
        let on_lost = record(&fault);
        let lost: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            on_lost(format!("the GPU device was lost ({reason:?}): {message}"))
        });
        Ok(GpuDevice {
            info,
            device,
            queue,
            pipelines: Mutex::new(HashMap::new()),
            pool: Mutex::default(),
            fault,
            lost,
            live: Arc::default(),
            tuning: Mutex::default(),
            tuning_spent: Mutex::default(),
            precision,
        })
    }

    /// `buffer`, counted in [`live_bytes`](Self::live_bytes) while the result lives.
    pub fn track(&self, buffer: wgpu::Buffer) -> Tracked {
        self.live.fetch_add(buffer.size(), std::sync::atomic::Ordering::Relaxed);
        Tracked { buffer, live: self.live.clone() }
    }

    /// Bytes of the tracked buffers alive: what sessions hold on this device.
    pub fn live_bytes(&self) -> u64 {
        self.live.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the device was lost: nothing runs on it any more (open another).
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The first GPU error no scope caught, or the device's loss, since the
    /// last check, as an [`Error`] (the device is unusable after a loss).
    pub fn check(&self) -> Result<()> {
        match self.fault.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(message) => Err(Error::Gpu(message)),
            None => Ok(()),
        }
    }

    /// Runs `f` (buffer creation, say) inside out-of-memory and validation error
    /// scopes: a failed allocation is an [`Error`] naming `what`, not a panic.
    pub async fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let invalid = validation.pop().await;
        let oom = memory.pop().await;
        match invalid.or(oom) {
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
            None => Ok(value),
        }
    }

    /// The compute pipeline of `kernel` with `overrides`, compiled once and cached.
    pub async fn pipeline(
        &self,
        kernel: &kinema_shaders::Kernel,
        overrides: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        if !self.supports(kernel.needs) {
            return Err(Error::Gpu(format!("{}: {} lacks {:?}", kernel.name, self.info.name, kernel.needs)));
        }
        let key = format!("{}{overrides:?}", kernel.name);
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name),
            source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name),
            layout: None,
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: overrides, ..Default::default() },
            cache: None,
        });
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("{}: {e}", kernel.name)));
        }
        self.pipelines.lock().expect("pipeline cache").insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// The tuning table this process uses: the saved one for this adapter
    /// (read once), or none with `KINEMA_TUNE=off`.
    pub fn tuning(&self) -> Arc<super::tune::Table> {
        let mut held = self.tuning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.get_or_insert_with(|| {
            let mode = super::tune::Mode::from_env().unwrap_or_else(|e| {
                eprintln!("kinema: {e}; using the saved tuning table");
                super::tune::Mode::Cached
            });
            Arc::new(match mode {
                super::tune::Mode::Off => super::tune::Table::default(),
                super::tune::Mode::Cached | super::tune::Mode::Full => super::tune::load(self),
            })
        })
        .clone()
    }

    /// Time spent tuning at first use so far ([`super::tune::at_first_use`]).
    pub fn tuning_spent(&self) -> std::time::Duration {
        *self.tuning_spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add_tuning_spent(&self, d: std::time::Duration) {
        *self.tuning_spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += d;
    }

    /// Replaces this process's tuning table (`kinema tune`, tests).
    pub fn set_tuning(&self, table: super::tune::Table) {
        *self.tuning.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(table));
    }

    /// The arithmetic the tuner may choose here (`KINEMA_PRECISION`).
    pub fn precision(&self) -> super::tune::Precision {
        self.precision
    }

    /// This device with the tuner choosing `precision` (its table read anew).
    pub fn with_precision(self, precision: super::tune::Precision) -> GpuDevice {
        GpuDevice { precision, tuning: Mutex::default(), ..self }
    }

    /// Whether kernels needing `needs` can run here.
    pub fn supports(&self, needs: kinema_shaders::Needs) -> bool {
        match needs {
            kinema_shaders::Needs::Nothing => true,
            kinema_shaders::Needs::Subgroups8 => {
                self.device.features().contains(wgpu::Features::SUBGROUP)
                    && self.info.subgroup_min_size == 8
                    && self.info.subgroup_max_size == 8
            }
            // The kernels' registers hold A for widths from 4 (`matmul_subgroup.wgsl`).
            kinema_shaders::Needs::Subgroups => {
                self.device.features().contains(wgpu::Features::SUBGROUP)
                    && self.info.subgroup_min_size >= 4
                    && self.info.subgroup_max_size <= 128
            }
            kinema_shaders::Needs::F16 => self.device.features().contains(wgpu::Features::SHADER_F16),
        }
    }

    /// A uniform buffer holding `params`.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    /// Refuses a dispatch over the device's workgroup-count limit.
    pub fn check_groups(&self, what: &str, groups: [usize; 3]) -> Result<[u32; 3]> {
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Gpu(format!("{what}: needs {groups:?} workgroups, over the limit of {max}")));
        }
        Ok(groups.map(|g| g as u32))
    }

    /// A grid for `items` work items, `per_group` per workgroup, over x then y
    /// (kernels flatten it as `id.y · groups.x · per_group + id.x`).
    pub fn grid(&self, what: &str, items: usize, per_group: usize) -> Result<[u32; 3]> {
        let groups = items.div_ceil(per_group.max(1)).max(1);
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        self.check_groups(what, [x, groups.div_ceil(x), 1])
    }

    /// Runs `kernel` once: `inputs` bound at 0, 1, …, then a fresh output of
    /// `out_len` f32, then `params`; returns the output.
    pub async fn run<P: bytemuck::Pod>(
        &self,
        kernel: &kinema_shaders::Kernel,
        overrides: &[(&str, f64)],
        inputs: &[&[f32]],
        out_len: usize,
        params: &P,
        groups: [u32; 3],
    ) -> Result<Vec<f32>> {
        for (i, x) in inputs.iter().enumerate() {
            self.check_binding(&format!("{} input {i}", kernel.name), x.len() * 4)?;
        }
        self.check_binding(&format!("{} output", kernel.name), out_len * 4)?;
        if out_len == 0 {
            return Ok(Vec::new());
        }
        let pipeline = self.pipeline(kernel, overrides).await?;
        let buffers: Vec<wgpu::Buffer> = inputs.iter().map(|x| self.upload(kernel.name, x)).collect();
        let out = self.output(kernel.name, out_len);
        let mut views: Vec<View> = buffers.iter().zip(inputs).map(|(b, x)| View::whole(b, x.len())).collect();
        views.push(View::whole(&out, out_len));
        let mut commands = self.commands();
        commands.dispatch_views(&pipeline, &views, params, groups);
        commands.submit();
        let result = self.read(&out, out_len).await;
        self.recycle(buffers.into_iter().chain([out]));
        result
    }

    /// Refuses a buffer of `bytes` over the storage-binding limit.
    pub fn check_binding(&self, what: &str, bytes: usize) -> Result<()> {
        let max = self.device.limits().max_storage_buffer_binding_size as usize;
        if bytes > max {
            return Err(Error::Gpu(format!(
                "{what}: {bytes} bytes exceed the device's {max}-byte storage binding limit"
            )));
        }
        Ok(())
    }

    /// The f32 values one storage binding holds: whole vec4s, as bindings
    /// are rounded up to them.
    pub fn binding_floats(&self) -> usize {
        (self.device.limits().max_storage_buffer_binding_size as usize / 16) * 4
    }

    /// The f32 values a binding's start is a multiple of: the binding-offset
    /// alignment, at least a vec4.
    pub fn binding_align(&self) -> usize {
        (self.device.limits().min_storage_buffer_offset_alignment as usize / 4).max(4)
    }

    /// Splits `rows` rows into windows `(first row, rows)` that each fit one
    /// storage binding and begin on the binding-offset alignment (for views
    /// that begin on it, as buffers and arena slots do). A row is `row_lens[i]`
    /// floats in the i-th operand (0: an operand not windowed); window starts
    /// are also multiples of `multiple`. One window when everything fits.
    pub fn row_windows(
        &self,
        what: &str,
        rows: usize,
        row_lens: &[usize],
        multiple: usize,
    ) -> Result<Vec<(usize, usize)>> {
        let limits = self.device.limits();
        let max = self.binding_floats();
        if row_lens.iter().all(|&n| rows.saturating_mul(n) <= max) {
            return Ok(vec![(0, rows)]);
        }
        let align = (limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        let gcd = |mut a: usize, mut b: usize| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let lcm = |a: usize, b: usize| a / gcd(a, b) * b;
        let mut step = multiple.max(1);
        let mut fit = usize::MAX;
        for &n in row_lens.iter().filter(|&&n| n > 0) {
            step = lcm(step, align / gcd(n % align, align).max(1));
            fit = fit.min(max / n);
        }
        let per = fit / step * step;
        if per == 0 {
            return Err(Error::Gpu(format!(
                "{what}: {step} row(s) of {row_lens:?} floats exceed the device's storage binding limit"
            )));
        }
        Ok((0..rows).step_by(per).map(|r0| (r0, per.min(rows - r0))).collect())
    }

    /// Starts recording dispatches to submit together.
    pub fn commands(&self) -> Commands<'_> {
        Commands {
            dev: self,
            encoder: self.device.create_command_encoder(&Default::default()),
            keep: Vec::new(),
            temporaries: Vec::new(),
            timer: None,
        }
    }

    /// A storage buffer holding `data`, padded with zeros to a multiple of 16
    /// bytes (kernels may read it as `vec4`; empty bindings are invalid).
    pub fn upload(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.upload_bytes(label, bytemuck::cast_slice(data))
    }

    /// A storage buffer for `len` f32 values, to be filled with
    /// `queue.write_buffer` (in windows: see `Checkpoint::read_f32_windows`);
    /// the padding past `len` is zeroed here.
    pub fn storage(&self, label: &str, len: usize) -> wgpu::Buffer {
        let bytes = len * 4;
        let buffer = self.take(label, (bytes.max(1).div_ceil(16) * 16) as u64, STORAGE);
        let pad = buffer.size() as usize - bytes;
        if pad > 0 {
            self.queue.write_buffer(&buffer, bytes as u64, &[0u8; 16][..pad]);
        }
        buffer
    }

    /// [`upload`](Self::upload) for raw bytes (f16 data, packed words).
    pub fn upload_bytes(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let buffer = self.take(label, (data.len().max(1).div_ceil(16) * 16) as u64, STORAGE);
        // Whole words, then the tail and the padding as zeros.
        let whole = data.len() / 16 * 16;
        self.queue.write_buffer(&buffer, 0, &data[..whole]);
        if whole < buffer.size() as usize {
            let mut tail = [0u8; 16];
            tail[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.queue.write_buffer(&buffer, whole as u64, &tail);
        }
        buffer
    }

    /// A storage buffer of `len` f32 (padded as [`upload`](Self::upload) pads), for a kernel to write.
    pub fn output(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.take(label, padded(len), STORAGE)
    }

    /// A buffer from the pool, or a new one.
    fn take(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let mut pool = self.pool.lock().expect("buffer pool");
        if let Some(buffer) = pool.free.get_mut(&(size, usage.bits())).and_then(Vec::pop) {
            pool.bytes -= size;
            return buffer;
        }
        drop(pool);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Gives buffers back for reuse (those the pool has no room for are freed).
    pub fn recycle(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        let mut pool = self.pool.lock().expect("buffer pool");
        for buffer in buffers {
            if pool.bytes + buffer.size() <= POOL_BYTES {
                pool.bytes += buffer.size();
                pool.free.entry((buffer.size(), buffer.usage().bits())).or_default().push(buffer);
            }
        }
    }

    /// Frees every buffer the pool keeps (a page that disposed its
    /// pipelines gives the memory back).
    pub fn release_pool(&self) {
        let mut pool = self.pool.lock().expect("buffer pool");
        for buffer in pool.free.drain().flat_map(|(_, b)| b) {
            buffer.destroy();
        }
        pool.bytes = 0;
    }

    /// Bytes held by the pool now.
    pub fn pooled_bytes(&self) -> u64 {
        self.pool.lock().expect("buffer pool").bytes
    }

    /// Reads `len` f32 back from `buffer` (works natively and in the browser).
    pub async fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        self.read_view(View::whole(buffer, len)).await
    }

    /// Reads a view back.
    pub async fn read_view(&self, view: View<'_>) -> Result<Vec<f32>> {
        let (buffer, len) = (view.buffer, view.len);
        if len == 0 {
            return Ok(Vec::new());
        }
        let size = (len * 4) as u64;
        let staging = self.take("readback", padded(len), STAGING);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, view.offset, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let data = self.map_read(&staging, size as usize).await;
        self.recycle([staging]);
        // Whatever went wrong in the work this read waited for comes out here
        // (a lost device's reads fail: its loss, once reported, is the error).
        if data.is_err() && !self.is_lost() {
            crate::clock::yield_now().await;
        }
        self.check()?;
        Ok(bytemuck::pod_collect_to_vec(&data?))
    }

    /// The first `size` bytes of a staging buffer whose copy is submitted.
    async fn map_read(&self, staging: &wgpu::Buffer, size: usize) -> Result<Vec<u8>> {
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Natively this drives the map to completion; in the browser it is a no-op.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        rx.await
            .map_err(|_| Error::Gpu("readback cancelled (device lost?)".into()))?
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))?;
        let data = staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("readback failed: {e}")))?
            [..size]
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// The optional features Kinema uses that this device has, by their
    /// WebGPU names: `shader-f16`, `subgroups`, `timestamp-query`.
    pub fn optional_features(&self) -> Vec<&'static str> {
        let have = self.device.features();
        [
            (wgpu::Features::SHADER_F16, "shader-f16"),
            (wgpu::Features::SUBGROUP, "subgroups"),
            (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        ]
        .into_iter()
        .filter(|(f, _)| have.contains(*f))
        .map(|(_, name)| name)
        .collect()
    }

    /// Whether the device writes GPU timestamps ([`timed_commands`](Self::timed_commands)).
    pub fn has_timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Like [`commands`](Self::commands), but each of the first `passes`
    /// dispatches writes a GPU timestamp as it begins and ends, and
    /// [`Commands::submit_timed`] reports the time they took on the GPU;
    /// `None` where the device has no `TIMESTAMP_QUERY`.
    pub fn timed_commands(&self, passes: u32) -> Option<Commands<'_>> {
        if !self.has_timestamps() || passes == 0 {
            return None;
        }
        let count = (2 * passes).min(wgpu::QUERY_SET_MAX_QUERIES);
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let mut commands = self.commands();
        commands.timer = Some(Timer { set, capacity: count / 2, passes: 0 });
        Some(commands)
    }
}

/// `v` as a kernel index, refused when it does not fit in 32 bits.
pub(crate) fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Invalid(format!("{what}: {v} does not fit the kernels' 32-bit indices")))
}

/// Bytes for `len` f32, rounded up to a whole, non-empty number of vec4.
fn padded(len: usize) -> u64 {
    (len.max(1).div_ceil(4) * 16) as u64
}

/// A run of `len` 32-bit values at byte `offset` of a device buffer: what one
/// kernel binding sees (a whole uploaded tensor, or a value's slot in an arena).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub len: usize,
}

impl<'a> View<'a> {
    /// The first `len` values of `buffer`.
    pub fn whole(buffer: &'a wgpu::Buffer, len: usize) -> View<'a> {
        View { buffer, offset: 0, len }
    }

    /// Values `start .. start + len` of this view.
    pub fn slice(&self, start: usize, len: usize) -> View<'a> {
        View { buffer: self.buffer, offset: self.offset + start as u64 * 4, len }
    }

    /// The binding: `len` rounded up to whole vec4 (kernels may read vec4;
    /// buffers and arena slots are padded for it), at least 16 bytes.
    fn resource(&self) -> wgpu::BindingResource<'a> {
        let size = (self.len.max(1).div_ceil(4) * 16) as u64;
        let size = size.min(self.buffer.size().saturating_sub(self.offset)).max(4);
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(size),
        })
    }
}

/// Dispatches recorded into one command buffer, submitted together.
pub struct Commands<'d> {
    dev: &'d GpuDevice,
    encoder: wgpu::CommandEncoder,
    /// Uniforms and temporaries the recorded work reads, alive until submission.
    keep: Vec<wgpu::Buffer>,
    /// Pool buffers the recorded work uses in between ([`Commands::temporary`]).
    temporaries: Vec<wgpu::Buffer>,
    timer: Option<Timer>,
}

/// The timestamps of timed [`Commands`]: a begin and an end per pass.
struct Timer {
    set: wgpu::QuerySet,
    /// Passes it has room for.
    capacity: u32,
    /// Passes recorded (timed or, past the capacity, not).
    passes: u32,
}

impl Commands<'_> {
    /// Records one dispatch with `views` bound at 0, 1, …, then `params` as a uniform.
    pub fn dispatch_views<P: bytemuck::Pod>(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        views: &[View<'_>],
        params: &P,
        groups: [u32; 3],
    ) {
        let uniform = self.dev.uniform("params", params);
        let mut entries: Vec<_> = views
            .iter()
            .enumerate()
            .map(|(i, v)| wgpu::BindGroupEntry { binding: i as u32, resource: v.resource() })
            .collect();
        entries.push(wgpu::BindGroupEntry { binding: views.len() as u32, resource: uniform.as_entire_binding() });
        self.dispatch_entries(pipeline, &entries, groups);
        self.keep.push(uniform);
    }

    fn dispatch_entries(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[wgpu::BindGroupEntry],
        groups: [u32; 3],
    ) {
        let bind = self.dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries,
        });
        let timestamp_writes = self.timer.as_mut().and_then(|t| {
            let i = t.passes;
            t.passes += 1;
            (i < t.capacity).then_some(wgpu::ComputePassTimestampWrites {
                query_set: &t.set,
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            })
        });
        let mut pass = self.encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Records a copy of `len` values between two views.
    pub fn copy(&mut self, from: View<'_>, to: View<'_>, len: usize) {
        self.encoder.copy_buffer_to_buffer(from.buffer, from.offset, to.buffer, to.offset, (len * 4) as u64);
    }

    /// Keeps `buffer` alive until the submission.
    pub fn keep(&mut self, buffer: wgpu::Buffer) {
        self.keep.push(buffer);
    }

    /// A storage buffer of `len` f32 for values the recorded work writes and
    /// reads in between, from the device's pool; it goes back to the pool at
    /// submission (whatever takes it next is submitted, and runs, after).
    pub fn temporary(&mut self, label: &str, len: usize) -> wgpu::Buffer {
        let buffer = self.dev.output(label, len);
        self.temporaries.push(buffer.clone());
        buffer
    }

    /// Submits everything recorded.
    pub fn submit(self) {
        self.dev.queue.submit([self.encoder.finish()]);
        self.dev.recycle(self.temporaries);
    }

    /// Submits everything recorded and waits for it; for commands from
    /// [`GpuDevice::timed_commands`], returns the milliseconds the GPU took
    /// from the first pass's start to the last pass's end (`None` when more
    /// passes were recorded than timed, or none).
    pub async fn submit_timed(mut self) -> Result<Option<f64>> {
        let Some(timer) = self.timer.take() else {
            self.submit();
            return Ok(None);
        };
        let timed = timer.passes.min(timer.capacity);
        let bytes = u64::from(timed.max(1)) * 2 * wgpu::QUERY_SIZE as u64;
        let resolve = self.dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps.resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = self.dev.take("timestamps.read", bytes, STAGING);
        if timed > 0 {
            self.encoder.resolve_query_set(&timer.set, 0..2 * timed, &resolve, 0);
            self.encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
        }
        let dev = self.dev;
        self.submit();
        let data = dev.map_read(&staging, bytes as usize).await;
        dev.recycle([staging]);
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&data?);
        if timed == 0 || timer.passes > timer.capacity {
            return Ok(None);
        }
        let first = ticks.iter().step_by(2).min().copied().unwrap_or(0);
        let last = ticks.iter().skip(1).step_by(2).max().copied().unwrap_or(0);
        let ns = last.saturating_sub(first) as f64 * f64::from(dev.queue.get_timestamp_period());
        Ok(Some(ns / 1e6))
    }
}
