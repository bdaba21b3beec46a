//! Which delegate runs: `--device gpu|cpu|auto`, overridden by the
//! `KINEMA_DEVICE` environment variable (same words). The adapter itself
//! follows wgpu's `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use super::gpu::GpuDevice;
use super::gpu::tune::Precision;
use crate::error::{Error, Result};

/// The environment variable that overrides `--device`.
pub const ENV: &str = "KINEMA_DEVICE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The GPU delegate; an error when there is no adapter.
    Gpu,
    /// The CPU delegate only.
    Cpu,
    /// The GPU when an adapter opens, else the CPU (and say why).
    #[default]
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<DeviceChoice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(Error::Invalid(format!("unknown device {other:?}: expected gpu, cpu or auto"))),
        }
    }
}

impl DeviceChoice {
    /// `KINEMA_DEVICE` when set (natively), else `given`.
    pub fn from_env_or(given: DeviceChoice) -> Result<DeviceChoice> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Ok(v) = std::env::var(ENV) {
            return v.parse().map_err(|e| Error::Invalid(format!("{ENV}: {e}")));
        }
        Ok(given)
    }

    /// Opens what this choice asks for: `Some(device)` for the GPU delegate,
    /// `None` for the CPU one, with the reason the GPU was not used. `Auto`
    /// takes a hardware GPU; a software one (lavapipe, SwiftShader) only when
    /// asked for by `Gpu`.
    pub async fn open(self) -> Result<(Option<Arc<GpuDevice>>, String)> {
        match self {
            DeviceChoice::Cpu => Ok((None, "the CPU delegate was asked for".into())),
            DeviceChoice::Gpu => {
                let dev = shared().await?;
                let why = format!("GPU: {} ({:?})", dev.info.name, dev.info.backend);
                Ok((Some(dev), why))
            }
            DeviceChoice::Auto => match shared().await {
                // A software rasterizer (lavapipe, SwiftShader) runs on the same
                // cores as the CPU delegate, an order of magnitude slower.
                Ok(dev) if dev.info.device_type == wgpu::DeviceType::Cpu => Ok((
                    None,
                    format!("CPU delegate, because the only GPU adapter, {}, is a software renderer", dev.info.name),
                )),
                Ok(dev) => {
                    let why = format!("GPU: {} ({:?})", dev.info.name, dev.info.backend);
                    Ok((Some(dev), why))
                }
                Err(e) => Ok((None, format!("CPU delegate, because {e}"))),
            },
        }
    }
}

thread_local! {
    /// The device the sessions of this thread share while any holds it.
    static SHARED: RefCell<Weak<GpuDevice>> = RefCell::default();
    /// The arithmetic the shared device's tuner may choose, when set
    /// ([`set_shared_precision`]; else `KINEMA_PRECISION`'s).
    static PRECISION: std::cell::Cell<Option<Precision>> = const { std::cell::Cell::new(None) };
}

/// Makes [`shared`] give devices whose tuner chooses `precision` (a page's
/// `Kinema.create({ precision })`): a shared device of another precision is
/// not reused (sessions that hold it keep it).
pub fn set_shared_precision(precision: Precision) {
    PRECISION.with(|p| p.set(Some(precision)));
}

/// The default adapter's device, opened once and shared: every session (of a
/// pipeline, say) on this thread uses the same device while one holds it, so a
/// parameter two programs read is uploaded once. (Natively sessions on other
/// threads open their own; in the browser there is one thread.) A device
/// that was lost is replaced by a new one.
pub async fn shared() -> Result<Arc<GpuDevice>> {
    let precision = PRECISION.with(std::cell::Cell::get);
    let fits = |d: &Arc<GpuDevice>| !d.is_lost() && precision.is_none_or(|p| d.precision() == p);
    if let Some(dev) = SHARED.with(|s| s.borrow().upgrade()).filter(fits) {
        return Ok(dev);
    }
    let mut opened = GpuDevice::new().await?;
    if let Some(p) = precision {
        opened = opened.with_precision(p);
    }
    // In the browser GPU objects are not Send: they never leave the page's thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    let dev = Arc::new(opened);
    SHARED.with(|s| *s.borrow_mut() = Arc::downgrade(&dev));
    Ok(dev)
}

/// Makes `dev` this thread's shared device while it lives: sessions opened
/// with [`DeviceChoice::Gpu`] (or `Auto`) on this thread use it — one opened
/// with other limits, say, as the tests do to run whole pipelines within a
/// few KiB per binding. Fails when another device is shared now.
pub fn share(dev: &Arc<GpuDevice>) -> Result<()> {
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        match s.upgrade() {
            Some(other) if !Arc::ptr_eq(&other, dev) => {
                Err(Error::Gpu(format!("{} is this thread's device while a session holds it", other.info.name)))
            }
            _ => {
                *s = Arc::downgrade(dev);
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_words_and_refuses_others() {
        assert_eq!("GPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Gpu);
        assert_eq!(" cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        let err = "tpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.to_string().contains("expected gpu, cpu or auto"), "{err}");
    }
}
