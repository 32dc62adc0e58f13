// One card per run: status, queue position, ETA, progress, the live preview, then the images
// (expiry, download, use as input), cancel while it may still run, retry once it has failed.
// A card follows its run by Server-Sent Events, and polls for what events do not carry
// (queue position, estimate), or for everything when the stream breaks.

import { call, followEvents } from "./api.js";
import { ago, duration, operationLabel, parameters } from "./format.js";

const FINAL = new Set(["completed", "failed", "canceled", "expired"]);
const RETRYABLE = new Set(["failed", "canceled", "expired"]);
const STATUS_WORDS = { queued: "Queued", running: "Running", completed: "Done", failed: "Failed", canceled: "Canceled", expired: "Expired" };
const POLL_MS = 1500;
const POLL_MS_WITHOUT_EVENTS = 700;

const find = (root, selector) => root.querySelector(selector);

export function showProblem(box, problem) {
  if (!problem) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const title = document.createElement("strong");
  title.className = "problem-title";
  title.textContent = problem.title;
  const detail = document.createElement("span");
  detail.className = "problem-detail";
  detail.textContent = problem.detail || "";
  box.replaceChildren(title, detail);
  box.hidden = false;
}

export class RunCard {
  constructor(view, actions) {
    this.actions = actions; // {cancel, retry, download, use}
    this.el = document.getElementById("run-template").content.firstElementChild.cloneNode(true);
    this.el.dataset.runId = view.run_id;
    this.el.dataset.previews = "0";
    this.view = null;
    this.previewStep = -1;
    this.etaDeadline = null;
    this.galleryKey = "";
    find(this.el, ".act-cancel").addEventListener("click", () => this.actions.cancel(this));
    find(this.el, ".act-retry").addEventListener("click", () => this.actions.retry(this));
    this.update(view);
  }

  get runId() {
    return this.el.dataset.runId;
  }

  get final() {
    return FINAL.has(this.view.status);
  }

  /** A newer view of the run (a GET, an event's summary merged in). */
  update(view) {
    const old = this.view;
    if (old && old.status === view.status && view.status === "running" && view.progress < old.progress) {
      view = { ...view, progress: old.progress }; // a poll answered before the last progress event
    }
    this.view = view;
    if ("estimated_time" in view) {
      this.etaDeadline = view.estimated_time == null ? null : Date.now() + view.estimated_time * 1000;
    }
    this.render();
    if (view.preview_url && view.status === "running") this.preview({ url: view.preview_url, step: view.preview_step });
  }

  /** Part of the run, as an event says it. */
  patch(fields) {
    this.update({ ...this.view, ...fields });
  }

  /** A live preview (the SSE event's data URL, or the run view's preview_url when polling):
   * shown only when it is of a later step than the one shown, so never the same one twice. */
  preview({ url, step, total }) {
    if (!url || this.final || !(step > this.previewStep)) return;
    this.previewStep = step;
    const img = find(this.el, ".preview img");
    img.src = url;
    img.hidden = false;
    img.parentElement.classList.add("has-image");
    this.el.dataset.previews = String(Number(this.el.dataset.previews) + 1);
    total = total || this.view.request?.num_inference_steps;
    find(this.el, ".preview-step").textContent = `step ${step}${total ? ` / ${total}` : ""}`;
  }

  render() {
    const v = this.view;
    const el = this.el;
    el.dataset.status = v.status;
    find(el, ".op").textContent = operationLabel(v.operation);
    find(el, ".status").textContent = v.cancel_requested && !this.final ? "Canceling" : STATUS_WORDS[v.status] || v.status;
    find(el, ".run-id").textContent = v.run_id;
    const retryOf = find(el, ".retry-of");
    retryOf.hidden = !v.retry_of;
    retryOf.textContent = v.retry_of ? "retry" : "";
    retryOf.title = v.retry_of ? `Retry of ${v.retry_of}` : "";
    const when = find(el, ".when");
    when.dateTime = v.created_at;
    when.textContent = ago(v.created_at);
    const prompt = v.input_prompt || v.request?.prompt || "";
    find(el, ".run-prompt").textContent = prompt;
    find(el, ".run-prompt").hidden = !prompt;
    find(el, ".run-params").textContent = parameters(v);
    this.renderLive();
    showProblem(find(el, ".run-error"), v.status === "failed" ? v.error || { title: "Failed", detail: "" } : null);
    this.renderGallery();
    const cancel = find(el, ".act-cancel");
    cancel.hidden = this.final;
    cancel.disabled = Boolean(v.cancel_requested);
    cancel.textContent = v.cancel_requested ? "Canceling…" : "Cancel";
    find(el, ".act-retry").hidden = !RETRYABLE.has(v.status);
  }

  renderLive() {
    const v = this.view;
    const live = find(this.el, ".live");
    const showLive = !this.final || (v.status === "canceled" && v.progress > 0);
    live.hidden = !showLive;
    if (!showLive) return;
    const request = v.request || {};
    const preview = find(this.el, ".preview");
    preview.hidden = this.final;
    if (request.width && request.height) preview.style.aspectRatio = `${request.width} / ${request.height}`;
    const bar = find(this.el, ".bar");
    bar.setAttribute("aria-valuenow", String(v.progress));
    find(bar, "span").style.width = `${v.progress}%`;
    const pct = { queued: this.queueWords(), canceled: `Stopped at ${v.progress}%` }[v.status];
    find(this.el, ".pct").textContent = pct ?? `${v.progress}%`;
    this.tick();
  }

  queueWords() {
    const position = this.view.queue_position;
    if (position === null || position === undefined) return "Waiting for a worker";
    return position === 0 ? "Next in line" : `${position} ahead in the queue`;
  }

  /** Once a second: the ETA counts down, "2 min ago" and image expiries move on. */
  tick() {
    const eta = find(this.el, ".eta");
    if (this.final) {
      eta.textContent = "";
    } else {
      const left = this.etaDeadline === null ? null : (this.etaDeadline - Date.now()) / 1000;
      eta.textContent = left === null ? "" : left >= 1 ? `about ${duration(left)} left` : "almost done";
    }
    find(this.el, ".when").textContent = ago(this.view.created_at);
    for (const expiry of this.el.querySelectorAll("[data-expires]")) {
      const left = (new Date(expiry.dataset.expires).getTime() - Date.now()) / 1000;
      expiry.textContent = left > 0 ? `expires in ${duration(left)}` : "expired";
      expiry.classList.toggle("soon", left < 3600);
    }
  }

  renderGallery() {
    const images = this.view.status === "completed" ? this.view.images || [] : [];
    const key = images.map((image) => image.url || image.object_uri).join(" ");
    if (key === this.galleryKey) return;
    this.galleryKey = key;
    const gallery = find(this.el, ".gallery");
    gallery.replaceChildren(...images.map((image, index) => this.figure(image, index)));
    gallery.hidden = !images.length;
    this.tick();
  }

  figure(image, index) {
    const fig = document.getElementById("image-template").content.firstElementChild.cloneNode(true);
    const link = find(fig, ".shot-link");
    const img = find(fig, "img");
    // A gallery takes the small thumbnail where the server makes one; the link opens the PNG.
    img.src = image.thumbnail_url || image.url || "";
    img.width = image.width;
    img.height = image.height;
    link.href = image.url || "#";
    link.hidden = !image.url; // written to the caller's own bucket (`output`): its object_uri says where
    // Upscale and remove-background take no seed: theirs says nothing.
    const seeded = this.view.request?.seed !== undefined && this.view.request?.seed !== null;
    const about = image.role !== "image" ? ` · ${image.role}` : seeded ? ` · seed ${image.seed}` : "";
    find(fig, ".shot-meta").textContent = `${image.width}×${image.height}${about}`;
    const expiry = find(fig, ".expiry");
    expiry.dataset.expires = this.view.expires_at;
    find(fig, ".asset-id").textContent = image.asset_id || image.object_uri || "";
    const download = find(fig, ".act-download");
    download.hidden = !image.url;
    download.addEventListener("click", () => this.actions.download(this, index));
    const use = find(fig, ".act-use");
    use.hidden = !image.asset_id;
    use.addEventListener("click", () => this.actions.use(this.view.images[index]));
    return fig;
  }
}

/** Keeps one card's view current until its run ends. */
export class Tracker {
  constructor(card) {
    this.card = card;
    this.stopped = false;
    this.eventsBroken = false;
    this.abort = new AbortController();
  }

  start() {
    this.follow();
    this.poll();
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
  }

  async follow() {
    try {
      await followEvents(this.card.runId, (name, data) => this.onEvent(name, data), this.abort.signal);
    } catch (_) {
      if (this.stopped) return;
      this.eventsBroken = true; // polling alone from now on
    }
  }

  onEvent(name, data) {
    if (this.stopped) return;
    if (name === "status") this.card.patch({ status: data.status, progress: data.progress, error: data.error ?? this.card.view.error });
    else if (name === "progress") this.card.patch({ progress: data.progress });
    else if (name === "preview") this.card.preview({ url: data.image, step: data.step, total: data.total_steps });
    else if (name === "run") {
      this.card.update(data);
      this.stop();
    }
  }

  async poll() {
    while (!this.stopped) {
      await new Promise((resolve) => setTimeout(resolve, this.eventsBroken ? POLL_MS_WITHOUT_EVENTS : POLL_MS));
      if (this.stopped) return;
      try {
        const view = await call("GET", `/v1/generations/${this.card.runId}`, undefined, { signal: this.abort.signal });
        if (this.stopped) return;
        this.card.update(view);
        if (this.card.final) this.stop();
      } catch (problem) {
        if (problem.status === 404 || problem.status === 410) this.stop(); // expired, or gone
      }
    }
  }
}
