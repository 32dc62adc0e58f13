"""Per-key cap on active (queued + running) runs.

Each key has a sorted set of the runs it has in flight (score: when reserved). Reserving
prunes members whose run is no longer queued or running (reading the run records, so a status
added later, like a cancel, frees its slot with no change here): the oldest few every time, all
of them when the key looks at its cap; then it adds the new runs only if they fit under the cap. One Lua script, so two racing submits cannot both take
the last slot.
"""

from __future__ import annotations

import time

import redis

from .redis_ops import Batch, Op, run
from .runs import RUN_PREFIX

ACTIVE_PREFIX = "renderq:active:"

# A reserved run whose record is not written yet is kept this long before it counts as gone.
_GRACE_SECONDS = 30

# ARGV: run prefix, now, cap, grace seconds, TTL, prune count, run ids. Prunes the `prune count`
# oldest members (finished runs are mostly the oldest: each submit keeps the set near the key's
# real load at a bounded cost), and all of them only when the set looks full, so the cap is exact
# where it matters and a key's backlog does not make every submit read every run it has.
_RESERVE = """
local now = tonumber(ARGV[2])
local function prune(last)
  local members = redis.call('ZRANGE', KEYS[1], 0, last, 'WITHSCORES')
  for i = 1, #members, 2 do
    local status = redis.call('HGET', ARGV[1] .. members[i], 'status')
    if status then
      if status ~= 'queued' and status ~= 'running' then redis.call('ZREM', KEYS[1], members[i]) end
    elseif tonumber(members[i + 1]) < now - tonumber(ARGV[4]) then
      redis.call('ZREM', KEYS[1], members[i])
    end
  end
end
local wanted = #ARGV - 6
prune(tonumber(ARGV[6]) - 1)
local active = redis.call('ZCARD', KEYS[1])
if active + wanted > tonumber(ARGV[3]) then
  prune(-1)
  active = redis.call('ZCARD', KEYS[1])
  if active + wanted > tonumber(ARGV[3]) then return active end
end
for i = 7, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return -1
"""
# Members checked on every reservation (more only when the key looks at its cap).
_PRUNE_EACH_TIME = 16


class ActiveRuns:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds

    def reserve(self, key_id: str, run_ids: list[str], cap: int) -> int | None:
        return run(self.redis, self.reserve_op(key_id, run_ids, cap))

    def reserve_op(self, key_id: str, run_ids: list[str], cap: int) -> Op[int | None]:
        """Take slots for `run_ids`; None when taken, else how many runs are already active."""
        args = [RUN_PREFIX, time.time(), cap, _GRACE_SECONDS, self.retention_seconds, _PRUNE_EACH_TIME, *run_ids]
        # EVAL (not EVALSHA): the same call on sync and asyncio pipelines; Redis keeps the
        # compiled script cached by its hash either way.
        (result,) = yield Batch(lambda pipe: pipe.eval(_RESERVE, 1, ACTIVE_PREFIX + key_id, *args))
        return None if int(result) < 0 else int(result)

    def release(self, key_id: str, run_ids: list[str]) -> None:
        if run_ids:
            self.redis.zrem(ACTIVE_PREFIX + key_id, *run_ids)
