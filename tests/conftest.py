"""Shared fixtures: paths to the shared real data, and model helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NCNNC_SHARED", ROOT.parent / "shared"))
SQUEEZENET = SHARED / "models" / "squeezenet_v1.1"
IMAGES = SHARED / "images" / "imagenet-sample"


def _require(path: Path) -> Path:
    """The shared data path; without it a test fails in CI (which has it) and skips elsewhere, saying why."""
    if not path.exists():
        message = (f"shared data missing: {path} (these tests read ../shared from the project root, or "
                   "$NCNNC_SHARED; the bundled example's tests run without it)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def squeezenet_dir() -> Path:
    """The shared SqueezeNet v1.1 folder."""
    return _require(SQUEEZENET)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """The 500 shared ImageNet images."""
    return _require(IMAGES)


@pytest.fixture(scope="session")
def image_paths(images_dir: Path) -> list[Path]:
    """All shared image paths, sorted by name (first 100 = calibration split)."""
    return sorted(images_dir.iterdir())


@pytest.fixture(scope="session")
def synset_words(squeezenet_dir: Path) -> Path:
    """The ImageNet class list."""
    return squeezenet_dir / "synset_words.txt"


@pytest.fixture(scope="session")
def require_cross():
    """A check to call before running aarch64 code: fails in CI (which installs the cross toolchain and
    qemu), skips elsewhere, when ``aarch64-linux-gnu-gcc`` or ``qemu-aarch64`` is missing."""
    import shutil

    from ncnnc.backends.llvm.native import CROSS_PACKAGES

    def check() -> None:
        missing = [tool for tool in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if shutil.which(tool) is None]
        if missing:
            message = f"{', '.join(missing)} missing: {CROSS_PACKAGES}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)

    return check
