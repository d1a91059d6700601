"""CelebA's raw files -> uint8 32x32 faces (see ``febm/images/data.py`` for the layout and the cache).

``ROOT/celeba/img_align_celeba/*.jpg`` (torchvision) or ``ROOT/img_align_celeba/*.jpg``, optionally with
``list_eval_partition.txt`` beside the image folder; centre crop then PIL bilinear resize to 32x32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from febm.images.data import IMAGE_SIZE, DataError

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_PARTITION_MD5 = "d32c9cbf5e040fd4025c592c306e6668"


def celeba_missing_message(root: Path, reason: str) -> str:
    return (
        f"CelebA is not available under {str(root)!r} ({reason}). Automatic download is unreliable "
        f"(Google Drive quota); download img_align_celeba.zip from {CELEBA_PAGE} and extract it to "
        f"{root / 'celeba' / 'img_align_celeba'!s}/ (202,599 JPEGs 000001.jpg ...), plus "
        f"list_eval_partition.txt into {root / 'celeba'!s}/ if you use a split; then rerun"
    )


def find_celeba_folder(root: Path) -> Path:
    for candidate in (root / "celeba" / "img_align_celeba", root / "img_align_celeba"):
        if candidate.is_dir():
            return candidate
    raise DataError(celeba_missing_message(root, "no img_align_celeba folder"))


def celeba_files(folder: Path, split: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise DataError(
            f"the CelebA folder {str(folder)!r} holds no images (.jpg/.jpeg/.png); extract img_align_celeba.zip "
            f"from {CELEBA_PAGE} into it (202,599 JPEGs 000001.jpg ...), then rerun"
        )
    if split == "all":
        return files
    partition = folder.parent / "list_eval_partition.txt"
    if not partition.is_file():
        raise DataError(
            f"images.celeba32.split is {split!r} but {str(partition)!r} is missing; place CelebA's "
            "list_eval_partition.txt there or use split: all"
        )
    wanted = set()
    for line_number, line in enumerate(partition.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"{str(partition)!r} line {line_number} is not '<file> <0|1|2>': {line!r}")
        if int(fields[1]) == CELEBA_SPLITS[split]:
            wanted.add(fields[0])
    chosen = [p for p in files if p.name in wanted]
    if not chosen:
        raise DataError(f"no image of split {split!r} in {str(folder)!r} (per {str(partition)!r})")
    return chosen


def preprocess_face(path: Path, crop_size: int) -> np.ndarray:
    """Centre crop (0 = none) then bilinear resize to 32x32; uint8 (32, 32, 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            image.load()
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(
            f"CelebA image {str(path)!r} cannot be decoded ({error}); it is truncated or corrupted: "
            "extract img_align_celeba.zip again"
        ) from None
    if crop_size:
        width, height = image.size
        if crop_size > min(width, height):
            raise DataError(
                f"images.celeba32.crop_size {crop_size} is larger than image {str(path)!r} ({width}x{height})"
            )
        left, top = (width - crop_size) // 2, (height - crop_size) // 2
        image = image.crop((left, top, left + crop_size, top + crop_size))
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR), dtype=np.uint8)


def _preprocess_chunk(args: tuple[list[str], int]) -> np.ndarray:
    paths, crop_size = args
    return np.stack([preprocess_face(Path(p), crop_size) for p in paths])


def load_celeba(root: Path, *, split: str, crop_size: int, workers: int) -> np.ndarray:
    """All selected faces as uint8 (N, 32, 32, 3), decoded in parallel with a progress bar."""
    import concurrent.futures as futures

    from tqdm import tqdm

    files = celeba_files(find_celeba_folder(root), split)
    chunk = 512
    jobs = [([str(p) for p in files[i : i + chunk]], crop_size) for i in range(0, len(files), chunk)]
    results = []
    with tqdm(total=len(files), desc="celeba32: crop + resize", unit="img") as bar:
        if workers <= 1 or len(jobs) == 1:
            for job in jobs:
                results.append(_preprocess_chunk(job))
                bar.update(len(job[0]))
        else:
            with futures.ProcessPoolExecutor(max_workers=workers) as pool:
                for job, result in zip(jobs, pool.map(_preprocess_chunk, jobs), strict=True):
                    results.append(result)
                    bar.update(len(job[0]))
    return np.concatenate(results)
