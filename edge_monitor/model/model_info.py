"""How messages name the model: one place builds the ``model`` objects of alerts, status and discovery."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_monitor.model.bundle import ModelBundle

__all__ = ["model_info", "model_ref"]


def model_ref(bundle: ModelBundle) -> dict[str, str]:
    """``{"name", "sha256"}``: the bundle folder's name and model.tflite's SHA-256 (hex)."""
    return {"name": bundle.path.name, "sha256": bundle.sha256}


def model_info(bundle: ModelBundle, threshold: float | None = None) -> dict[str, object]:
    """:func:`model_ref` plus ``machine`` and ``threshold`` (the publisher's discovery and status).

    ``threshold`` overrides the bundle's (the config's ``decision.threshold``).
    """
    return {**model_ref(bundle), "machine": bundle.machine,
            "threshold": bundle.threshold if threshold is None else threshold}
