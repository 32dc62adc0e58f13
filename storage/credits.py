"""Credit balances of tenants, and the charge of each run: reserved at submit, settled once
when the run ends.

Redis layout (no TTL: balances live until an operator changes them):
  renderq:credits:<tenant>   hash: balance (milli-credits granted minus charges settled),
                             reserved (estimates of the tenant's runs not ended yet)
A tenant without that hash has never been granted credits: it is unmetered (nothing is
deducted), unless `RENDERQ_CREDITS_REQUIRED` is on, which refuses its runs.

The charge of a run lives on its record (storage/records.py): `credits_estimate` (reserved at
submit), `credits_held` (whether it was reserved against a balance), and once it has ended
`credits_used` and `credits_remaining`. `SETTLE` is a Lua function that the scripts moving a
run to a final state (storage/run_scripts.py: finish, cancel, expire, reap, discard) call in the same
script, so a run is settled exactly once, with its final status, whoever ends it:
  completed → the price of what was rendered, never more than the estimate;
  canceled  → the estimate × the share of denoising steps that ran (progress), rounded down;
  failed, expired, worker lost → 0.
The reservation is released in the same step.

Each run's reservation is also kept on its own, apart from its record, so that it comes back
even when no final state is ever written (Redis failing between the reservation and the
write of the runs; a queued run whose record expires before it starts):
  renderq:credit-holds        sorted set: run id → when the reaper next checks it
  renderq:credit-holds:runs   hash: run id → "<estimate> <tenant>"
Whoever removes a run's entry from the hash (settlement, a refusal after reserving, or the
reaper's `release_orphaned_credits` in storage/runs.py) gives its estimate back, so it is given back once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from .redis_ops import Batch, Op, run

ACCOUNT_PREFIX = "renderq:credits:"
HOLDS = "renderq:credit-holds"
HOLD_RUNS = "renderq:credit-holds:runs"
# A reservation is first checked this long after it is made (its records are written a few
# milliseconds later), then again as often while its run is queued or running.
HOLD_CHECK_SECONDS = 120

# release(run id): give back the run's reservation if it is still held; returns the tenant's
# reserved credits after, or false if there was nothing to give back.
RELEASE = """
local function release(id)
  local hold = redis.call('HGET', '""" + HOLD_RUNS + """', id)
  if not hold then return false end
  redis.call('HDEL', '""" + HOLD_RUNS + """', id)
  redis.call('ZREM', '""" + HOLDS + """', id)
  local space = string.find(hold, ' ', 1, true)
  local account = '""" + ACCOUNT_PREFIX + """' .. string.sub(hold, space + 1)
  return redis.call('HINCRBY', account, 'reserved', -tonumber(string.sub(hold, 1, space - 1)))
end
"""

# settle(run key, final status, price of what was rendered or ''). Idempotent: a run that
# has `credits_used` is settled already.
SETTLE = RELEASE + """
local function settle(key, status, rendered)
  if redis.call('HEXISTS', key, 'credits_used') == 1 then return end
  local estimate = tonumber(redis.call('HGET', key, 'credits_estimate') or '0') or 0
  local used = 0
  if status == 'completed' then
    used = math.min(tonumber(rendered) or estimate, estimate)
  elseif status == 'canceled' then
    used = math.floor(estimate * (tonumber(redis.call('HGET', key, 'progress') or '0') or 0) / 100)
  end
  redis.call('HSET', key, 'credits_used', string.format('%d', used))
  if redis.call('HGET', key, 'credits_held') == 'True' then
    local account = '""" + ACCOUNT_PREFIX + """' .. (redis.call('HGET', key, 'tenant') or '')
    -- Given back already (the reaper found no record yet): charge it, release nothing twice.
    local reserved = release(redis.call('HGET', key, 'run_id') or '') or tonumber(redis.call('HGET', account, 'reserved') or '0')
    local balance = redis.call('HINCRBY', account, 'balance', -used)
    redis.call('HSET', key, 'credits_remaining', string.format('%d', balance - reserved))
  end
end
"""

# Reserve ARGV[1] milli-credits, the sum of the (run id, estimate) pairs from ARGV[5], for
# tenant ARGV[4], each run's hold first checked at ARGV[3]. {1, available after}: held;
# {0, 0}: unmetered (no account); {-1, available}: refused; {-2, 0}: no account while
# ARGV[2] == '1' (credits required).
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[2] == '1' then return {-2, 0} end
  return {0, 0}
end
local available = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0') - tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local wanted = tonumber(ARGV[1])
if available < wanted then return {-1, available} end
redis.call('HINCRBY', KEYS[1], 'reserved', wanted)
for i = 5, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[4])
end
return {1, available - wanted}
"""


_RELEASE_ALL = RELEASE + """
for _, id in ipairs(ARGV) do release(id) end
"""


@dataclass(frozen=True)
class Account:
    """A tenant's credits, in milli-credits."""

    tenant: str
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        """What new runs may reserve: the balance less the runs in flight."""
        return self.balance - self.reserved


@dataclass(frozen=True)
class Reservation:
    outcome: int  # 1 held, 0 unmetered (nothing held), -1 not enough, -2 never granted (credits required)
    available: int  # after the reservation when held, else what there was

    @property
    def granted(self) -> bool:
        return self.outcome >= 0

    @property
    def held(self) -> bool:
        return self.outcome == 1


class CreditStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def grant(self, tenant: str, amount: int) -> Account:
        """Add `amount` milli-credits (negative: take back) to the tenant's balance; the
        first grant makes a tenant metered."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(ACCOUNT_PREFIX + tenant, "balance", amount)
            pipe.hincrby(ACCOUNT_PREFIX + tenant, "reserved", 0)
            balance, reserved = pipe.execute()
        return Account(tenant, int(balance), int(reserved))

    def account(self, tenant: str) -> Account | None:
        return run(self.redis, self.account_op(tenant))

    @staticmethod
    def account_op(tenant: str) -> Op[Account | None]:
        """The tenant's credits, or None for an unmetered tenant."""
        (raw,) = yield Batch(lambda pipe: pipe.hgetall(ACCOUNT_PREFIX + tenant))
        if not raw:
            return None
        return Account(tenant, int(raw.get("balance", 0)), int(raw.get("reserved", 0)))

    @staticmethod
    def reserve_op(tenant: str, estimates: dict[str, int], required: bool) -> Op[Reservation]:
        """Atomically hold the estimates (run id → milli-credits) of runs about to be written
        against the tenant's available credits, all or none."""
        args = [sum(estimates.values()), "1" if required else "0", time.time() + HOLD_CHECK_SECONDS, tenant]
        for run_id, amount in estimates.items():
            args += [run_id, amount]
        # EVAL (not EVALSHA): the same call on sync and asyncio pipelines (see storage/quotas.py).
        ((outcome, available),) = yield Batch(
            lambda pipe: pipe.eval(_RESERVE, 3, ACCOUNT_PREFIX + tenant, HOLDS, HOLD_RUNS, *args)
        )
        return Reservation(int(outcome), int(available))

    @staticmethod
    def release_op(run_ids: list[str]) -> Op[None]:
        """Give back the reservations of runs never written (refused after reserving)."""
        yield Batch(lambda pipe: pipe.eval(_RELEASE_ALL, 0, *run_ids))
