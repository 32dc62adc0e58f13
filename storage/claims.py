"""Claiming runs for rendering, several at a time, in one script: a run by its own queue message
together with the queued runs of its render group (micro-batching), or the next runs of a group
whose next queue message is theirs anyway (a worker draining a backlog keeps going without a
round trip through Celery). Each run is claimed by the same steps as a claim of one run
(storage/run_scripts.py `CLAIM`, after `EXPIRE` for a start deadline that has passed), so any
number of workers and reapers can race for the same runs: each is claimed once."""

from __future__ import annotations

import time

import redis

from .render_groups import GROUP_PREFIX, MESSAGE_PREFIX
from .run_scripts import CLAIM, EXPIRE

# One run, by the single-run scripts as functions (KEYS and ARGV become their parameters).
_ONE = (
    "local function expire_one(KEYS, ARGV)\n" + EXPIRE + "\nend\n"
    "local function claim_one(KEYS, ARGV)\n" + CLAIM + "\nend\n"
)

# KEYS: heartbeats, run counters, then the render lists a group's next message must wait behind
# (higher priorities) when ARGV[8] is 'next'. ARGV: worker, now, stale after, how many to take
# (the first included), run key prefix, message copy prefix, group prefix, and either
# 'own' + run id + attempt (a delivery of that run's message) or 'next' + group key + queue.
# The last ARGV: the fair-share slots (storage/fair_share.py), which the single-run scripts take.
# Returns {own outcome, {run id, 'claimed' | 'expired'}...}; 'claimed' entries are followed by
# their hash (HGETALL's flat list).
CLAIM_GROUP = _ONE + """
local worker, now, stale, wanted = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local slots = ARGV[#ARGV]
local run_prefix, message_prefix = ARGV[5], ARGV[6]
local out, taken = {}, 0

local function take(id, attempt, message_key)
  local key = run_prefix .. id
  if expire_one({key}, {now, slots}) == 1 then
    table.insert(out, {id, 'expired'})
    return 'expired'
  end
  local outcome = claim_one({key, KEYS[1], KEYS[2], message_key}, {attempt, worker, now, stale, id, slots})
  if outcome == 'claimed' then
    taken = taken + 1
    table.insert(out, {id, 'claimed', redis.call('HGETALL', key)})
  end
  return outcome
end

-- Take the group's queued runs (oldest first) and their queue messages off their lists.
local function companions(group, own)
  while taken < wanted do
    local popped = redis.call('ZPOPMIN', group)
    if #popped == 0 then return end
    local id = popped[1]
    if id ~= own then
      local attempt = redis.call('HGET', run_prefix .. id, 'attempt')
      if attempt then
        local copy = redis.call('GET', message_prefix .. id)
        if take(id, attempt, message_prefix .. id) == 'claimed' and copy then
          local cut = string.find(copy, '\\n', 1, true)
          redis.call('LREM', string.sub(copy, 1, cut - 1), -1, string.sub(copy, cut + 1))
        end
      end
    end
  end
end

local own_outcome
if ARGV[8] == 'own' then
  local id = ARGV[9]
  own_outcome = take(id, ARGV[10], message_prefix .. id)
  if own_outcome == 'claimed' then
    local fields = redis.call('HMGET', run_prefix .. id, 'render_group', 'priority')
    if fields[1] and fields[1] ~= '' then companions(ARGV[7] .. fields[2] .. ':' .. fields[1], id) end
  end
else
  -- 'next': only when the group's oldest run's message is the next one its queue would deliver
  -- and no higher priority waits, so that continuing changes no one's turn.
  local group, queue = ARGV[9], ARGV[10]
  for i = 3, #KEYS do
    if redis.call('LLEN', KEYS[i]) > 0 then return {'behind'} end
  end
  local oldest = redis.call('ZRANGE', group, 0, 0)
  if #oldest == 0 then return {'empty'} end
  local copy = redis.call('GET', message_prefix .. oldest[1])
  local cut = copy and string.find(copy, '\\n', 1, true)
  if not cut or string.sub(copy, 1, cut - 1) ~= queue or redis.call('LINDEX', queue, -1) ~= string.sub(copy, cut + 1) then
    return {'behind'}
  end
  own_outcome = 'next'
  companions(group, nil)
end
table.insert(out, 1, own_outcome)
return out
"""


class Claims:
    """The multi-run claims of a run store (storage/runs.py `RunStore.claim_group`/`claim_next`)."""

    def __init__(self, client: redis.Redis, run_prefix: str, heartbeats: str, counters: str) -> None:
        self._script = client.register_script(CLAIM_GROUP)
        self.run_prefix = run_prefix
        self.heartbeats = heartbeats
        self.counters = counters

    def own(self, run_id: str, attempt: int, worker: str, stale_after: float, wanted: int,
            fair_slots: int = 0) -> tuple[str, list]:
        """Claim `run_id` by its message and up to `wanted - 1` queued runs of its group."""
        return self._call([], worker, stale_after, wanted, ["own", run_id, attempt, fair_slots])

    def next(self, group_key: str, queue: str, higher: list[str], worker: str, stale_after: float, wanted: int,
             fair_slots: int = 0) -> tuple[str, list]:
        """Claim up to `wanted` runs of the group `group_key` if its oldest run's message is next on
        `queue` and the lists `higher` are empty: ('next', taken), else ('behind' | 'empty', [])."""
        return self._call(higher, worker, stale_after, wanted, ["next", group_key, queue, fair_slots])

    def _call(self, higher: list[str], worker: str, stale_after: float, wanted: int, tail: list) -> tuple[str, list]:
        reply = self._script(
            keys=[self.heartbeats, self.counters, *higher],
            args=[worker, time.time(), stale_after, wanted, self.run_prefix, MESSAGE_PREFIX, GROUP_PREFIX, *tail],
        )
        return reply[0], reply[1:]
