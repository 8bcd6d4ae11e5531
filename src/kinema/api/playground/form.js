// The model, duration and resolution, all read from the catalog (`/api/v1/models`), and the price.

import { api, describeError } from "./api.js";
import { announce, els, formatNumber, showMessage } from "./dom.js";
import { renderCode } from "./code.js";
import { app } from "./state.js";

export function property(model, name) {
  return model?.input?.properties?.[name] || null;
}

export function priceOf(model, duration, resolution) {
  const hasResolution = Boolean(property(model, "resolution"));
  const hasDuration = Boolean(property(model, "duration"));
  const match = model.prices.find(
    (row) => (!hasDuration || row.duration === duration) && (!hasResolution || row.resolution === resolution),
  );
  return match ? match.credits : null;
}

/** The rule that forbids this combination, if any (the catalog's x-rules, or a missing price). */
export function forbiddenBy(model, choice) {
  for (const rule of model.input["x-rules"] || []) {
    const forbidden = rule.forbidden || {};
    if (Object.entries(forbidden).every(([field, value]) => choice[field] === value)) return rule.message;
  }
  if (priceOf(model, choice.duration, choice.resolution) === null) {
    return `${choice.duration} s at ${choice.resolution} is not offered`;
  }
  return null;
}

export function optionLabel(field, value) {
  return field === "duration" ? `${value} s` : value;
}

export function renderModels() {
  const options = app.models.map((model) => {
    const option = document.createElement("option");
    option.value = model.model;
    option.textContent = model.model;
    return option;
  });
  els.model.replaceChildren(...options);
  if (app.models.length === 0) {
    els.model.disabled = true;
    els.modelDescription.textContent = "This server has no model it can run right now.";
    return;
  }
  selectModel(app.models[0].model);
}

export function selectModel(name) {
  const model = app.models.find((item) => item.model === name);
  if (!model) return;
  app.model = model;
  els.model.value = name;
  els.modelDescription.textContent = model.description || "";
  els.imageField.hidden = !property(model, "image_url");
  const prompt = property(model, "prompt");
  if (prompt?.maxLength) els.prompt.maxLength = prompt.maxLength;
  renderPromptCount();
  for (const field of ["duration", "resolution"]) {
    const schema = property(model, field);
    const values = schema?.enum || [];
    const current = app.choice[field];
    app.choice[field] = values.includes(current) ? current : (schema?.default ?? values[0] ?? null);
  }
  if (forbiddenBy(model, app.choice)) adjust("duration");
  els.comboNote.textContent = ruleNotes(model);
  renderChoices();
}

export function ruleNotes(model) {
  return (model.input["x-rules"] || []).map((rule) => `${rule.message}.`).join(" ");
}

/** After `picked` changed, move the other field to a value that goes with it. */
export function adjust(picked) {
  const model = app.model;
  const other = picked === "duration" ? "resolution" : "duration";
  const values = property(model, other)?.enum || [];
  const reason = forbiddenBy(model, app.choice);
  if (!reason) return null;
  const fallback = values.find((value) => !forbiddenBy(model, { ...app.choice, [other]: value }));
  if (fallback === undefined) return null;
  app.choice[other] = fallback;
  return `${reason}, so the ${other} is now ${optionLabel(other, fallback)}.`;
}

export function renderChoices() {
  for (const field of ["duration", "resolution"]) {
    const container = field === "duration" ? els.durationOptions : els.resolutionOptions;
    const fieldset = field === "duration" ? els.durationField : els.resolutionField;
    const values = property(app.model, field)?.enum || [];
    fieldset.hidden = values.length === 0;
    const other = field === "duration" ? "resolution" : "duration";
    container.replaceChildren(
      ...values.map((value) => {
        const label = document.createElement("label");
        label.className = "segment";
        const input = document.createElement("input");
        input.type = "radio";
        input.name = field;
        input.value = value;
        input.checked = app.choice[field] === value;
        const conflict = forbiddenBy(app.model, { ...app.choice, [field]: value });
        if (conflict && property(app.model, other)) {
          label.classList.add("conflicts");
          label.title = `${conflict}; choosing it changes the ${other}`;
        }
        input.addEventListener("change", () => pick(field, value));
        const text = document.createElement("span");
        text.textContent = optionLabel(field, value);
        label.append(input, text);
        return label;
      }),
    );
  }
  renderPrice();
  renderCode();
}

export function pick(field, value) {
  app.choice[field] = value;
  const note = adjust(field);
  renderChoices();
  const focused = (field === "duration" ? els.durationOptions : els.resolutionOptions)
    .querySelector(`input[value="${CSS.escape(value)}"]`);
  focused?.focus();
  els.comboNote.textContent = note || ruleNotes(app.model);
  if (note) announce(note);
}

export function renderPrice() {
  if (!app.model) {
    els.price.textContent = "–";
    return;
  }
  const credits = priceOf(app.model, app.choice.duration, app.choice.resolution);
  const strong = document.createElement("strong");
  strong.textContent = credits === null ? "–" : formatNumber(credits);
  const parts = [strong, " credits"];
  if (credits !== null && app.balance !== null && credits > app.balance) {
    const short = document.createElement("span");
    short.className = "short";
    short.textContent = ` · your balance is ${formatNumber(app.balance)}`;
    parts.push(short);
  }
  els.price.replaceChildren(...parts);
}

export async function loadModels() {
  try {
    const listing = await api("/api/v1/models", { key: null });
    app.models = listing.filter((model) => model.available);
    renderModels();
  } catch (error) {
    showMessage(els.formError, `The models could not be loaded. ${describeError(error)}`);
  }
}

export function renderPromptCount() {
  const max = els.prompt.maxLength > 0 ? els.prompt.maxLength : 5000;
  els.promptCount.textContent = `${formatNumber(els.prompt.value.length)} / ${formatNumber(max)}`;
}

/** The `input` the form asks for, without the image (which may still be uploading). */
export function currentInput() {
  const input = { prompt: els.prompt.value.trim() };
  for (const field of ["duration", "resolution"]) {
    if (property(app.model, field) && app.choice[field] !== null) input[field] = app.choice[field];
  }
  return input;
}

/** The duration and resolution a task ran with: as asked, else its model's defaults. */
export function settingsOf(modelName, input) {
  const model = app.models.find((item) => item.model === modelName);
  const value = (field) => input[field] ?? property(model, field)?.default ?? null;
  return { duration: value("duration"), resolution: value("resolution") };
}

/** Fill the form with a task's own model, prompt, duration and resolution. */
export function applySettings(modelName, input) {
  if (app.models.some((item) => item.model === modelName)) selectModel(modelName);
  const { duration, resolution } = settingsOf(modelName, input);
  if (duration !== null) app.choice.duration = duration;
  if (resolution !== null) app.choice.resolution = resolution;
  renderChoices();
  els.prompt.value = input.prompt || "";
  els.prompt.dispatchEvent(new Event("input", { bubbles: true }));
}
