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
from core.queue import ATTEMPT_HEADER, RUN_HEADER

from .run_scripts import CLAIM, EXPIRE

# One run, by the single-run scripts as functions (KEYS and ARGV become their parameters).
_ONE = (
    "local function expire_one(KEYS, ARGV)\n" + EXPIRE + "\nend\n"
    "local function claim_one(KEYS, ARGV)\n" + CLAIM + "\nend\n"
)

# KEYS: heartbeats, run counters, then (when ARGV[8] is 'next') the worker's stopping mark
# (`stopping_key`: a worker in its warm shutdown takes nothing more) and the render lists the
# next message must wait behind (higher priorities). ARGV: worker, now, stale after, how many to take
# (the first included), run key prefix, message copy prefix, group prefix, and either
# 'own' + run id + attempt (a delivery of that run's message) or 'next' + queue + the names of
# the message headers that carry its run id and attempt (core/queue.py).
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
  -- 'next': the run whose message its queue would deliver next (nothing of a higher priority
  -- waiting), with its group's queued runs, as that delivery would take them, without it.
  local queue = ARGV[9]
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'stopping'} end
  for i = 4, #KEYS do
    if redis.call('LLEN', KEYS[i]) > 0 then return {'behind'} end
  end
  local payload = redis.call('LINDEX', queue, -1)
  if not payload then return {'empty'} end
  local ok, message = pcall(cjson.decode, payload)
  local headers = ok and type(message) == 'table' and message['headers']
  local id = type(headers) == 'table' and headers[ARGV[10]]
  local attempt = type(headers) == 'table' and headers[ARGV[11]]
  if type(id) ~= 'string' or (type(attempt) ~= 'number' and type(attempt) ~= 'string') then
    return {'behind'}  -- not a message of ours: its delivery decides
  end
  own_outcome = take(id, tostring(attempt), message_prefix .. id)
  if own_outcome == 'claimed' then
    redis.call('LREM', queue, -1, payload)
    local fields = redis.call('HMGET', run_prefix .. id, 'render_group', 'priority')
    if fields[1] and fields[1] ~= '' then companions(ARGV[7] .. fields[2] .. ':' .. fields[1], id) end
    own_outcome = 'next'
  else
    own_outcome = 'behind'  -- taken, canceled, superseded or expired: its delivery skips it
  end
end
table.insert(out, 1, own_outcome)
return out
"""


STOPPING_PREFIX = "renderq:worker-stopping:"


def stopping_key(worker: str) -> str:
    """Set while the Celery worker `worker` (host:pid of its main process) is in its warm shutdown."""
    return STOPPING_PREFIX + worker


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

    def next(self, queue: str, higher: list[str], stopping: str, worker: str, stale_after: float, wanted: int,
             fair_slots: int = 0) -> tuple[str, list]:
        """Claim the run whose message is next on `queue` (taking the message off it) and up to
        `wanted - 1` queued runs of its group, if the lists `higher` are empty and the key
        `stopping` does not exist: ('next', taken), else ('behind' | 'empty' | 'stopping', [])."""
        return self._call([stopping, *higher], worker, stale_after, wanted,
                          ["next", queue, RUN_HEADER, ATTEMPT_HEADER, fair_slots])

    def _call(self, higher: list[str], worker: str, stale_after: float, wanted: int, tail: list) -> tuple[str, list]:
        reply = self._script(
            keys=[self.heartbeats, self.counters, *higher],
            args=[worker, time.time(), stale_after, wanted, self.run_prefix, MESSAGE_PREFIX, GROUP_PREFIX, *tail],
        )
        return reply[0], reply[1:]
