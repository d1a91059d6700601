"""Stop paper-scale image training at once on a machine without a GPU.

Runs as the first image job (on a cluster: on the GPU node the training jobs will get) and records
the device it found, which the report shows under "hardware". By hand:

    python workflow/scripts/check_gpu.py --config results/config/resolved.yaml --out results/images/gpu_check.json
"""

from __future__ import annotations

import argparse
import sys

from febm.config import config_hash, load_config
from febm.io import provenance, write_json_atomic

QUICK_HINT = "snakemake --cores all --configfile config/quick.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", required=True, help="resolved config (YAML)")
    parser.add_argument("--out", required=True, help="JSON file recording the device found")
    args = parser.parse_args(argv)

    import torch

    config = load_config(args.config)
    has_gpu = torch.cuda.is_available()
    paper_scale = config["preset"] == "paper"
    allowed = config["workflow"]["allow_cpu_paper_scale"]
    if paper_scale and not has_gpu and not allowed:
        print(
            "gpu_check: error: paper-scale image training needs a GPU and none is visible here "
            "(torch.cuda.is_available() is False). On a CPU machine run the quick preset: "
            f"`{QUICK_HINT}`; to train at paper scale on CPU anyway (weeks), set "
            "workflow.allow_cpu_paper_scale: true.",
            file=sys.stderr,
        )
        return 2
    write_json_atomic(
        args.out,
        {
            "preset": config["preset"],
            "gpu_available": has_gpu,
            "cpu_paper_scale_allowed": bool(allowed),
            "config_hash": config_hash(config),
            **provenance(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
