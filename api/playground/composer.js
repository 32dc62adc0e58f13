// The form: which operation, its fields, the input image (uploaded as an asset, or a result's
// asset id) and, for inpaint, the mask painted over it. It builds the request body; renderq
// validates it (the page repeats none of its rules, so what it says is what any caller hears).

import { call, endpointOf, upload } from "./api.js";
import { MaskPainter } from "./mask.js";

const SUBMIT_WORDS = {
  "text-to-image": "Generate",
  "image-to-image": "Generate",
  inpaint: "Inpaint",
  variations: "Make variations",
  upscale: "Upscale",
  "remove-background": "Remove background",
};
const NEEDS_IMAGE = new Set(["image-to-image", "inpaint", "variations", "upscale", "remove-background"]);

const STAGE_HEIGHT = 320; // the tallest the input image is shown, in CSS pixels
const $ = (id) => document.getElementById(id);

export class Composer {
  constructor({ onProblem }) {
    this.form = $("composer");
    this.onProblem = onProblem;
    this.operation = "text-to-image";
    this.input = null; // {asset_id, url, width, height}
    this.mask = new MaskPainter($("mask"));
    this.wire();
    this.setOperation("text-to-image");
  }

  wire() {
    for (const tab of document.querySelectorAll("#ops [data-op]")) {
      tab.addEventListener("click", () => this.setOperation(tab.dataset.op));
    }
    for (const chip of document.querySelectorAll("#sizes [data-size]")) {
      chip.addEventListener("click", () => {
        const [width, height] = chip.dataset.size.split("x");
        $("width").value = width;
        $("height").value = height;
      });
    }
    $("seed-dice").addEventListener("click", () => ($("seed").value = String(Math.floor(Math.random() * 2 ** 32))));
    $("brush").addEventListener("input", (event) => (this.mask.brush = Number(event.target.value)));
    $("mask-clear").addEventListener("click", () => this.mask.clear());
    $("input-clear").addEventListener("click", () => this.setInput(null));
    this.wireDropzone();
  }

  wireDropzone() {
    const zone = $("dropzone");
    const file = $("file");
    zone.addEventListener("click", (event) => {
      if (!this.input || this.operation !== "inpaint" || event.target === zone) file.click();
    });
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") file.click();
    });
    file.addEventListener("change", () => file.files[0] && this.uploadInput(file.files[0]));
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const dropped = event.dataTransfer.files[0];
      if (dropped) this.uploadInput(dropped);
    });
  }

  async uploadInput(file) {
    this.onProblem(null);
    $("dropzone").classList.add("busy");
    try {
      const asset = await upload(file, file.name);
      this.setInput({ ...asset, url: URL.createObjectURL(file) });
    } catch (problem) {
      this.onProblem(problem);
    } finally {
      $("dropzone").classList.remove("busy");
      $("file").value = "";
    }
  }

  /** The input image: an asset id, and a URL to show it by; null removes it. */
  setInput(input) {
    this.input = input;
    $("stage").hidden = !input;
    $("input-meta").hidden = !input;
    $("dropzone").classList.toggle("filled", Boolean(input));
    if (input) {
      $("input-preview").src = input.url || "";
      const stage = $("stage");
      stage.style.aspectRatio = `${input.width} / ${input.height}`;
      stage.style.width = `min(100%, ${Math.round((STAGE_HEIGHT * input.width) / input.height)}px)`;
      $("input-asset").textContent = `${input.asset_id} · ${input.width}×${input.height}`;
      this.mask.reset(input.width, input.height);
    }
    this.refresh();
  }

  /** "Use as input" on a result: keep the operation if it takes an image, else image-to-image. */
  useImage(image) {
    if (!NEEDS_IMAGE.has(this.operation)) this.setOperation("image-to-image");
    this.setInput({ asset_id: image.asset_id, url: image.url, width: image.width, height: image.height });
    this.form.closest(".composer").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  setOperation(operation) {
    this.operation = operation;
    for (const tab of document.querySelectorAll("#ops [data-op]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.op === operation));
    }
    for (const part of this.form.parentElement.querySelectorAll("[data-ops]")) {
      part.hidden = !part.dataset.ops.split(" ").includes(operation);
    }
    $("submit").querySelector(".btn-label").textContent = SUBMIT_WORDS[operation];
    this.refresh();
  }

  refresh() {
    const painting = this.operation === "inpaint" && Boolean(this.input);
    $("maskbar").hidden = !painting;
    $("mask").hidden = !painting;
    $("dropzone").classList.toggle("painting", painting);
  }

  /** The models the picker offers: the base models of GET /v1/models. */
  setModels(models) {
    const select = $("model_id");
    const chosen = select.value;
    const options = [new Option("Default model", "")];
    for (const model of models.filter((entry) => entry.kind === "base")) {
      options.push(new Option(model.name && model.name !== model.id ? `${model.name} (${model.id})` : model.id, model.id));
    }
    select.replaceChildren(...options);
    select.value = [...select.options].some((option) => option.value === chosen) ? chosen : "";
  }

  /** Outline the fields a validation problem names (its `errors[].field`); none clears them. */
  markInvalid(errors = []) {
    for (const element of this.form.querySelectorAll(".invalid")) element.classList.remove("invalid");
    for (const { field } of errors) {
      const element = field && this.form.elements.namedItem(field.split(".")[0]);
      if (element && element.classList) element.classList.add("invalid");
    }
  }

  /** The fields shown for this operation, as the JSON body renderq takes. */
  fields() {
    const body = {};
    for (const element of this.form.elements) {
      if (!element.name || element.closest("[hidden]") || element.disabled) continue;
      if (element.type === "radio" && !element.checked) continue;
      const raw = element.value.trim();
      if (raw === "") continue; // unset: the server's default
      const type = element.dataset.type;
      body[element.name] = type && raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
    }
    return body;
  }

  /** Submit the run; resolves to its view. Uploads the painted mask first for inpaint. */
  async submit() {
    const body = this.fields();
    if (NEEDS_IMAGE.has(this.operation) && this.input) body.image_asset_id = this.input.asset_id;
    if (this.operation === "inpaint" && this.input && this.mask.painted) {
      const mask = await upload(await this.mask.toBlob(), "mask.png");
      body.mask_asset_id = mask.asset_id;
    }
    return call("POST", endpointOf(this.operation), body);
  }
}
