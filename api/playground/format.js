// Words and numbers as a person reads them: durations, times ago, the run's parameters.

export const OPERATION_LABELS = {
  "text-to-image": "Text → image",
  "image-to-image": "Image → image",
  inpaint: "Inpaint",
  outpaint: "Outpaint",
  variations: "Variations",
  upscale: "Upscale",
  "remove-background": "Remove background",
};

export const operationLabel = (name) => OPERATION_LABELS[name] || name.replace(/-/g, " ");

/** 3 s, 4 min 10 s, 2 h 5 min: the two largest units. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

export function ago(when) {
  const seconds = (Date.now() - new Date(when).getTime()) / 1000;
  if (seconds < 10) return "just now";
  if (seconds < 3600 * 24) return `${duration(seconds).split(" ").slice(0, 2).join(" ")} ago`;
  return new Date(when).toLocaleString();
}

/** "512×512 · 25 steps · seed 7 · model": what the request asked for, as far as it says. */
export function parameters(view) {
  const r = view.request || {};
  const parts = [];
  if (r.width && r.height) parts.push(`${r.width}×${r.height}`);
  if (r.upscale_factor) parts.push(`×${r.upscale_factor}`);
  if (r.target_width || r.target_height) parts.push(`to ${r.target_width || "auto"}×${r.target_height || "auto"}`);
  if (r.num_inference_steps) parts.push(`${r.num_inference_steps} steps`);
  if (r.strength !== undefined && r.strength !== null && view.operation !== "text-to-image") parts.push(`strength ${r.strength}`);
  if (r.num_images > 1) parts.push(`${r.num_images} images`);
  if (r.seed !== undefined && r.seed !== null) parts.push(`seed ${r.seed}`);
  if (view.model_id) parts.push(view.model_id.split("/").pop());
  return parts.join(" · ");
}
