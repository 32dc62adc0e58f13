"""What a request will cost, and holding it against the tenant's credits at submit.

The price formula and table are storage/prices.py; balances and settlement storage/credits.py.
Here: the estimate of a request (each request knows its output sizes,
pipelines/request_parts.py `output_sizes`), and the admission step that reserves the estimate of every run created, or refuses them all
with a 402 problem. `install_admission` makes it the run store's admission hook when the app
starts (api/app.py); api/services.py, the container of stores, knows nothing of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipelines.registry import OPERATIONS
from pipelines.request_parts import ASSUMED_SIDE, RenderRequest
from storage.assets import ASSET_PREFIX
from storage.credits import CreditStore
from storage.prices import PriceTable, credits, denoising_steps
from storage.records import RunRecord
from storage.redis_ops import Batch, Op

from .auth import admit_runs
from core.problems import ProblemError

Size = tuple[int, int]

# How long an API process takes a tenant found unmetered to still be unmetered. Without this,
# every submit of an unmetered tenant (most deployments: credits are opt-in) pays one more
# Redis round trip for a reservation that holds nothing, ~15 % of a submit's cost. The price:
# a tenant's first grant applies to runs submitted up to this long after it (README).
UNMETERED_RECHECK_SECONDS = 1.0


@dataclass
class UnmeteredTenants:
    """Tenants this process found unmetered, and until when it believes it (monotonic time)."""

    until: dict[str, float] = field(default_factory=dict)

    def known(self, tenant: str) -> bool:
        return self.until.get(tenant, 0.0) > time.monotonic()

    def remember(self, tenant: str) -> None:
        self.until[tenant] = time.monotonic() + UNMETERED_RECHECK_SECONDS


@dataclass(frozen=True)
class Estimate:
    millicredits: int
    sizes: list[Size]  # one per output image
    steps: int  # denoising steps priced (1 for entries priced per megapixel)
    entry: str  # the price-table entry used ("default" for operations it does not list)
    assumed: str | None  # what the estimate had to assume, if anything


def estimate(
    prices: PriceTable, operation: str, request: RenderRequest, input_sizes: dict[str, Size], fields: dict | None = None
) -> Estimate:
    """`fields`: the request as a dict, when the caller has it already (a run record's)."""
    sizes, assumed = request.output_sizes(input_sizes)
    fields = request.model_dump(mode="json") if fields is None else fields
    name, entry = prices.entry(operation)
    cost = prices.price(operation, fields, sum(w * h for w, h in sizes))
    return Estimate(cost, sizes, denoising_steps(fields) if entry.per_step else 1, name, assumed)


def _record_estimate_op(prices: PriceTable, record: RunRecord) -> Op[int]:
    """A new run's estimate, its input images' sizes read from their asset records."""
    spec = OPERATIONS.get(record.operation)
    if spec is None:  # not a registered operation: its fields' width × height (or 512²) × num_images
        fields = record.request
        pixels = int(fields.get("width") or ASSUMED_SIDE) * int(fields.get("height") or ASSUMED_SIDE)
        return prices.price(record.operation, fields, pixels * int(fields.get("num_images") or 1))
    # Typed at submit; a retry's is read back from the record it repeats.
    request = record.typed_request or spec.request.model_validate(record.request)
    inputs = request.input_assets()
    sizes: dict[str, Size] = {}
    if inputs:
        def fill(pipe) -> None:
            for asset_id in inputs.values():
                pipe.hmget(ASSET_PREFIX + asset_id, "width", "height")

        rows = yield Batch(fill)
        sizes = {slot: (int(w), int(h)) for slot, (w, h) in zip(inputs, rows) if w and h}
    return estimate(prices, record.operation, request, sizes, record.request).millicredits


def reserve_credits(services, records: list[RunRecord], unmetered: UnmeteredTenants) -> Op[int]:
    """Price every run about to be created and hold the total against the tenant's credits,
    all or none: a 402 problem when they do not cover it. Returns what was held (0 for an
    unmetered tenant). `unmetered`: the tenants this process found unmetered a moment ago,
    whose submits skip the reservation."""
    for record in records:
        if record.credits_estimate is None:
            record.credits_estimate = yield from _record_estimate_op(services.prices, record)
    estimates = {record.run_id: record.credits_estimate for record in records}
    total = sum(estimates.values())
    tenant = records[0].tenant
    required = services.settings.credits_required
    if not required and unmetered.known(tenant):
        return 0
    reservation = yield from CreditStore.reserve_op(tenant, estimates, required)
    if reservation.outcome == 0:
        unmetered.remember(tenant)
    if not reservation.granted:
        what = "this request is" if len(records) == 1 else f"these {len(records)} runs are"
        has = "has never been granted credits" if reservation.outcome == -2 else f"has {credits(reservation.available)} credits available"
        raise ProblemError(
            "insufficient-credits", 402, detail=f"{what} estimated at {credits(total)} credits; tenant {tenant!r} {has}",
            estimated_cost=credits(total), credits_remaining=credits(reservation.available), currency="credits",
        )
    for record in records:
        record.credits_held = reservation.held
    return total if reservation.held else 0


def admit(services, records: list[RunRecord], unmetered: UnmeteredTenants) -> Op[None]:
    """RunStore's admission hook: the runs' credits, then the calling key's cap on active runs
    (api/auth.py); a refusal of the second gives back what the first held."""
    held = yield from reserve_credits(services, records, unmetered)
    try:
        yield from admit_runs(services, records)
    except ProblemError:
        if held:
            yield from CreditStore.release_op([record.run_id for record in records])
        raise


def install_admission(services) -> None:
    """Make `admit` the admission hook of `services.runs`, so every way of creating runs
    (submit, operations, batches, retry) reserves credits, then takes the key's slots.
    Called when the app starts (api/app.py), once per Services: one memory of unmetered
    tenants per process, and nothing built per request."""
    unmetered = UnmeteredTenants()
    services.runs.admission = lambda records: admit(services, records, unmetered)
