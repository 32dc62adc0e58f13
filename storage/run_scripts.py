"""The Lua scripts behind the run store's racing state changes (storage/runs.py).

Each one is a whole state change done inside Redis, so it happens once, whoever runs it: a
worker claiming a run, finishing it, a reaper taking back a run whose worker fell silent, a
cancel, an expiry. Every script that ends a run settles its credits (storage/credits.py
`SETTLE`) in the same step, and every status change is marked unannounced in the same step
(storage/run_events.py `MARK_UNANNOUNCED`), so that its events and webhook go out once even
when the process that made the change dies before announcing it.

They live apart from `RunStore` (storage/runs.py), their only caller, so that runs.py reads
as the store's operations; what each script returns is said above it, and the KEYS and ARGV
it takes are those `RunStore` passes.
"""

from __future__ import annotations

from .credits import SETTLE
from .fair_share import FUNCTIONS as FAIR
from .run_events import MARK_UNANNOUNCED

# Claim a run for rendering. Returns 'claimed' or why not: 'missing', 'superseded' (a newer
# delivery exists), 'busy' (another live worker holds it) or the run's final status. ARGV[6]: the
# fair-share slots (storage/fair_share.py): the run leaves its tenant's admitted (or staged) runs,
# and the tenant's next staged run is admitted in the same step.
CLAIM = MARK_UNANNOUNCED + FAIR + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'running' then return status end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 'superseded' end
if status == 'running' then
  local beat = redis.call('ZSCORE', KEYS[2], ARGV[5])
  if beat and (tonumber(ARGV[3]) - tonumber(beat)) < tonumber(ARGV[4]) then return 'busy' end
end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_at', ARGV[3], 'progress', '0')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
redis.call('HINCRBY', KEYS[3], 'running', 1)
fair_leave(KEYS[1], ARGV[5], ARGV[6])
redis.call('DEL', KEYS[4])  -- its queue message's copy (storage/render_groups.py): no longer needed
mark_unannounced(KEYS[1])
return 'claimed'
"""

# Write a final state, only if this delivery still owns the run. ARGV[3]: the price of what
# was rendered (milli-credits; '' unless completed), then field/value pairs, status first.
# Returns the record as written (HGETALL's flat list, for its announcement), or 0.
# KEYS[4]: the run's live preview (storage/previews.py), gone with its step once the run ends.
FINISH = SETTLE + MARK_UNANNOUNCED + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HDEL', KEYS[1], 'preview_step')
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
settle(KEYS[1], ARGV[5], ARGV[3])
mark_unannounced(KEYS[1])
return redis.call('HGETALL', KEYS[1])
"""

# Take back every running run whose heartbeat is older than the cutoff: back to queued with
# the next attempt number (so the old delivery, if it ever comes back, is superseded), or
# failed once it has used its attempts. ZREM decides which reaper wins each run. A run queued
# again counts as admitted for fair share until it is claimed (its message goes at the head).
REAP = SETTLE + MARK_UNANNOUNCED + FAIR + """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local key = ARGV[2] .. id
    if redis.call('HGET', key, 'status') == 'running' then
      local attempt = redis.call('HINCRBY', key, 'attempt', 1)
      if attempt > tonumber(ARGV[3]) then
        redis.call('HSET', key, 'status', 'failed', 'error', ARGV[4], 'completed_at', ARGV[5])
        settle(key, 'failed', '')
        redis.call('HINCRBY', KEYS[2], 'failed', 1)
        redis.call('HINCRBY', KEYS[3], 'worker-lost', 1)
        table.insert(out, id)
        table.insert(out, -attempt)
        mark_unannounced(key)
      else
        redis.call('HSET', key, 'status', 'queued', 'progress', '0', 'worker', '')
        fair_return(key, id)
        redis.call('HINCRBY', KEYS[2], 'queued', 1)
        table.insert(out, id)
        table.insert(out, attempt)
        mark_unannounced(key)
      end
    end
  end
end
return out
"""

# Cancel: a queued run ends canceled at once; a running one is flagged, and its worker's progress
# callback stops the render at the next denoising step. Returns 'canceled', 'requested', 'missing'
# or the final status it already had. ARGV[2]: the fair-share slots (as for CLAIM).
CANCEL = SETTLE + MARK_UNANNOUNCED + FAIR + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'cancel_requested', 'True', 'completed_at', ARGV[1])
  fair_leave(KEYS[1], redis.call('HGET', KEYS[1], 'run_id'), ARGV[2])
  settle(KEYS[1], 'canceled', '')
  mark_unannounced(KEYS[1])
  return 'canceled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', 'True')
  return 'requested'
end
return status
"""

# A run still queued past its start deadline ends expired, without running. One that has started
# before (queued again after its worker died) is not expired: it did start in time. ARGV[2]: the
# fair-share slots (as for CLAIM).
EXPIRE = SETTLE + MARK_UNANNOUNCED + FAIR + """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'started_at') == 1 then return 0 end
local deadline = redis.call('HGET', KEYS[1], 'start_deadline')
if not deadline or tonumber(deadline) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'expired', 'completed_at', ARGV[1])
fair_leave(KEYS[1], redis.call('HGET', KEYS[1], 'run_id'), ARGV[2])
settle(KEYS[1], 'expired', '')
mark_unannounced(KEYS[1])
return 1
"""

# A record whose run was never enqueued: its reservation goes back, then the record.
DISCARD = SETTLE + """
if redis.call('EXISTS', KEYS[1]) == 1 then settle(KEYS[1], 'failed', '') else release(ARGV[1]) end
redis.call('DEL', KEYS[1])
"""

# The reservations due for a check (at most ARGV[3]): given back when their run's record is
# gone (never written, or expired before the run ended); settled when it is final (which
# gives it back); checked again at ARGV[2] while the run is queued or running. Returns the
# run ids given back. Each run is released once, whichever worker's reaper runs this.
RECONCILE = SETTLE + """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local key = ARGV[4] .. id
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' or status == 'running' then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
  else
    if status then settle(key, status, '') end
    release(id)
    table.insert(out, id)
  end
end
return out
"""
