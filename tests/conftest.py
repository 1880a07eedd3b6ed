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
    if not path.exists():
        pytest.fail(f"shared data missing: {path} (tests read ../shared from the project root)")
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
