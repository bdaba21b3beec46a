//! What the GPU device gives every kernel: here, GPU timestamps
//! (`TIMESTAMP_QUERY`, used by `kinema bench` for kernel time).

use std::time::Instant;

use kinema_engine::delegate::gpu::View;
use kinema_engine::delegate::gpu::matmul::{BStore, Config, encode_matmul};
use kinema_engine::delegate::{Matmul, cpu};
use kinema_engine::random::uniform as random;

use super::{compare, device};

/// Two chained matmuls recorded as timed commands: the GPU's time for them is
/// positive and within the wall time of the submission; the results are still
/// right; a pass past the timer's room makes the time unknown (`None`), not wrong.
#[test]
fn timestamps_time_the_recorded_passes() {
    let dev = device();
    if !dev.has_timestamps() {
        assert!(dev.timed_commands(4).is_none());
        eprintln!("{}: no TIMESTAMP_QUERY; timed commands are None", dev.info.name);
        return;
    }
    let spec = Matmul::new(1, 96, 96, 96);
    let (a, b) = (random(96 * 96, 1), random(96 * 96, 2));
    let want = cpu::matmul::matmul(&spec, &cpu::matmul::matmul(&spec, &a, &b, None).unwrap(), &b, None).unwrap();
    let run = |passes: u32| -> (Option<f64>, f64, Vec<f32>) {
        let bufs = [dev.upload("a", &a), dev.upload("b", &b), dev.output("ab", a.len()), dev.output("abb", a.len())];
        let [av, bv, ab, abb] = std::array::from_fn(|i| View::whole(&bufs[i], a.len()));
        let config = Config::for_device(&dev);
        let mut cmds = dev.timed_commands(passes).unwrap();
        pollster::block_on(async {
            encode_matmul(&dev, &mut cmds, config, &spec, av, (bv, BStore::F32), None, ab).await?;
            encode_matmul(&dev, &mut cmds, config, &spec, ab, (bv, BStore::F32), None, abb).await
        })
        .unwrap();
        let t0 = Instant::now();
        let ms = pollster::block_on(cmds.submit_timed()).unwrap();
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        (ms, wall, pollster::block_on(dev.read(&bufs[3], a.len())).unwrap())
    };
    let (ms, wall, got) = run(2);
    let ms = ms.expect("both passes timed");
    eprintln!("{}: GPU {ms:.3} ms of {wall:.3} ms wall", dev.info.name);
    assert!(ms > 0.0 && ms <= wall, "GPU time {ms} ms, wall {wall} ms");
    assert!(compare(&got, &want, 96 * 96, 1e-4).1, "timed results");
    let (ms, _, got) = run(1);
    assert_eq!(ms, None, "one of two passes timed");
    assert!(compare(&got, &want, 96 * 96, 1e-4).1);
}

/// GPU failures are errors, not panics: an allocation over the device's buffer
/// limit inside `scoped` is an `Error` naming what was allocated; one outside any
/// scope is recorded (wgpu would panic by default) and handed out by `check` —
/// and by the next readback — once; the device keeps working.
#[test]
fn gpu_failures_are_errors() {
    let limits = wgpu::Limits { max_buffer_size: 1 << 20, ..Default::default() };
    let dev = pollster::block_on(kinema_engine::delegate::gpu::GpuDevice::with_limits(Some(limits))).unwrap();
    let too_big = wgpu::BufferDescriptor {
        label: Some("too big"),
        size: 4 << 20,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    };
    let err = pollster::block_on(dev.scoped("allocating 4 MiB", || dev.device.create_buffer(&too_big))).err().unwrap();
    assert!(err.to_string().contains("allocating 4 MiB"), "{err}");
    assert!(dev.check().is_ok(), "a scoped error is not also uncaptured");

    let _uncaught = dev.device.create_buffer(&too_big);
    let err = dev.check().unwrap_err();
    assert!(err.to_string().to_lowercase().contains("size"), "{err}");
    assert!(dev.check().is_ok(), "handed out once");

    let _uncaught = dev.device.create_buffer(&too_big);
    let x = dev.upload("x", &[1.0, 2.0, 3.0]);
    assert!(pollster::block_on(dev.read(&x, 3)).is_err(), "the next readback reports it");
    assert_eq!(pollster::block_on(dev.read(&x, 3)).unwrap(), [1.0, 2.0, 3.0], "and the device still works");
}
