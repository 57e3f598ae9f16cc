"""How close two float32 logit tensors must be to count as the same model.

Export, simplification and pruning must not change a model's function, but float32 arithmetic
in another order (a fused BN, another conv algorithm) moves every logit by a few units in the
last place: about 1e-7 of its size. A fixed absolute limit then fails models with large logits
(2e3 after a short training) although they are exact, while a purely relative one would excuse
anything in logits near zero. The limit is both: `atol + rtol * max|reference logit|`. A real
mismatch (a dropped channel, wrong weights) moves logits by a sizeable fraction of their scale,
orders of magnitude above `rtol`. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdd_edge.errors import PddError


@dataclass(frozen=True)
class LogitTolerance:
    atol: float = 1e-4
    rtol: float = 1e-5  # ~100 float32 ulps of the largest logit

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise PddError(f"tolerances must be non-negative, got atol={self.atol}, rtol={self.rtol}")

    def limit(self, scale: float) -> float:
        """The largest accepted absolute difference for logits whose largest magnitude is `scale`."""
        return self.atol + self.rtol * scale

    def describe(self, scale: float) -> str:
        return f"{self.atol:g} + {self.rtol:g} x max|logit| {scale:.3g} = {self.limit(scale):.3g}"
