"""Synthetic report inputs (tables, figures, metrics, benchmarks) in the workflow's layout.

The numbers are made up: the tests check that the report shows them faithfully, not that they are good.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from febm.config import validate


def tiny_png(path: Path, rgb: tuple[int, int, int] = (40, 90, 160), size: int = 8) -> Path:
    """A valid solid-colour PNG without needing an image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * size))
    data += chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_config(path: Path, overrides: dict) -> dict:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(overrides))
    return validate(json.loads(json.dumps(overrides)))


def write_inputs(root: Path, preset: str = "smoke", standin: bool = True) -> dict[str, list[Path]]:
    """Table 5 and Table 1 exist; Table 2 (CelebA) was not run."""
    tables = root / "results" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    (tables / "table5.csv").write_text(
        "method,divergence,metric,mean,std,n\n"
        "f-EBM,kl,mu,1.0234,0.0123,2\n"
        "f-EBM,kl,sigma,1.8111,0.0045,2\n"
        "optimum,kl,mu,1.0107,,1\n"
        "mle,kl,mu,1.0099,0.0001,2\n"
    )
    (tables / "table1.csv").write_text(
        "method,divergence,inception_score_mean,inception_score_std,fid_mean,fid_std,n\n"
        "febm,jensen_shannon,1.2345,0.01,345.6789,1.5,1\n"
        "cd,kl,1.1111,0.02,400.25,2.5,1\n"
    )
    figures = [tiny_png(root / "results" / "figures" / f"figure{n}.png", (30 * n, 60, 90)) for n in (1, 2, 3, 4)]
    metrics = []
    for seed in (0, 1):
        path = root / "results" / "toy" / "runs" / "febm" / "kl" / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"preset": preset, "scale": "reduced: 300 steps", "standin_data": False}
        record["provenance"] = {"device": "cpu (2 cores)", "host": "testhost"}
        path.write_text(json.dumps(record))
        metrics.append(path)
    score = root / "results" / "images" / "scores" / "cifar10" / "febm" / "jensen_shannon" / "seed0.json"
    score.parent.mkdir(parents=True, exist_ok=True)
    score.write_text(json.dumps({"preset": preset, "standin_data": standin, "fid": 345.6789}))
    metrics.append(score)
    samples = [
        tiny_png(root / "results" / "images" / "runs" / "cifar10" / "febm" / "jensen_shannon" / "seed0" / "samples.png")
    ]
    benchmarks = []
    for stage, seconds in [("toy_train", [1.5, 2.5]), ("train_images", [75.0])]:
        for index, value in enumerate(seconds):
            path = root / "results" / "benchmarks" / stage / f"job{index}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                f"{value}\t0:00:01\t123.4\t0\t0\t0\t0\t0\t0\t0\n"
            )
            benchmarks.append(path)
    stability = root / "results" / "toy" / "stability" / "kl.json"
    stability.parent.mkdir(parents=True, exist_ok=True)
    stability.write_text(json.dumps({"divergence": "kl", "max_real_eigenvalue": -0.25, "stable": True}))
    return {
        "tables": sorted(tables.glob("*.csv")),
        "figures": figures,
        "metrics": metrics,
        "samples": samples,
        "benchmarks": benchmarks,
        "stability": [stability],
    }
