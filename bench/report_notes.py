"""The closing section of BENCHMARKS.md: what was changed to reach the figures, and the limits
that remain. Hand-written prose, not computed from results; kept apart so that bench/report.py
is only the code that turns results into tables.
"""

NOTES = """## What was changed to get here, and where the limits are

Profiled with py-spy (`py-spy record -p PID -f raw`) on the API and on both worker processes
while the benchmarks ran, and with cProfile on the ASGI app in-process; every change keeps the
API's behaviour and passes the suite's tests of the paths it touches.

API (one process):
- Submit writes the run record and its Celery message in **one Redis transaction**
  (api/submission.py `create_and_enqueue`, core/queue.py `render_message`: Celery's own
  `as_task_v2` + kombu's channel encoding, no I/O, pushed in the record's MULTI). `send_task`
  alone cost ~600 µs, more than the rest of a submit, and was a second round trip; now a record
  never exists without its message. Falls back to `send_task` when the broker is another Redis
  or in `renderq dev`; batches and image operations still write, then `send_task`.
- Status reads of a finished run read nothing for an estimate (it has none); for a queued or
  running run the global inputs of the estimate (render stats, runs in progress, busy workers)
  are read at most once a second per process (api/estimates.py), the queue position fresh but
  in two round trips instead of up to six, over at most 50 queued shapes instead of 200
  (storage/run_index.py). Every submit answers with its estimate, so this helps submits too.
- Signed S3 URLs: botocore's `S3SigV4QueryAuth` directly (same URL byte for byte) instead of
  `generate_presigned_url`, which resolved the endpoint ruleset on every call (754 → 195 µs),
  and a URL is reused while it has ≥ 90 % of its life left (storage/images.py `RecentUrls`),
  keeping the expiry it was signed with: still ≤ 15 min and never past the run.
- **Submit and status reads are `async` routes on redis.asyncio** (api/routes/generations.py):
  no hop to the thread pool and back per request, which py-spy put at 20–28 % of a status
  read's CPU (anyio's `run_sync`, thread wake-ups, `Condition.notify`). The storage code is not
  copied for asyncio: an operation is written once as a generator that yields batches of
  commands for a pipeline and gets their replies back (storage/redis_ops.py); `run(client, op)`
  drives it on the sync client (workers, the other routes, the CLI), `run_async(aclient, op)` on
  redis.asyncio. Run get/create (with the record's queue message and the per-key admission
  reservation in the same transaction round), render stats, runs in progress, queue position
  and the estimate inputs are such operations; the sync methods (`RunStore.get`, `create_many`,
  …) call them. The async client is the twin of the store's own connection
  (storage/redis_client.py `async_twin`), so an injected store is what both clients talk to.
  `Prefer: wait` polls on the event loop instead of holding a thread.
- The run view is serialized once: the hot routes return a `Response` from
  `RunView.model_dump_json()`, so FastAPI skips validating and serializing it again against
  `response_model` (which still documents it in OpenAPI); same JSON.
- The auth guard and the hot routes read the services from the request instead of through a
  dependency FastAPI solves on every request (cProfile: `solve_dependencies` was 30 % of an
  in-process status read; ~500 → ~385 µs), and the guard reads the path from the ASGI scope
  instead of building a URL object. The queue estimate decodes and prices each distinct queued
  shape once instead of once per run ahead.
- **p99:** the API process freezes what start-up allocated (`gc.collect(); gc.freeze()` in
  api/app.py's lifespan): a full collection of the ~87,000 start-up objects took ~30 ms, a
  stall of the single event loop that every request in flight waited out. With it, status
  reads' p99 went from 51 / 49 ms (completed / queued run) to 9 / 10 ms in the same setting.
- A submit with a `webhook_url` checks the URL (DNS resolution, blocking) on a thread; without
  one the whole submit stays on the event loop.
- uvloop, httptools and hiredis are dependencies (uvicorn and redis-py use them when present);
  the per-request access log is opt-in (`renderq api --access-log`); all four renderq
  middlewares are pure ASGI (no `BaseHTTPMiddleware`), together ~10 µs per request.
- Before/after, side by side on the same machine a few minutes apart (wrk, 8 connections,
  per CPU-second of the API process): main after issue 5 did 317 submissions, 618 status reads
  of a completed run and 497 of a queued run per CPU-second (315 / 646 / 533 per second wall);
  with the changes above 591 / 1,643 / 1,128 (589 / 1,633 / 1,122 per second) in the first
  full run, and the table's figures in this one. Earlier still, on the core service alone, 219
  submissions/s and 311 status reads/s.

Worker:
- The heartbeat thread is no longer joined at the end of each job (a scheduler round trip on the
  critical path of every job when the cores are busy; a late beat is harmless by design).
- The render-rate update runs after `complete()`, not before the caller sees the run completed;
  S3 uploads skip the CRC32 trailer botocore adds by default (4.1 → 3.3 ms per put).
- A base-model load is logged at INFO with its duration (worker/model_cache.py); the cold-start
  benchmark reads that line to separate model loading from the rest of the start.

Limits that remain, and why:
- **API requests per second.** Where one request's CPU goes now (py-spy on the API under
  wrk, status read of a queued run): about a quarter in uvicorn and the event loop, a third in
  Starlette/FastAPI (routing, the app-level auth dependency, exception and body-limit
  middleware of FastAPI itself, response sending), a quarter in redis.asyncio (each round trip
  ~120 µs of CPU here, half of it the loopback `send` system call, `StreamWriter.writelines`
  alone 16–17 % of samples), the rest pydantic (record in, view out) and renderq's own code,
  whose middlewares and views are now a few percent. The `floor` row is the same framework with
  no middleware, dependency, Redis or model: ~190–250 µs per request, i.e. 4,000–5,200 per
  CPU-second. A status read of a completed run costs that plus one Redis round trip, the
  middleware stack, the guard and two pydantic models: ~600–650 µs, so ~1,550–1,650 per
  CPU-second; a queued run's read adds the queue position (one or two round trips, ~870 µs in
  all); a submit does three round trips (the record + its Celery message in one transaction,
  then the position) plus body validation, Celery's message encoding and the record's hash
  encoding (~1.7–2 ms). The
  targets ask for 1,000 and 3,000 per second **wall-clock** from one process on two cores that
  also run wrk, Redis and other engineers' test suites: the API process gets about one core
  (see its per-CPU-second vs per-second figures), so even the empty floor route reaches only
  ~4,000/s here. 3,000 status reads/s would need the whole read within ~1.3× the empty route's
  cost, and 1,000 submits/s a submit at ~0.9 ms of CPU: not reachable with FastAPI + redis-py in
  one Python process on this machine. Run more processes (`renderq api --workers N`; they share
  nothing but Redis) to scale reads and submits with cores. With API keys on (the benchmark
  runs with auth disabled, as its earlier figures did), each /v1 request also pays the key
  lookup and the rate-limit count, each on the thread pool (the `limits` library is sync):
  caching keys per process would save one of them at the cost of a revocation delay, not done.
- **Per-job overhead.** What remains is a few milliseconds each for the hand-off from the API's
  write to the worker's claim (broker pop in the Celery parent, pipe to the render process), the
  PNG upload (botocore ~1.5 ms of CPU plus SeaweedFS) and the record writes. Each step wakes
  another process (Redis, SeaweedFS, the Celery parent), and on two cores carrying four to six
  runnable processes every wake-up may wait for a core: the median holds near 10 ms when the
  machine is calm and drifts to 15–20 ms when other suites run, the p90 stays well under 40 ms.
- **Throughput on the tiny job.** A 64×64, 2-step job renders in tens of milliseconds, so the
  fixed cost of a job (a Celery hand-off parent → render process and back, the broker fetch of
  the next message after each ack — prefetch is disabled on purpose so that no job waits behind
  another while a worker is free — several Redis round trips, a PNG encode and an S3 PUT) is a
  visible fraction of it; each of those steps also waits for a free core when two cores carry
  five runnable processes. On a real model (seconds per image) the same milliseconds are well
  under 1 %. The per-CPU-second ratio, which the machine's other load does not move, rises
  with job size (see the larger-job row); the wall-clock ratios move with that load, since the
  bare runs and the drain cannot run at the same moment.
- **What issue 7 added to the hot path** (side by side, API process alone, wrk 8 connections
  10 s, runs of 63fed15 and of this code alternating within 15 minutes on a machine quieter
  than the tables' run): submissions 1,012 / 1,024 / 1,018 per second before, 934 / 852 / 807
  after, 864 / 905 once a tenant found unmetered stops paying the reservation round trip
  (api/costs.py `UnmeteredTenants`, re-checked each second); status reads of a completed run
  2,694 / 2,777 / 2,756 before, 2,538–2,657 after. py-spy over the submit phase of one run each
  puts pricing and the credit admission at ~3.6 % of a submit's samples (the request re-read
  from the record to price it, the output sizes); in-process (httpx on the ASGI app, real
  Redis, 1,500 submits, `time.process_time`) a submit costs 1,498–1,555 µs before and
  1,521–1,530 µs after, within noise. So most of the wrk gap is run-to-run noise on a shared
  machine and a few percent is the price of pricing every run; a metered tenant pays one more
  Lua round trip (~120 µs of API CPU) for its reservation, by design.
- **Memory.** The render process keeps one warm pipeline; RSS is flat after the first jobs
  (allocator arenas settle), see the plot.

**Issue 12 (sections 7–11): where the time goes.** Measured and profiled, not tuned (the service is
another engineer's; these are the figures to tune against). Profiled on 2026-11-29 right after
the run above, on the same working tree (d955d2d and the micro-batching work on top of it):
- **A batched drain** (`python -m bench.profile_drain --jobs 600`: py-spy `--idle` on both worker
  processes; shares of the render process's main thread's wall time): 61 % in the model call,
  22 % waiting for the next task from the Celery parent, 10 % claiming companions (one claim
  script and one record read per companion, one after another), 7 % in claims by runs' own
  messages. A batch of 8 is still 8 Celery deliveries: each companion's own message comes
  after it was rendered, and costs a broker fetch, a hand-off to the render process (~5 ms of
  waiting each here) and a claim that finds the run taken (~1.7 ms): about 30 % of the main
  thread goes to deliveries that render nothing. The model call itself took ~80 ms per call of
  8 in the benchmark's drains (its 0.61 share at 60 images/s) against ~61 ms in the bare loop:
  while it renders, the finisher thread (its S3 PUT through botocore alone 28 % of the main
  thread's time, then asset and run records, metrics, events, PNG encoding 3 %), the Celery
  parent, Redis, SeaweedFS and the API want the same two cores. Per CPU-second the batched
  worker makes 0.53× the images of the bare 8-per-call loop (14.1 against 7.5 ms of CPU per
  image, both worker processes): ~6.6 ms per image of per-run work that batching does not
  share. Batching off, the same profile: 78 % model call, 17 % waiting for the next task, 5 %
  claim.
- **Render-process CPU, one request at a time** (1.45× against ≤ 1.15×): per-thread CPU of the
  render process (psutil, 150 jobs one at a time, the bare loop beside it at 23.2 ms per image):
  the main thread 28.0 ms per image (by py-spy's samples ~89 % of it the model call, so that is a
  little dearer than in the bare process; the rest the Celery hand-off, the claim and record
  reads, logging), the finisher thread 4.3 ms
  (PNG encode, the S3 PUT, asset, run and metrics records, events); 32.5 ms in all, 1.40×. The
  target, ≤ 27 ms here, needs ~5–6 ms of CPU per image out of the render process.
- **API keys**: a keyed status read costs the API 440–590 µs more CPU than an anonymous one (the
  key lookup, one Redis round trip, and the rate-limit count, which runs on the thread pool
  because `limits` is synchronous): reads per second about halve. A keyed submit costs ~950 µs
  more, and falls further in wall-clock terms within a run (×0.36), because the active-run
  reservation (storage/quotas.py `_RESERVE`) reads the status of every run the key has in
  flight, inside Redis, on every submit: O(runs in flight) per submit; each key here ended its
  8 s run with ~2,000 queued. A key at the default cap (1,000 active runs) pays up to 1,000
  reads per submit.
"""
