//! Choosing an adapter, opening a device, and what every dispatch shares:
//! the pipeline cache, buffer upload and readback.

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};

/// An open GPU device with its queue and compiled pipelines.
pub struct GpuDevice {
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
}

impl GpuDevice {
    /// Opens the default adapter (`WGPU_BACKEND` and `WGPU_ADAPTER_NAME` are
    /// honoured) with its own limits, and `SHADER_F16` when it has it.
    pub async fn new() -> Result<GpuDevice> {
        GpuDevice::with_limits(None).await
    }

    /// Opens the default adapter with the given limits (`None`: the adapter's own).
    pub async fn with_limits(limits: Option<wgpu::Limits>) -> Result<GpuDevice> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter: {e}")))?;
        let info = adapter.get_info();
        let features = adapter.features() & wgpu::Features::SHADER_F16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("kinema"),
                required_features: features,
                required_limits: limits.unwrap_or_else(|| adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("{}: cannot open the device: {e}", info.name)))?;
        Ok(GpuDevice { info, device, queue, pipelines: Mutex::new(HashMap::new()) })
    }

    /// The compute pipeline of `kernel` with `overrides`, compiled once and cached.
    pub async fn pipeline(
        &self,
        kernel: &kinema_shaders::Kernel,
        overrides: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
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

    /// A storage buffer holding `data` (at least 4 bytes: empty bindings are invalid).
    pub fn upload(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        let bytes: &[u8] = if data.is_empty() { &[0; 4] } else { bytemuck::cast_slice(data) };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
    }

    /// A storage buffer of `len` f32 (at least one), for a kernel to write.
    pub fn output(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Reads `len` f32 back from `buffer` (works natively and in the browser).
    pub async fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let size = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Natively this drives the map to completion; in the browser it is a no-op.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        rx.await
            .map_err(|_| Error::Gpu("readback cancelled (device lost?)".into()))?
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))?;
        let data =
            staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("readback failed: {e}")))?.to_vec();
        staging.unmap();
        Ok(bytemuck::cast_slice(&data).to_vec())
    }
}
