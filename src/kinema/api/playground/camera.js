// The prompt's camera commands: chips that insert them (each with a looping preview of its move),
// and the plan the server reads from the prompt, shown live with every unknown command flagged.

import { api } from "./api.js";
import { announce, debounce, els } from "./dom.js";
import { renderCode } from "./code.js";
import { app } from "./state.js";

export const CAMERA_COMMANDS = [
  "Truck left", "Truck right", "Pan left", "Pan right", "Push in", "Pull out", "Pedestal up",
  "Pedestal down", "Tilt up", "Tilt down", "Zoom in", "Zoom out", "Shake", "Tracking shot", "Static shot",
];
const PLAN_DELAY_MS = 150;

/** The move's name on the wire (and of its preview): "Pan left" is pan_left. */
export function moveId(name) {
  return name.toLowerCase().replace(/ /g, "_");
}

export function insertAtCursor(textarea, text) {
  const { selectionStart: start, selectionEnd: end, value } = textarea;
  const before = value.slice(0, start);
  const after = value.slice(end);
  const lead = before && !/\s$/.test(before) ? " " : "";
  const tail = after && /^\s/.test(after) ? "" : " ";
  const insert = `${lead}${text}${tail}`;
  if (textarea.maxLength > 0 && value.length - (end - start) + insert.length > textarea.maxLength) {
    announce("The prompt is full.");
    return;
  }
  textarea.focus();
  textarea.setRangeText(insert, start, end, "end");
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
}

function showPreview(button, name) {
  els.chipPreviewImage.src = `/playground/camera/${moveId(name)}.webp`;
  els.chipPreviewImage.alt = `${name}, as the camera makes it`;
  els.chipPreviewCaption.textContent = name;
  const box = button.getBoundingClientRect();
  const area = els.cameraCommands.getBoundingClientRect();
  const width = 172;
  const left = Math.max(0, Math.min(box.left - area.left + box.width / 2 - width / 2, area.width - width));
  els.chipPreview.style.left = `${left}px`;
  els.chipPreview.style.top = `${box.top - area.top - 8}px`;
  els.chipPreview.hidden = false;
}

function hidePreview() {
  els.chipPreview.hidden = true;
}

export function renderCameraCommands() {
  const buttons = CAMERA_COMMANDS.map((name) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chip";
    button.textContent = name;
    button.dataset.move = moveId(name);
    button.setAttribute("aria-label", `Insert [${name}]`);
    // Keep the caret where it is: a mouse press would otherwise move focus first.
    button.addEventListener("mousedown", (event) => event.preventDefault());
    button.addEventListener("click", () => insertAtCursor(els.prompt, `[${name}]`));
    button.addEventListener("mouseenter", () => showPreview(button, name));
    button.addEventListener("focus", () => showPreview(button, name));
    button.addEventListener("mouseleave", hidePreview);
    button.addEventListener("blur", hidePreview);
    return button;
  });
  els.cameraCommands.replaceChildren(...buttons);
}

/** Replace the first `[typo]` in the prompt with `[command]`. */
function fixTypo(text, command) {
  const value = els.prompt.value;
  const at = value.indexOf(text);
  if (at < 0) return;
  els.prompt.focus();
  els.prompt.setRangeText(command, at, at + text.length, "end");
  els.prompt.dispatchEvent(new Event("input", { bubbles: true }));
  announce(`Changed to [${command}].`);
}

function renderPlan(plan) {
  els.cameraPlan.textContent = `Camera: ${plan.summary}`;
  els.cameraPlan.hidden = false;
  const items = plan.unknown.map((unknown) => {
    const item = document.createElement("li");
    item.append(`${unknown.warning} `);
    if (unknown.suggestion) {
      const fix = document.createElement("button");
      fix.type = "button";
      fix.className = "button link";
      fix.textContent = `Use [${unknown.suggestion}]`;
      fix.addEventListener("click", () => fixTypo(unknown.text, unknown.suggestion));
      item.append(fix);
    }
    return item;
  });
  els.cameraWarnings.replaceChildren(...items);
  els.cameraWarnings.hidden = items.length === 0;
}

let asked = 0;

/** Ask the server for the prompt's camera plan; a later question wins over an earlier answer. */
export async function refreshPlan() {
  const prompt = els.prompt.value;
  const question = ++asked;
  if (!prompt.trim()) {
    app.camera = { prompt, unknown: [], confirmed: "" };
    els.cameraPlan.hidden = true;
    els.cameraWarnings.hidden = true;
    return app.camera;
  }
  try {
    const plan = await api("/api/v1/kinema/camera-plan", { method: "POST", json: { prompt }, key: null });
    if (question !== asked) return app.camera;
    app.camera = { prompt, unknown: plan.unknown, confirmed: app.camera.confirmed };
    renderPlan(plan);
  } catch {
    if (question === asked) els.cameraPlan.hidden = true; // a reading, not a gate: the form still works
  }
  return app.camera;
}

export const refreshPlanSoon = debounce(refreshPlan, PLAN_DELAY_MS);

export function watchPrompt() {
  els.prompt.addEventListener("input", () => {
    refreshPlanSoon();
    renderCode();
  });
}
