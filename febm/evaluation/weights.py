"""Where the Inception weights come from, and checks that a weights file is the one we expect.

The network is pytorch-fid's port of the TF graph ``inception-2015-12-05`` (the FID/IS network of the
paper). Compute nodes often have no internet, so weights are resolved offline, in this order:
an explicit path, the path named in the config (``evaluation.inception.weights``), then the torch hub
cache where pytorch-fid itself would have put them. ``febm fetch-inception`` downloads them once on a
machine with internet. Nothing here ever waits on the network except that command, with a timeout.

A *stand-in* (Kaiming-random weights of the identical layout) exists so that the smoke preset and the
tests can run the real loading and extraction path without the 95 MB download; a sidecar JSON marks it,
and every score records the flag so that no stand-in number is mistaken for a result.
"""

from __future__ import annotations

import functools
import json
import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from febm.errors import FebmError
from febm.io import atomic_path, file_digest, save_torch_atomic, write_json_atomic

# pytorch_fid.inception.FID_WEIGHTS_URL (0.3.0); repeated here so that importing this module stays light.
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# torch hub names files <name>-<first 8 hex digits of their SHA-256>; pytorch-fid never checks it, we record it.
RELEASE_SHA256_PREFIX = "6726825d"
STANDIN_SIDECAR_SUFFIX = ".standin.json"
DOWNLOAD_TIMEOUT_S = 30.0


class InceptionWeightsError(FebmError):
    """Inception weights that are missing, truncated, or not pytorch-fid's layout."""


def hub_cache_path() -> Path:
    """Where pytorch-fid's ``load_state_dict_from_url`` caches the file (``$TORCH_HOME/hub/checkpoints``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def resolve_weights_path(explicit: str | Path | None = None, configured: str | Path | None = None) -> Path:
    """The first of: explicit path, config path, torch hub cache; a clear error if none exists."""
    for source, candidate in (("--weights", explicit), ("evaluation.inception.weights", configured)):
        if candidate:
            path = Path(candidate)
            if not path.is_file():
                raise InceptionWeightsError(
                    f"Inception weights {str(path)!r} (from {source}) do not exist; run "
                    f"`febm fetch-inception --out {path}` on a machine with internet, or copy the file there"
                )
            return path
    cached = hub_cache_path()
    if cached.is_file():
        return cached
    raise InceptionWeightsError(
        "no Inception weights: pass --weights PATH, set evaluation.inception.weights in the config, or run "
        f"`febm fetch-inception --out {cached}` on a machine with internet (pytorch-fid's cache location)"
    )


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of pytorch-fid's FID Inception (566 entries, fc 1008x2048)."""
    import torch

    from febm.evaluation.inception import build_fid_inception_architecture

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        network = build_fid_inception_architecture()
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def check_layout(state_dict: Mapping[str, Any], path: str | Path) -> None:
    """Fail with a message naming the first differences if the layout is not pytorch-fid's."""
    expected = expected_shapes()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [
        f"{name} {tuple(state_dict[name].shape)} (expected {shape})"
        for name, shape in expected.items()
        if name in state_dict and tuple(getattr(state_dict[name], "shape", ())) != shape
    ]
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {len(missing)} keys, e.g. {missing[:3]}" if missing else "",
                f"{len(unexpected)} unexpected keys, e.g. {unexpected[:3]}" if unexpected else "",
                f"wrong shapes: {', '.join(wrong[:3])}" if wrong else "",
            )
            if part
        )
        raise InceptionWeightsError(
            f"{str(path)!r} is not pytorch-fid's Inception ({WEIGHTS_FILENAME}): {details}; "
            "fetch it again with `febm fetch-inception`"
        )


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True`` and check the layout; truncated or foreign files fail with a message."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(
            f"Inception weights {str(path)!r} do not exist; run `febm fetch-inception --out {path}`"
        )
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError... for bad files
        raise InceptionWeightsError(
            f"cannot read Inception weights {str(path)!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}); the file is truncated or not a "
            "state dict: delete it and run `febm fetch-inception` again"
        ) from None
    if not isinstance(state_dict, Mapping):
        raise InceptionWeightsError(f"{str(path)!r} holds a {type(state_dict).__name__}, not a state dict")
    check_layout(state_dict, path)
    return dict(state_dict)


def file_sha256(path: str | Path) -> str:
    return file_digest(path, "sha256")


def standin_sidecar(path: str | Path) -> Path:
    return Path(f"{path}{STANDIN_SIDECAR_SUFFIX}")


def weights_info(path: str | Path) -> dict[str, Any]:
    """What every score records about the weights: path, SHA-256, stand-in flag."""
    path = Path(path)
    sha256 = file_sha256(path)
    sidecar = standin_sidecar(path)
    standin = False
    if sidecar.is_file():
        # The sidecar only counts for the file it was written for, so real weights copied over a stand-in
        # are not mislabelled (and a stand-in is never labelled real: it always gets a sidecar).
        standin = json.loads(sidecar.read_text()).get("sha256") == sha256
    return {
        "path": str(path),
        "sha256": sha256,
        "sha256_matches_release_name": sha256.startswith(RELEASE_SHA256_PREFIX),
        "standin": standin,
    }


def make_standin_state_dict(seed: int = 0) -> dict[str, Any]:
    """Kaiming-normal conv weights in pytorch-fid's layout.

    pytorch-fid builds the network with ``init_weights=False`` (PyTorch's default init); with BN running
    statistics (0, 1) the activations then shrink layer by layer to ~1e-8, so FID between different sets
    is ~1e-15 and tests could not fail. Kaiming init for ReLU keeps the features O(0.1).
    """
    import torch

    from febm.evaluation.inception import build_fid_inception_architecture

    generator = torch.Generator().manual_seed(seed)
    network = build_fid_inception_architecture()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
        network.fc.weight.normal_(0.0, 0.05, generator=generator)
        network.fc.bias.zero_()
    return network.state_dict()


def write_standin(out: str | Path, seed: int = 0) -> Path:
    out = Path(out)
    save_torch_atomic(out, make_standin_state_dict(seed))
    write_json_atomic(
        standin_sidecar(out),
        {
            "standin": True,
            "seed": seed,
            "sha256": file_sha256(out),
            "note": "Kaiming-random weights in pytorch-fid's layout; numbers computed with them are not FID/IS",
        },
    )
    return out


def download_weights(
    out: str | Path, url: str = FID_WEIGHTS_URL, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download (or copy from the torch hub cache), check, and place the weights atomically at ``out``."""
    from tqdm import tqdm

    out = Path(out)
    cached = hub_cache_path()
    with atomic_path(out) as tmp:
        if cached.is_file() and cached.resolve() != out.resolve():
            tmp.write_bytes(cached.read_bytes())
        else:
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response, tmp.open("wb") as handle:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc="inception weights") as bar:
                        for chunk in iter(lambda: response.read(1 << 20), b""):
                            handle.write(chunk)
                            bar.update(len(chunk))
            except OSError as error:  # URLError, timeouts and refused connections are all OSErrors
                reason = getattr(error, "reason", error)
                raise InceptionWeightsError(
                    f"cannot download {url} ({reason}){_proxy_hint()}; on a machine without internet copy "
                    f"{WEIGHTS_FILENAME} to {out} (or to {cached}) from a machine that has it"
                ) from None
        load_state_dict(tmp)  # refuse to install a truncated or foreign file
    standin_sidecar(out).unlink(missing_ok=True)
    return out


def _proxy_hint() -> str:
    proxies = {key: value for key, value in os.environ.items() if key.lower().endswith("_proxy")}
    return f" (proxy settings: {sorted(proxies)})" if proxies else ""
