//! Every kernel lined up three ways: the CPU delegate against PyTorch goldens
//! (`tools/fixtures/make_kernel_goldens.py`, in `fixtures/kernels/`), and each
//! GPU kernel against the CPU delegate on random inputs of awkward shapes, on
//! whatever adapter wgpu finds (lavapipe in CI). Each module states its
//! tolerances.

mod attention;
mod conv3d;
mod device;
mod matmul;
mod ops;

use kinema_engine::delegate::Activation;
use kinema_engine::delegate::gpu::GpuDevice;
use kinema_engine::delegate::gpu::matmul::{Config, Tiles};
use kinema_engine::weights::Checkpoint;
use kinema_tests::fixture;

/// The golden file `fixtures/kernels/<op>.safetensors` and its list of cases.
fn cases(op: &str) -> (Checkpoint, Vec<serde_json::Value>) {
    let path = fixture(&format!("kernels/{op}.safetensors"));
    let ckpt = pollster::block_on(Checkpoint::open(path.to_str().unwrap())).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&ckpt.shards()[0].header.metadata["cases"]).unwrap();
    (ckpt, cases.as_array().unwrap().clone())
}

fn read(ckpt: &Checkpoint, name: &str) -> Vec<f32> {
    let mut v = vec![0f32; ckpt.get(name).unwrap().info.numel() as usize];
    pollster::block_on(ckpt.read_f32(name, &mut v)).unwrap();
    v
}

fn activation(name: &str) -> Activation {
    match name {
        "none" => Activation::None,
        "relu" => Activation::Relu,
        "silu" => Activation::Silu,
        "gelu_tanh" => Activation::GeluTanh,
        "gelu_erf" => Activation::GeluErf,
        other => panic!("unknown activation {other}"),
    }
}

/// Max abs error, and whether it is within `tol · √k · (1 + max|ref|)`
/// (k: the length of the sums behind each output) with every value finite.
fn compare(got: &[f32], want: &[f32], k: usize, tol: f32) -> (f32, bool) {
    assert_eq!(got.len(), want.len());
    let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    (err, err <= tol * (k.max(1) as f32).sqrt() * scale && got.iter().all(|v| v.is_finite()))
}

fn device() -> GpuDevice {
    pollster::block_on(GpuDevice::new()).unwrap_or_else(|e| panic!("GPU tests need an adapter (install lavapipe): {e}"))
}

/// Every kernel family the adapter runs: tiled, blocked, direct and split-K
/// (conv3d's tiled stands in for the last three), and the subgroup ones where
/// the adapter has subgroups (lavapipe).
fn configs(dev: &GpuDevice) -> Vec<Config> {
    let mut list = vec![
        Config::Tiled(Tiles::DEFAULT),
        Config::Blocked(Tiles::DEFAULT),
        Config::Direct { wg_m: 8, wg_n: 8 },
        // Parts of 4 values of k and more: k of 7, 33, 64 and 1000 in 2 to 3 parts.
        Config::SplitK { slices: 3, tiles: Tiles { wg_m: 8, wg_n: 8, bk: 4 } },
    ];
    if dev.supports(kinema_shaders::Needs::Subgroups8) {
        list.push(Config::Subgroups8 { wg_rows: 8 });
    }
    if dev.supports(kinema_shaders::Needs::Subgroups) {
        list.push(Config::Subgroups { lanes: 128 });
    }
    list
}
