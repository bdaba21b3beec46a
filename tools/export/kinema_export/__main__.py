"""python -m kinema_export wan|wan-vae <diffusers_model_dir> ... -o <out_dir> (see issue 4; in progress)."""

import sys

if __name__ == "__main__":
    sys.exit("kinema_export: the diffusers CLI (wan, wan-vae) is not built yet; use export_module() from Python")
