"""What a run costs, in credits, from a price table in a data file (`RENDERQ_PRICES_FILE`,
default core/data/prices.json).

    price = rate × output megapixels × denoising steps   (entries with `per_megapixel_step`)
    price = rate × output megapixels                     (entries with `per_megapixel`)

summed over the run's images and rounded up to the milli-credit. Amounts are integer
milli-credits (1 credit = 1000) everywhere inside renderq, so sums and balances are exact;
the API shows credits with three decimals. `default` prices every operation the table does
not list. Denoising steps are the steps the pipeline really runs: `num_inference_steps`, or
for operations with a `strength` (image-to-image, variations, inpaint, outpaint) the
min(int(steps × strength), steps) that diffusers runs (pipelines/diffusion.py `steps_run`).

Plain dicts in, integers out: the API prices a request before it runs, the worker prices the
images it rendered, with the same function.
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from core.settings import DATA_DIR, Settings

MILLI = 1000  # milli-credits per credit
DEFAULT_PRICES = DATA_DIR / "prices.json"
DEFAULT_ENTRY = "default"


def credits(millicredits: int | None) -> float | None:
    """Milli-credits as credits (three decimals), for answers."""
    return None if millicredits is None else round(millicredits / MILLI, 3)


def millicredits(amount: str | float | Decimal) -> int:
    """Credits (at most three decimals) as milli-credits; ValueError otherwise."""
    value = Decimal(str(amount)) * MILLI
    if value != value.to_integral_value():
        raise ValueError(f"{amount}: credits have at most three decimals")
    return int(value)


class PriceEntry(BaseModel):
    per_megapixel_step: Decimal | None = Field(None, ge=0, description="Credits per output megapixel per denoising step.")
    per_megapixel: Decimal | None = Field(None, ge=0, description="Credits per output megapixel (no steps).")

    @model_validator(mode="after")
    def _one_rate(self) -> "PriceEntry":
        if (self.per_megapixel_step is None) == (self.per_megapixel is None):
            raise ValueError("give exactly one of per_megapixel_step and per_megapixel")
        return self

    @property
    def per_step(self) -> bool:
        return self.per_megapixel_step is not None

    @property
    def rate(self) -> Fraction:
        """Milli-credits per output pixel (per step), exact."""
        return Fraction(self.per_megapixel_step if self.per_step else self.per_megapixel) * MILLI / 1_000_000


def denoising_steps(request: dict[str, Any]) -> int:
    steps = int(request.get("num_inference_steps") or 1)
    strength = request.get("strength")
    return steps if strength is None else min(int(steps * float(strength)), steps)


class PriceTable:
    def __init__(self, entries: dict[str, PriceEntry]) -> None:
        if DEFAULT_ENTRY not in entries:
            raise ValueError(f"the price table needs a {DEFAULT_ENTRY!r} entry")
        self.entries = entries
        # Each rate as an exact fraction (numerator, denominator): integer arithmetic per price.
        self._rates = {name: (e.per_step, e.rate.numerator, e.rate.denominator) for name, e in entries.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> "PriceTable":
        return _load(settings.prices_file)

    def entry(self, operation: str) -> tuple[str, PriceEntry]:
        """(the entry's name, the entry) that prices `operation`."""
        name = operation.replace("_", "-")
        return (name, self.entries[name]) if name in self.entries else (DEFAULT_ENTRY, self.entries[DEFAULT_ENTRY])

    def price(self, operation: str, request: dict[str, Any], pixels: int) -> int:
        """Milli-credits for `pixels` output pixels (all images together) of `operation` run with `request`."""
        per_step, numerator, denominator = self._rates.get(operation) or self._rates[self.entry(operation)[0]]
        steps = denoising_steps(request) if per_step else 1
        return -(-numerator * pixels * steps // denominator)  # rounded up


@lru_cache(maxsize=4)
def _load(path: Path) -> PriceTable:
    raw = json.loads(Path(path).read_text(), parse_float=Decimal)
    return PriceTable({name: PriceEntry.model_validate(item) for name, item in raw["operations"].items()})
