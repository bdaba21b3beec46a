//! conv3d: the CPU delegate against PyTorch (float64) goldens, and both GPU
//! kernels against the CPU delegate over strides, causal and asymmetric
//! padding, dilation, groups, conv2d/conv1d shapes and odd sizes (the narrow
//! kernel for few output channels too, on every shape).
//!
//! Tolerance: 1e-5 · √k · (1 + max|ref|) for CPU vs PyTorch, 1e-4 · √k · (…)
//! for GPU vs CPU, k = c_in/groups · kd·kh·kw.

use kinema_engine::delegate::{Conv3d, cpu, gpu};
use kinema_engine::random::uniform as random;

use gpu::conv::Kernel;

use super::{activation, cases, compare, configs, device, read};

/// Every conv kernel this adapter can run: the GEMM in each matmul
/// configuration, and the narrow kernel (for any channel count, not only the
/// few it is chosen for).
fn kernels(dev: &gpu::GpuDevice) -> Vec<Kernel> {
    configs(dev).into_iter().map(Kernel::Gemm).chain([Kernel::Narrow]).collect()
}

fn triple(v: &serde_json::Value) -> [usize; 3] {
    std::array::from_fn(|i| v[i].as_u64().unwrap() as usize)
}

#[test]
fn cpu_conv3d_matches_pytorch() {
    let (ckpt, cases) = cases("conv3d");
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        let spec = Conv3d {
            stride: triple(&c["stride"]),
            padding: std::array::from_fn(|i| [0, 1].map(|j| c["padding"][i][j].as_u64().unwrap() as usize)),
            dilation: triple(&c["dilation"]),
            groups: n("groups"),
            activation: activation(c["activation"].as_str().unwrap()),
            ..Conv3d::new(n("batch"), n("c_in"), n("c_out"), triple(&c["input"]), triple(&c["kernel"]))
        };
        let bias = c["bias"].as_bool().unwrap().then(|| read(&ckpt, &format!("{name}.bias")));
        let (x, w) = (read(&ckpt, &format!("{name}.x")), read(&ckpt, &format!("{name}.w")));
        let out = cpu::conv::conv3d(&spec, &x, &w, bias.as_deref()).unwrap();
        let (err, ok) = compare(&out, &read(&ckpt, &format!("{name}.out")), spec.k(), 1e-5);
        eprintln!("cpu conv3d {name}: max abs error {err:.3e}");
        assert!(ok, "{name}: max abs error {err}");
    }
}

/// Shapes that exercise every index path, with odd sizes throughout.
fn awkward() -> Vec<Conv3d> {
    vec![
        Conv3d::new(1, 1, 1, [1, 1, 1], [1, 1, 1]),
        Conv3d::new(2, 3, 7, [3, 7, 5], [3, 3, 3]).padded([1, 1, 1]),
        Conv3d { padding: [[2, 0], [1, 1], [1, 1]], ..Conv3d::new(1, 4, 8, [5, 6, 6], [3, 3, 3]) },
        Conv3d {
            stride: [2, 2, 3],
            dilation: [1, 2, 1],
            groups: 2,
            padding: [[0, 1], [2, 2], [0, 0]],
            ..Conv3d::new(1, 6, 4, [7, 9, 11], [2, 3, 3])
        },
        Conv3d { stride: [1, 4, 4], ..Conv3d::new(1, 3, 33, [1, 16, 16], [1, 4, 4]) },
        Conv3d { groups: 5, padding: [[0, 0], [0, 0], [3, 3]], ..Conv3d::new(2, 5, 5, [1, 1, 33], [1, 1, 7]) },
        Conv3d::new(1, 16, 127, [2, 3, 5], [1, 1, 1]),
        Conv3d::new(1, 8, 70, [3, 9, 10], [3, 3, 3]).padded([1, 1, 1]),
    ]
}

#[test]
fn gpu_conv3d_matches_cpu_on_awkward_shapes() {
    let dev = device();
    let acts = [
        kinema_engine::delegate::Activation::None,
        kinema_engine::delegate::Activation::Silu,
        kinema_engine::delegate::Activation::GeluErf,
    ];
    for (i, spec) in awkward().into_iter().enumerate() {
        let spec = Conv3d { activation: acts[i % 3], ..spec };
        let x = random(spec.batch * spec.c_in * spec.input.iter().product::<usize>(), i as u64);
        let w = random(spec.c_out * spec.k(), 100 + i as u64);
        let bias = (i % 2 == 0).then(|| random(spec.c_out, 200 + i as u64));
        let want = cpu::conv::conv3d(&spec, &x, &w, bias.as_deref()).unwrap();
        for config in kernels(&dev) {
            let got = pollster::block_on(gpu::conv::conv3d_with(&dev, config, &spec, &x, &w, bias.as_deref())).unwrap();
            let (err, ok) = compare(&got, &want, spec.k(), 1e-4);
            assert!(ok, "{config:?} {spec:?}: max abs error {err}");
        }
    }
}

/// A conv over one storage binding is dispatched in windows and agrees with
/// the CPU delegate, on a device whose bindings hold 4 KiB (1024 f32, bound
/// from 256-byte starts): whole groups per window; and one group split into
/// ranges of output channels and of input channels that accumulate (bias on
/// the first, activation on the last), for both kernels.
#[test]
fn gpu_conv3d_binds_large_values_in_windows() {
    use kinema_engine::delegate::Activation;
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 4096, ..Default::default() };
    let dev = pollster::block_on(kinema_engine::delegate::gpu::GpuDevice::with_limits(Some(limits))).unwrap();
    let specs = [
        // One group of 8 × 189 inputs, 12 × 189 outputs, 8 × 27 × 12 weights:
        // input ranges of 2 channels (the weights' limit), output ranges of 4.
        Conv3d { activation: Activation::Silu, ..Conv3d::new(2, 8, 12, [3, 7, 9], [3, 3, 3]).padded([1, 1, 1]) },
        // Causal time padding, strides and dilation, the same splits.
        Conv3d {
            stride: [1, 2, 1],
            dilation: [1, 1, 2],
            padding: [[2, 0], [1, 1], [2, 2]],
            activation: Activation::GeluErf,
            ..Conv3d::new(1, 7, 9, [4, 6, 11], [3, 3, 3])
        },
        // Four groups of 2 × 200: two whole groups per window, per batch.
        Conv3d { groups: 4, ..Conv3d::new(2, 8, 8, [2, 10, 10], [1, 3, 3]).padded([0, 1, 1]) },
        // Depthwise, 6 channels of 330, each output doubled: one group per window.
        Conv3d { groups: 6, ..Conv3d::new(1, 6, 12, [3, 10, 11], [3, 3, 3]).padded([1, 1, 1]) },
    ];
    for (i, spec) in specs.into_iter().enumerate() {
        let x = random(spec.batch * spec.c_in * spec.input.iter().product::<usize>(), 300 + i as u64);
        assert!(x.len() > 1024 || spec.batch * spec.c_out * spec.positions() > 1024, "case {i} fits one binding");
        let w = random(spec.c_out * spec.k(), 400 + i as u64);
        for bias in [Some(random(spec.c_out, 500 + i as u64)), None] {
            let want = cpu::conv::conv3d(&spec, &x, &w, bias.as_deref()).unwrap();
            for config in kernels(&dev) {
                let got = pollster::block_on(gpu::conv::conv3d_with(&dev, config, &spec, &x, &w, bias.as_deref()));
                let (err, ok) = compare(&got.unwrap(), &want, spec.k(), 1e-4);
                assert!(ok, "{config:?} {spec:?} (bias {}): max abs error {err}", bias.is_some());
            }
        }
    }
    // One input channel over a binding (1600 floats) cannot be split: a clear error.
    let spec = Conv3d::new(1, 1, 1, [1, 40, 40], [1, 1, 1]);
    let err = pollster::block_on(gpu::conv::conv3d(&dev, &spec, &random(1600, 1), &[1.0], None)).unwrap_err();
    assert!(err.to_string().contains("storage binding limit"), "{err}");
}

#[test]
fn bad_convs_are_errors() {
    let spec = Conv3d::new(1, 2, 2, [3, 3, 3], [3, 3, 3]);
    assert!(cpu::conv::conv3d(&spec, &[0.0; 53], &[0.0; 108], None).is_err(), "short input");
    let too_big = Conv3d::new(1, 1, 1, [2, 2, 2], [3, 3, 3]);
    let err = cpu::conv::conv3d(&too_big, &[0.0; 8], &[0.0; 27], None).unwrap_err();
    assert!(err.to_string().contains("larger than the padded input"), "{err}");
    let groups = Conv3d { groups: 3, ..Conv3d::new(1, 4, 6, [1, 1, 1], [1, 1, 1]) };
    assert!(cpu::conv::conv3d(&groups, &[0.0; 4], &[0.0; 6], None).is_err(), "groups must divide c_in");
    let zero_stride = Conv3d { stride: [0, 1, 1], ..spec };
    assert!(cpu::conv::conv3d(&zero_stride, &[0.0; 54], &[0.0; 108], None).is_err());
}
