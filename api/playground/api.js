// The page's one way to speak to renderq: the /v1 API, with the API key of this tab.
// Every error becomes a Problem (the RFC 9457 document's title and detail), whatever failed.

const KEY_ITEM = "renderq.apiKey";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM) || "",
  set: (key) => (key ? sessionStorage.setItem(KEY_ITEM, key) : sessionStorage.removeItem(KEY_ITEM)),
};

export class Problem extends Error {
  constructor(doc) {
    super(doc.title || "Error");
    this.title = doc.title || "Error";
    this.detail = doc.detail || "";
    this.status = doc.status || 0;
    this.type = doc.type || "";
    this.errors = Array.isArray(doc.errors) ? doc.errors : [];
  }
}

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

async function problemOf(response) {
  let doc = null;
  try {
    doc = await response.json();
  } catch (_) {
    // not JSON: a proxy's page, say
  }
  if (doc && typeof doc === "object" && doc.title) return new Problem(doc);
  return new Problem({ title: `HTTP ${response.status}`, detail: response.statusText, status: response.status });
}

/** Call the API: JSON in (or FormData), JSON out; throws a Problem for any answer ≥ 400. */
export async function call(method, path, body, options = {}) {
  const init = { method, headers: headers(), signal: options.signal };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Problem({ title: "Network error", detail: `renderq could not be reached (${error.message})` });
  }
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

/** Whether this server wants a key from us: "open" (dev mode), "ok" (our key works), "needed", "refused". */
export async function authState() {
  try {
    await call("GET", "/v1/models");
    return apiKey.get() ? "ok" : "open";
  } catch (problem) {
    if (problem.status === 401) return apiKey.get() ? "refused" : "needed";
    throw problem;
  }
}

/** Upload an image (a File or Blob) as an asset; resolves to the asset view. */
export function upload(blob, name = "image.png") {
  const form = new FormData();
  form.append("file", blob, name);
  return call("POST", "/v1/assets", form);
}

/**
 * Follow a run's Server-Sent Events with fetch (EventSource cannot send the API key):
 * onEvent(name, data) for each event. Resolves when the stream ends; rejects when it breaks.
 */
export async function followEvents(runId, onEvent, signal) {
  const response = await fetch(`/v1/generations/${runId}/events`, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw await problemOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end), onEvent);
      buffer = buffer.slice(end + 2);
    }
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return; // a comment (the keep-alive ping)
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch (_) {
    return;
  }
  onEvent(name, parsed);
}

/** The endpoint an operation is submitted to. */
export const endpointOf = (operation) => (operation === "text-to-image" ? "/v1/generations" : `/v1/${operation}`);
