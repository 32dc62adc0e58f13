// The playground's wiring: the API key, the model list, the run list (history from
// GET /v1/generations, so it survives a reload), and what a card's buttons do.

import { apiKey, authState, call } from "./api.js";
import { Composer } from "./composer.js";
import { RunCard, Tracker, showProblem } from "./runs.js";

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 20;

const cards = new Map(); // run_id → {card, tracker}
let cursor = null;

const composer = new Composer({ onProblem: (problem) => showProblem($("form-problem"), problem) });

const KEY_WORDS = {
  checking: "checking…",
  open: "no key needed",
  ok: "key accepted",
  needed: "API key needed",
  refused: "key refused",
  error: "unreachable",
};

async function checkKey() {
  const state = $("keystate");
  let result;
  try {
    result = await authState();
  } catch (problem) {
    result = "error";
    showProblem($("runs-problem"), problem);
  }
  state.dataset.state = result;
  state.textContent = KEY_WORDS[result];
  $("keybox").classList.toggle("wanted", result === "needed" || result === "refused");
  return result === "open" || result === "ok";
}

function place(view, { first = false } = {}) {
  const known = cards.get(view.run_id);
  if (known) {
    known.card.update(view);
    return known.card;
  }
  const card = new RunCard(view, { cancel, retry, download, use: (image) => composer.useImage(image) });
  const list = $("runs");
  if (first) list.prepend(card.el);
  else list.append(card.el);
  const entry = { card, tracker: null };
  cards.set(view.run_id, entry);
  if (!card.final) {
    entry.tracker = new Tracker(card);
    entry.tracker.start();
  }
  $("runs-empty").hidden = true;
  return card;
}

async function loadHistory({ more = false } = {}) {
  showProblem($("runs-problem"), null);
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (more && cursor) query.set("cursor", cursor);
  try {
    const page = await call("GET", `/v1/generations?${query}`);
    for (const view of page.data) place(view);
    cursor = page.next_cursor;
  } catch (problem) {
    showProblem($("runs-problem"), problem);
    cursor = null;
  }
  $("more").hidden = !cursor;
  $("runs-empty").hidden = cards.size > 0;
}

async function loadModels() {
  try {
    composer.setModels((await call("GET", "/v1/models")).models);
  } catch (_) {
    // the key box already says why; the default model is still there to pick
  }
}

function track(view) {
  const entry = cards.get(view.run_id);
  if (entry && !entry.tracker && !entry.card.final) {
    entry.tracker = new Tracker(entry.card);
    entry.tracker.start();
  }
}

async function cancel(card) {
  try {
    card.update(await call("POST", `/v1/generations/${card.runId}/cancel`));
    track(card.view);
  } catch (problem) {
    showProblem(card.el.querySelector(".run-error"), problem);
  }
}

async function retry(card) {
  try {
    place(await call("POST", `/v1/generations/${card.runId}/retry`), { first: true });
  } catch (problem) {
    showProblem(card.el.querySelector(".run-error"), problem);
  }
}

/** Save the PNG: fetched as a blob, so the file gets a name even from the object store's origin. */
async function download(card, index) {
  let image = card.view.images[index];
  if (!image.url_expires_at || new Date(image.url_expires_at) <= new Date()) {
    card.update(await call("GET", `/v1/generations/${card.runId}`)); // a freshly signed URL
    image = card.view.images[index];
  }
  const name = `${card.runId}-${index}.${(image.content_type || "image/png").split("/")[1]}`;
  const link = document.createElement("a");
  link.download = name;
  try {
    const response = await fetch(image.url);
    if (!response.ok) throw new Error(String(response.status));
    link.href = URL.createObjectURL(await response.blob());
  } catch (_) {
    link.href = image.url; // the store sends no CORS headers: let the browser fetch it itself
    link.target = "_blank";
  }
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => link.href.startsWith("blob:") && URL.revokeObjectURL(link.href), 10_000);
}

async function submit(event) {
  event.preventDefault();
  const button = $("submit");
  showProblem($("form-problem"), null);
  composer.markInvalid();
  button.disabled = true;
  try {
    place(await composer.submit(), { first: true });
  } catch (problem) {
    showProblem($("form-problem"), problem);
    composer.markInvalid(problem.errors);
  } finally {
    button.disabled = false;
  }
}

function wire() {
  $("apikey").value = apiKey.get();
  $("keybox").addEventListener("submit", async (event) => {
    event.preventDefault();
    apiKey.set($("apikey").value.trim());
    if (await checkKey()) await Promise.all([loadModels(), reload()]);
  });
  $("composer").addEventListener("submit", submit);
  $("composer").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("composer").requestSubmit();
  });
  $("refresh").addEventListener("click", reload);
  $("more").addEventListener("click", () => loadHistory({ more: true }));
  setInterval(() => cards.forEach(({ card }) => card.tick()), 1000);
}

async function reload() {
  for (const { tracker } of cards.values()) tracker?.stop();
  cards.clear();
  $("runs").replaceChildren();
  cursor = null;
  await loadHistory();
}

wire();
if (await checkKey()) {
  await Promise.all([loadModels(), loadHistory()]);
} else {
  $("runs-empty").hidden = false;
}
document.body.dataset.ready = "true";
