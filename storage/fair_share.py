"""Fair share between tenants: admission to the broker's lists, so one tenant's backlog cannot
starve the others (docs/architecture.md "Fair share").

Celery stays the executor and its lists stay the queue workers take from. What changes is when
a run's message goes onto its list: each tenant may have at most `slots`
(RENDERQ_FAIR_SHARE_SLOTS) runs *admitted* per list (one list per pool and priority), i.e. with
a message on the list, held by a worker or on its way, and not yet claimed. Its further runs
are recorded `queued` as always and wait *staged*, their message kept beside them (the copy
render groups already keep, storage/render_groups.py `message_key`). When an admitted run
leaves (claimed, canceled, expired) its tenant's oldest staged run is admitted: its message is
pushed at the tail of the list. Each tenant's next message thus goes in behind those of every
other tenant with work, and a list holds about `slots` messages per busy tenant: a worker
serves the tenants in turn, and a tenant with one run waits behind at most `slots` runs of each
other tenant, however many they have queued.

Every change is inside one Lua script, so no process dies between its steps:

- at submit, `SUBMIT` (one EVAL per create, all its runs) admits a run (LPUSH) while its tenant
  has a free slot and nothing staged, else stages it;
- the scripts that move a run out of `queued` (storage/run_scripts.py: claim, cancel, expire)
  call `fair_leave`, which takes the run out of staging or out of the admitted set and, for the
  latter, admits the tenant's next staged runs into the freed slots;
- the reap script (a worker fell silent) calls `fair_return`: the run is queued again with a
  message the reaper pushes at the head, and it counts as admitted until it is claimed.

Keys per list Q (the Redis list name, which already names the pool and priority) and tenant T:
`renderq:fair:admitted:Q` (sorted set: run → when admitted; the lost-message sweep reads its
oldest, storage/lost_messages.py), `renderq:fair:slots:Q` (hash: T → runs admitted),
`renderq:fair:staged:Q:T` (sorted set: run → created_at), `renderq:fair:backlog:Q` (a list with
one token per run staged for Q: the queue depth an autoscaler reads beside Q's own length). A
fair-share run's record carries its list (`queue`), and `fair` = "staged" while it is staged.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from .records import RunRecord
from .redis_ops import Batch, Op
from .render_groups import MESSAGE_PREFIX
from .render_stats import RenderStats

FAIR_PREFIX = "renderq:fair:"
RUN_PREFIX = "renderq:run:"  # storage/runs.py's (which imports this module)
STAGED_FLAG = "staged"
TENANTS_READ = 100  # tenants counted for a queue position; past it, the rest are left out
ADMITTED_READ = 1000  # admitted runs of a list read for a queue position (slots × busy tenants)


def admitted_key(queue: str) -> str:
    return f"{FAIR_PREFIX}admitted:{queue}"


def slots_key(queue: str) -> str:
    return f"{FAIR_PREFIX}slots:{queue}"


def staged_key(queue: str, tenant: str) -> str:
    return f"{FAIR_PREFIX}staged:{queue}:{tenant}"


def backlog_key(queue: str) -> str:
    """A Redis list as long as the runs staged for `queue`, all tenants together (one token
    each): what an autoscaler that reads list lengths (KEDA's `redis` trigger) adds to the
    length of `queue` itself, whose messages are only the admitted runs'."""
    return f"{FAIR_PREFIX}backlog:{queue}"


# fair_fill(queue, tenant, slots): admit the tenant's oldest staged runs while it has a free
# slot (slots 0, fair share turned off since they were staged: one, so that what was staged
# still goes out in turns and is never left behind). A staged run no
# longer queued is dropped; one whose message copy is gone is admitted without a message, which
# the lost-message sweep then sends (it is among the admitted runs and nowhere on the list).
# fair_leave(run key, run id, slots): the run leaves `queued`. fair_return(run key, run id): the
# run is queued again (reaped), admitted until claimed; its message goes at the head, so it is
# given the oldest score.
FUNCTIONS = f"""
local function fair_fill(queue, tenant, slots)
  local count_key = '{FAIR_PREFIX}slots:' .. queue
  local staged = '{FAIR_PREFIX}staged:' .. queue .. ':' .. tenant
  local n = tonumber(redis.call('HGET', count_key, tenant) or '0')
  local now = redis.call('TIME')
  if slots < 1 then slots = 1 end
  while n < slots do
    local popped = redis.call('ZPOPMIN', staged)
    if #popped == 0 then break end
    redis.call('LPOP', '{FAIR_PREFIX}backlog:' .. queue)
    local id = popped[1]
    local key = '{RUN_PREFIX}' .. id
    if redis.call('HGET', key, 'status') == 'queued' then
      redis.call('HDEL', key, 'fair')
      local copy = redis.call('GET', '{MESSAGE_PREFIX}' .. id)
      if copy then
        redis.call('LPUSH', queue, string.sub(copy, string.find(copy, '\\n', 1, true) + 1))
      end
      redis.call('ZADD', '{FAIR_PREFIX}admitted:' .. queue, now[1] + now[2] / 1000000, id .. '|' .. tenant)
      n = redis.call('HINCRBY', count_key, tenant, 1)
    end
  end
end

local function fair_release(queue, tenant, id, slots)
  if redis.call('ZREM', '{FAIR_PREFIX}admitted:' .. queue, id .. '|' .. tenant) == 1 then
    local count_key = '{FAIR_PREFIX}slots:' .. queue
    if redis.call('HINCRBY', count_key, tenant, -1) <= 0 then redis.call('HDEL', count_key, tenant) end
    fair_fill(queue, tenant, tonumber(slots))
  end
end

local function fair_leave(key, id, slots)
  local fields = redis.call('HMGET', key, 'queue', 'tenant')
  local queue, tenant = fields[1], fields[2] or ''
  if not queue then return end
  if redis.call('ZREM', '{FAIR_PREFIX}staged:' .. queue .. ':' .. tenant, id) == 1 then
    redis.call('LPOP', '{FAIR_PREFIX}backlog:' .. queue)
    redis.call('HDEL', key, 'fair')
    return
  end
  fair_release(queue, tenant, id, slots)
end

local function fair_return(key, id)
  local fields = redis.call('HMGET', key, 'queue', 'tenant')
  local queue, tenant = fields[1], fields[2] or ''
  if not queue then return end
  if redis.call('ZADD', '{FAIR_PREFIX}admitted:' .. queue, 0, id .. '|' .. tenant) == 1 then
    redis.call('HINCRBY', '{FAIR_PREFIX}slots:' .. queue, tenant, 1)
  end
end
"""

# The queue messages of a create: ARGV[1] slots, ARGV[2] the copies' life, then per run its id,
# list, tenant, created_at, payload, and '1' if it has a render group. The run is admitted (its
# message pushed) while its tenant has a free slot and nothing staged in that list, else staged
# (a tenant with more slots than runs admitted, after the setting was raised, has them filled at
# its next claim). A staged run's message is kept beside it, as a render-group run's always is
# (storage/render_groups.py). Returns how many were admitted.
SUBMIT = f"""
local slots, life, admitted = tonumber(ARGV[1]), ARGV[2], 0
local now = redis.call('TIME')
for i = 3, #ARGV, 6 do
  local id, queue, tenant, created, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local count_key = '{FAIR_PREFIX}slots:' .. queue
  local staged = '{FAIR_PREFIX}staged:' .. queue .. ':' .. tenant
  local n = tonumber(redis.call('HGET', count_key, tenant) or '0')
  if n < slots and redis.call('EXISTS', staged) == 0 then
    redis.call('LPUSH', queue, payload)
    redis.call('ZADD', '{FAIR_PREFIX}admitted:' .. queue, now[1] + now[2] / 1000000, id .. '|' .. tenant)
    redis.call('HINCRBY', count_key, tenant, 1)
    admitted = admitted + 1
    if ARGV[i + 5] == '1' then redis.call('SET', '{MESSAGE_PREFIX}' .. id, queue .. '\\n' .. payload, 'EX', life) end
  else
    redis.call('SET', '{MESSAGE_PREFIX}' .. id, queue .. '\\n' .. payload, 'EX', life)
    redis.call('ZADD', staged, created, id)
    redis.call('EXPIRE', staged, life)
    redis.call('LPUSH', '{FAIR_PREFIX}backlog:' .. queue, '1')
    redis.call('EXPIRE', '{FAIR_PREFIX}backlog:' .. queue, life)
    redis.call('HSET', '{RUN_PREFIX}' .. id, 'fair', '{STAGED_FLAG}')
  end
end
return admitted
"""

# Upkeep: ARGV[1] slots, ARGV[2] the list, then admitted members (run|tenant) whose runs the
# caller found no longer queued: each leaves, as the script that ended it would have made it
# leave, if its run is still not queued. Returns how many left.
REPAIR = FUNCTIONS + f"""
local out = 0
for i = 3, #ARGV do
  local id, tenant = string.match(ARGV[i], '^([^|]*)|(.*)$')
  if redis.call('HGET', '{RUN_PREFIX}' .. id, 'status') ~= 'queued' then
    if redis.call('ZREM', '{FAIR_PREFIX}staged:' .. ARGV[2] .. ':' .. tenant, id) == 1 then
      redis.call('LPOP', '{FAIR_PREFIX}backlog:' .. ARGV[2])
    end
    fair_release(ARGV[2], tenant, id, ARGV[1])
    out = out + 1
  end
end
return out
"""


def member_run(member: str) -> str:
    """The run id of a member of an admitted set ("run|tenant")."""
    return member.split("|", 1)[0]


def submit(pipe, records: list[RunRecord], slots: int, life: int) -> None:
    """In the create's transaction: every run of `records` (each with its `queue_message`,
    tenant stamped) admitted or staged, in one EVAL (EVAL, not EVALSHA: the same call on the
    sync and asyncio pipelines; Redis keeps the compiled script cached by its hash)."""
    args: list[Any] = [slots, life]
    for i, record in enumerate(records):
        assert record.queue_message is not None
        queue, payload = record.queue_message
        # Staged in submit order, a batch's runs too (they may share one created_at): a µs apart.
        order = repr(record.created_at + i * 1e-6)
        args += [record.run_id, queue, record.tenant, order, payload, "1" if record.render_group else ""]
    pipe.eval(SUBMIT, 0, *args)


def queue_position_op(record: RunRecord, stats: RenderStats, ahead_of_priority: int,
                      sample: list[str], cap: int) -> Op[tuple[int, float]]:
    """(runs ahead, seconds of work ahead) of a queued fair-share run. Ahead of it: every queued
    run of a higher priority (`ahead_of_priority`), then in its own list, when it is admitted,
    the runs admitted before it (their messages are before its own). When it is staged, with m
    runs of its own tenant before it, the list serves the tenants in turn: of every other
    tenant with runs there, m of them (m + 1 for a tenant whose turn comes before its own), as
    many as it has. The work is timed at the mean of the shapes of `sample` (queued runs)."""
    queue, tenant = record.queue or "", record.tenant

    def fill(pipe) -> None:
        pipe.zrange(admitted_key(queue), 0, ADMITTED_READ - 1)
        pipe.zrank(staged_key(queue, tenant), record.run_id)
        pipe.hmget("renderq:queued:shape", sample[:cap] or ["-"])

    members, staged_rank, shapes = yield Batch(fill)
    owners = [member.split("|", 1)[1] for member in members]
    me = f"{record.run_id}|{tenant}"
    count = ahead_of_priority + (members.index(me) if me in members else len(members))
    if staged_rank is not None:
        first: dict[str, int] = {}
        for index, owner in enumerate(owners):
            first.setdefault(owner, index)
        others = [other for other in dict.fromkeys(owners) if other != tenant][:TENANTS_READ]

        def fill_counts(pipe) -> None:
            for other in others:
                pipe.zcard(staged_key(queue, other))

        counts = (yield Batch(fill_counts)) if others else []
        mine = owners.count(tenant) + staged_rank
        mine_first = first.get(tenant, len(owners))
        count = ahead_of_priority + mine
        for other, staged in zip(others, counts):
            turns = mine + (1 if first[other] < mine_first else 0)
            count += min(owners.count(other) + int(staged), turns)
    known = Counter(shape for shape in shapes if shape is not None)
    read = sum(known.values())
    mean = sum(stats.run_seconds(json.loads(shape)) * n for shape, n in known.items()) / read if read else stats.overhead
    return count, mean * count


def repair_op(queues: list[str], slots: int, now: float | None = None, older_than: float = 60.0) -> Op[int]:
    """Runs admitted more than `older_than` seconds ago whose record is no longer queued: only
    a record that expired while queued can leave one (every script that ends a run makes it
    leave). They leave, and their tenants' next staged runs are admitted. Returns how many."""
    now = time.time() if now is None else now

    def fill(pipe) -> None:
        for queue in queues:
            pipe.zrangebyscore(admitted_key(queue), "-inf", now - older_than, start=0, num=500)

    listed = yield Batch(fill)
    suspects = [(queue, member) for queue, members in zip(queues, listed) for member in members]
    if not suspects:
        return 0

    def fill_status(pipe) -> None:
        for _, member in suspects:
            pipe.hget(RUN_PREFIX + member_run(member), "status")

    statuses = yield Batch(fill_status)
    gone: dict[str, list[str]] = {}
    for (queue, member), status in zip(suspects, statuses):
        if status != "queued":
            gone.setdefault(queue, []).append(member)
    if not gone:
        return 0

    def fill_repair(pipe) -> None:
        for queue, members in gone.items():
            pipe.eval(REPAIR, 0, slots, queue, *members)

    return sum((yield Batch(fill_repair)))
