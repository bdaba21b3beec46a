//! burn 0.22 on the workloads of `kinema bench`, fp32, min and median of 5
//! runs after 2 warm-ups, readback included; prints the same JSON rows.

use std::time::Instant;

use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, DeviceKind, Distribution, Tensor, activation::softmax};

fn time(mut f: impl FnMut()) -> (f64, f64) {
    f();
    f();
    let mut ms: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[2])
}

/// Reads the result back to the host, element values included (a readback
/// that only returns a handle would time nothing).
fn read<const D: usize>(t: Tensor<D>) {
    let v: Vec<f32> = t.into_data().try_to_vec::<f32>().expect("f32 data");
    std::hint::black_box(v.iter().sum::<f32>());
}

fn run(name: &str, device: &Device) {
    let rnd = |shape: Vec<usize>| Tensor::<1>::random([shape.iter().product::<usize>()], Distribution::Default, device);
    let a: Tensor<2> = rnd(vec![1024, 1024]).reshape([1024, 1024]);
    let b: Tensor<2> = rnd(vec![1024, 1024]).reshape([1024, 1024]);
    let x: Tensor<5> = rnd(vec![1, 64, 8, 32, 32]).reshape([1, 64, 8, 32, 32]);
    let w: Tensor<5> = rnd(vec![64, 64, 3, 3, 3]).reshape([64, 64, 3, 3, 3]);
    let q: Tensor<4> = rnd(vec![1, 8, 1024, 64]).reshape([1, 8, 1024, 64]);
    let k: Tensor<4> = rnd(vec![1, 8, 1024, 64]).reshape([1, 8, 1024, 64]);
    let v: Tensor<4> = rnd(vec![1, 8, 1024, 64]).reshape([1, 8, 1024, 64]);
    let workloads: [(&str, f64, Box<dyn Fn()>); 3] = [
        ("matmul", 2.0 * 1024f64.powi(3), Box::new(|| read(a.clone().matmul(b.clone())))),
        (
            "conv3d",
            2.0 * 64.0 * 8.0 * 32.0 * 32.0 * 64.0 * 27.0,
            Box::new(|| {
                let opts = ConvOptions::new([1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
                read(conv3d(x.clone(), w.clone(), None, opts))
            }),
        ),
        (
            "attention",
            4.0 * 8.0 * 1024.0 * 1024.0 * 64.0,
            Box::new(|| {
                let s = q.clone().matmul(k.clone().swap_dims(2, 3)) / 8.0;
                read(softmax(s, 3).matmul(v.clone()))
            }),
        ),
    ];
    for (workload, flops, f) in workloads {
        let (min, median) = time(|| f());
        println!(
            "{{\"workload\": \"{workload}\", \"device\": \"{name}\", \"ms_min\": {min:.2}, \"ms_median\": {median:.2}, \"gflops\": {:.2}}}",
            flops / min / 1e6
        );
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if which == "all" || which == "ndarray" {
        #[allow(deprecated)] // still the "ndarray" backend of the peers table
        run("burn-ndarray", &Device::ndarray());
    }
    if which == "all" || which == "flex" {
        run("burn-flex", &Device::flex());
    }
    if which == "all" || which == "wgpu" {
        run("burn-wgpu", &Device::wgpu(DeviceKind::DefaultDevice));
    }
}
