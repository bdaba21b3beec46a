//! Every kernel parses and validates with naga (the WGSL compiler wgpu uses),
//! and with its default `override` values fits WebGPU's default limits, so it
//! runs in every browser: at most 256 invocations per workgroup (256 × 256 × 64
//! per dimension) and 16 KiB of workgroup memory.

use naga::valid::{Capabilities, ValidationFlags, Validator};

const MAX_INVOCATIONS: u32 = 256;
const MAX_SIZE: [u32; 3] = [256, 256, 64];
const MAX_WORKGROUP_BYTES: u32 = 16 * 1024;

fn parse(kernel: &kinema_shaders::Kernel) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(kernel.source)
        .unwrap_or_else(|e| panic!("{}.wgsl: {}", kernel.name, e.emit_to_string(kernel.source)));
    // pack2x16float and friends are core WebGPU (naga gates them behind a
    // capability that wgpu grants on every backend we target).
    let core = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    let caps = match kernel.needs {
        kinema_shaders::Needs::Nothing => core,
        kinema_shaders::Needs::Subgroups8 | kinema_shaders::Needs::Subgroups => core | Capabilities::SUBGROUP,
        kinema_shaders::Needs::F16 => core | Capabilities::SHADER_FLOAT16,
    };
    let info = Validator::new(ValidationFlags::all(), caps)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}.wgsl: {}", kernel.name, e.emit_to_string(kernel.source)));
    (module, info)
}

#[test]
fn every_kernel_validates() {
    assert!(!kinema_shaders::CATALOG.is_empty());
    for kernel in kinema_shaders::CATALOG {
        let (module, _) = parse(kernel);
        assert!(
            module.entry_points.iter().any(|e| e.name == kernel.entry && e.stage == naga::ShaderStage::Compute),
            "{}: no compute entry point {:?}",
            kernel.name,
            kernel.entry
        );
    }
}

#[test]
fn every_kernel_fits_the_webgpu_default_limits() {
    for kernel in kinema_shaders::CATALOG {
        let (module, info) = parse(kernel);
        let stage = Some((naga::ShaderStage::Compute, kernel.entry));
        let (module, _) = naga::back::pipeline_constants::process_overrides(&module, &info, stage, &Default::default())
            .unwrap_or_else(|e| panic!("{}: overrides: {e}", kernel.name));
        let ep = module.entry_points.iter().find(|e| e.name == kernel.entry).unwrap();
        let size = ep.workgroup_size;
        assert!(size.iter().product::<u32>() <= MAX_INVOCATIONS, "{}: workgroup {size:?}", kernel.name);
        assert!(size.iter().zip(MAX_SIZE).all(|(s, m)| *s <= m), "{}: workgroup {size:?}", kernel.name);

        let ctx = module.to_ctx();
        let bytes: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| match module.types[g.ty].inner {
                naga::TypeInner::Array { size, stride, .. } => match size.resolve(ctx).unwrap() {
                    naga::proc::IndexableLength::Known(n) => n * stride,
                    naga::proc::IndexableLength::Dynamic => panic!("{}: runtime-sized workgroup array", kernel.name),
                },
                ref other => other.size(ctx),
            })
            .sum();
        assert!(bytes > 0 || kernel.name != "matmul", "matmul tiles through workgroup memory");
        assert!(bytes <= MAX_WORKGROUP_BYTES, "{}: {bytes} bytes of workgroup memory", kernel.name);
        eprintln!("{}: workgroup {size:?}, {bytes} bytes of workgroup memory", kernel.name);
    }
}
