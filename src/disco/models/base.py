"""What every layer of the portable format shares: shapes, names and canonical weight facts.

Kept apart from `disco.models.spec` so that layer families in their own modules
(`disco.models.transformer`) and the format's layer union can both import it.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GPT_INIT_STD", "Initializer", "LayerBase", "LayerName", "Shape", "WeightInfo"]

Shape = tuple[int, ...]
LayerName = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=64)]

Initializer = Literal["glorot_uniform", "zeros", "ones", "normal", "normal_residual"]
"""How `init_weights` fills a tensor: Keras's glorot_uniform, constants, or GPT-2's normal.

``normal`` draws from N(0, 0.02²); ``normal_residual`` from N(0, (0.02 / sqrt(2 · blocks))²),
``blocks`` being the model's number of transformer blocks (GPT-2's scaled residual projections).
"""

GPT_INIT_STD: Final = 0.02
"""Standard deviation of GPT-2's normal initialisation."""


class WeightInfo(BaseModel):
    """One canonical weight tensor of a layer: suffix, shape, trainability and initialiser."""

    model_config = ConfigDict(frozen=True)

    suffix: str
    shape: Shape
    trainable: bool
    init: Initializer


class LayerBase(BaseModel):
    """Fields and shape rules shared by every layer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: LayerName | None = None

    def output_shape(self, shape: Shape) -> Shape:
        """Output shape for the per-sample input `shape` (ValueError if it cannot fit)."""
        return shape

    def weights(self, shape: Shape) -> list[WeightInfo]:
        """Canonical weights for an input of `shape`, in TF.js order within the layer."""
        return []
