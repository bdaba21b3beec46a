"""Export PyTorch modules to Kinema programs.

    from kinema_export import export_module
    export_module(module, example_inputs, "out_dir")            # writes program.json + weights.safetensors
    export_module(module, example_inputs, "out_dir", weights="ckpt_dir")  # references an existing checkpoint

`torch.export` captures the module; `lower` maps the ATen graph onto Kinema's
opset (docs/program-format.md), keeping linear, conv, attention, norms and
activations whole so they reach fused kernels, and folding what is constant.
"""

from .lower import ExportError, export_module, lower_exported

__all__ = ["ExportError", "export_module", "lower_exported"]
