"""Where the sample databases are (``shared/datasets`` beside the checkout: they are not
committed into the project). A checkout elsewhere (a clone in a temporary directory) finds the
workplace's copy."""

from __future__ import annotations

from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = _BESIDE if _BESIDE.is_dir() else Path("/work/shared/datasets")
