"""The plots of BENCHMARKS.md (bench/results/*.png), drawn from a results dict.

matplotlib is an optional extra (`bench`): without it there are no plots, and the report's
tables still carry every figure.
"""

from __future__ import annotations

from pathlib import Path

from .stats import MiB, percentile


def draw_plots(results: dict, directory: Path) -> dict[str, Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra is optional; the tables are the figures
        return {}
    plots: dict[str, Path] = {}
    o = results.get("overhead")
    if o:
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, label in (("overhead", "run timestamps: completed − created − inference"), ("client_overhead", "client: submit → completed seen − the job's inference"), ("upload", "of which: PNG upload to S3"), ("queue", "of which: created → claimed by the worker")):
            values = sorted(v * 1000 for v in o[key])
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
        # Clip the axis at the slowest p99 so that a lone straggler does not flatten the curves.
        ax.set_xlim(0, 1.3 * max(percentile([v * 1000 for v in o[key]], 99) for key in ("overhead", "client_overhead")))
        ax.axvline(8, color="grey", ls="--", lw=0.8)  # issue 12's median target
        ax.axvline(40, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("ms per job")
        ax.set_ylabel("fraction of jobs")
        ax.set_title(f"Per-job overhead, {o['jobs']} tiny jobs one at a time")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        plots["overhead"] = _save(fig, directory / "overhead.png")
    d = results.get("drain")
    if d:
        fig, ax = plt.subplots(figsize=(7, 4))
        jobs = [s[0] for s in d["rss_samples"]]
        ax.plot(jobs, [s[1] / MiB for s in d["rss_samples"]], label="render process (pool child)")
        ax.plot(jobs, [s[2] / MiB for s in d["rss_samples"]], label="Celery parent")
        ax.axvline(d["rss_job"], color="grey", ls=":", lw=0.8)
        ax.set_xlabel("jobs completed")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"Worker memory while draining {d['jobs']} tiny jobs")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        plots["rss"] = _save(fig, directory / "rss.png")
    sc = results.get("scaling")
    if sc:
        workers = sorted((int(k), v) for k, v in sc["workers"].items())
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot([n for n, _ in workers], [v["jobs_per_second"] for _, v in workers], "o-", label="measured")
        one = workers[0][1]["jobs_per_second"]
        ax.plot([n for n, _ in workers], [one * n for n, _ in workers], "--", color="grey", label="ideal (N × one worker)")
        ax.set_xlabel("worker processes")
        ax.set_ylabel("jobs/s")
        ax.set_xticks([n for n, _ in workers])
        ax.set_title(f"Scaling on the sleep pipeline ({sc['job_seconds']:g} s/job)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        plots["scaling"] = _save(fig, directory / "scaling.png")
    return plots


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
