// Kinema playground: the API, driven from a browser. No framework, no build step, and no request
// leaves this server: every call below is a relative URL.

const KEY_STORAGE = "kinema.playground.apiKey";
const POLL_MS = 2000;
const UPLOAD_PATH = "playground";
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];
const CAMERA_COMMANDS = [
  "Truck left", "Truck right", "Pan left", "Pan right", "Push in", "Pull out", "Pedestal up",
  "Pedestal down", "Tilt up", "Tilt down", "Zoom in", "Zoom out", "Shake", "Tracking shot", "Static shot",
];
const STATE_TEXT = {
  waiting: "Checking the image",
  queuing: "Waiting for a worker",
  generating: "Generating",
  success: "Done",
  fail: "Failed",
};
const ENDED = new Set(["success", "fail"]);

const $ = (id) => document.getElementById(id);
const els = {
  account: $("account"), balance: $("balance"), keyHint: $("key-hint"), forgetKey: $("forget-key"),
  keyPanel: $("key-panel"), keyForm: $("key-form"), keyInput: $("key-input"), keySave: $("key-save"),
  keyError: $("key-error"),
  compose: $("compose"), imageField: $("image-field"), dropzone: $("dropzone"), imageInput: $("image-input"),
  preview: $("preview"), dropEmpty: $("drop-empty"), imageStatus: $("image-status"),
  sampleImage: $("sample-image"), clearImage: $("clear-image"),
  prompt: $("prompt"), promptCount: $("prompt-count"), cameraCommands: $("camera-commands"),
  model: $("model"), modelDescription: $("model-description"),
  durationField: $("duration-field"), durationOptions: $("duration-options"),
  resolutionField: $("resolution-field"), resolutionOptions: $("resolution-options"),
  comboNote: $("combo-note"), price: $("price"), submit: $("submit"), formError: $("form-error"),
  result: $("result"), taskId: $("task-id"), resultEmpty: $("result-empty"), taskView: $("task-view"), taskState: $("task-state"),
  taskPercent: $("task-percent"), taskProgress: $("task-progress"), taskDetail: $("task-detail"),
  player: $("player"), video: $("video"), taskError: $("task-error"), download: $("download"),
  cancel: $("cancel"),
  recentList: $("recent-list"), recentEmpty: $("recent-empty"), recentError: $("recent-error"),
  refreshRecent: $("refresh-recent"), moreRecent: $("more-recent"),
  announcer: $("announcer"),
};

const app = {
  key: null,
  balance: null,
  models: [],
  model: null,
  choice: { duration: null, resolution: null },
  image: null, // {file, previewUrl, width, height, url (uploaded), upload (promise)}
  tracking: null, // {taskId, controller}
  recentCursor: null,
};

// ---------------------------------------------------------------------------------------------
// Talking to the API

class ApiError extends Error {
  constructor(code, msg, retryAfter = null) {
    super(msg);
    this.code = code;
    this.msg = msg;
    this.retryAfter = retryAfter;
  }
}

const ERROR_LEADS = {
  400: "The request was incomplete",
  401: "The API key was refused",
  402: "Not enough credits",
  404: "Not found",
  422: "The request was refused",
  429: "Too many requests",
  455: "The service is under maintenance",
  500: "The server hit an error",
  501: "Generation failed",
  505: "This model is not available on this server",
};

/** A failed task's failCode, in words. */
const FAIL_LEADS = {
  422: "The input was refused",
  499: "Canceled",
  500: "The server hit an error",
  501: "Generation failed",
  504: "Timed out",
};

/** An API error as a sentence: what happened, the code, and the server's own words. */
function describeError(error) {
  if (error instanceof ApiError) {
    const lead = ERROR_LEADS[error.code] || "The server refused the request";
    let text = `${lead} (${error.code}): ${error.msg}`;
    if (error.code === 429 && error.retryAfter) text += ` Try again in ${error.retryAfter} s.`;
    return text;
  }
  if (error instanceof TypeError) return `Could not reach the server (${error.message}). Is it running?`;
  return String(error && error.message ? error.message : error);
}

/** Call the API and answer the envelope's `data`; any code but 200 throws an ApiError. */
async function api(path, { method = "GET", json, form, key = app.key, signal } = {}) {
  const headers = {};
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body, signal });
  let answer;
  try {
    answer = await response.json();
  } catch {
    throw new ApiError(response.status, `the server answered HTTP ${response.status} ${response.statusText}`);
  }
  if (!answer || typeof answer.code !== "number") {
    throw new ApiError(response.status, `unexpected answer (HTTP ${response.status})`);
  }
  if (answer.code !== 200) {
    throw new ApiError(answer.code, answer.msg || "", response.headers.get("Retry-After"));
  }
  return answer.data;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Small helpers for the page

function announce(text) {
  // Re-setting the same text would not be read again; clear first.
  els.announcer.textContent = "";
  window.setTimeout(() => { els.announcer.textContent = text; }, 30);
}

function showMessage(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

function formatNumber(value) {
  return new Intl.NumberFormat().format(value);
}

function timeAgo(ms) {
  const seconds = Math.round((ms - Date.now()) / 1000);
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return format.format(Math.round(value), unit);
    value /= size;
  }
  return format.format(Math.round(value), "year");
}

function parseJson(text, fallback) {
  try {
    return text ? JSON.parse(text) : fallback;
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------------------------------------
// The key and the balance

function maskKey(key) {
  return key.length > 12 ? `${key.slice(0, 7)}…${key.slice(-4)}` : "…";
}

function renderAccount() {
  const connected = Boolean(app.key);
  els.account.hidden = !connected;
  els.keyPanel.hidden = connected;
  if (connected) {
    els.keyHint.textContent = maskKey(app.key);
    els.balance.textContent = app.balance === null ? "…" : formatNumber(app.balance);
  }
  renderPrice();
}

async function refreshBalance() {
  if (!app.key) return;
  try {
    app.balance = await api("/api/v1/chat/credit");
  } catch (error) {
    if (error instanceof ApiError && error.code === 401) return forgetKey(describeError(error));
  }
  renderAccount();
}

async function saveKey(event) {
  event.preventDefault();
  const key = els.keyInput.value.trim();
  showMessage(els.keyError, "");
  if (!key) {
    showMessage(els.keyError, "Paste your API key first.");
    els.keyInput.focus();
    return;
  }
  els.keySave.disabled = true;
  try {
    app.balance = await api("/api/v1/chat/credit", { key });
  } catch (error) {
    showMessage(els.keyError, describeError(error));
    els.keyInput.focus();
    return;
  } finally {
    els.keySave.disabled = false;
  }
  app.key = key;
  localStorage.setItem(KEY_STORAGE, key);
  els.keyInput.value = "";
  renderAccount();
  announce(`Key saved. Your balance is ${formatNumber(app.balance)} credits.`);
  if (app.image && !app.image.url && !app.image.upload) startUpload();
  loadRecent();
  els.prompt.focus();
}

function forgetKey(reason) {
  localStorage.removeItem(KEY_STORAGE);
  app.key = null;
  app.balance = null;
  stopTracking();
  els.recentList.replaceChildren();
  els.recentEmpty.hidden = false;
  els.moreRecent.hidden = true;
  renderAccount();
  if (typeof reason === "string") {
    showMessage(els.keyError, reason);
  } else {
    announce("The key is forgotten: this browser no longer holds it.");
  }
  els.keyInput.focus();
}

// ---------------------------------------------------------------------------------------------
// The image

function setImageStatus(text, isError = false) {
  els.imageStatus.textContent = text;
  els.imageStatus.classList.toggle("error-text", isError);
  els.imageStatus.classList.toggle("muted", !isError);
}

function fileNameFor(file) {
  const extension = { "image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp" }[file.type] || "";
  const stem = (file.name || "image").replace(/\.[^.]*$/, "").toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "image";
  return `${Date.now().toString(36)}-${stem}${extension}`;
}

function chooseImage(file) {
  showMessage(els.formError, "");
  if (!file) return;
  if (!IMAGE_TYPES.includes(file.type)) {
    setImageStatus(`${file.name || "That file"} is not a JPEG, PNG or WebP image.`, true);
    return;
  }
  if (file.size > MAX_IMAGE_BYTES) {
    setImageStatus(`${file.name || "That image"} is larger than 10 MB.`, true);
    return;
  }
  clearImage({ quiet: true });
  const previewUrl = URL.createObjectURL(file);
  app.image = { file, previewUrl, url: null, upload: null };
  els.preview.src = previewUrl;
  els.preview.hidden = false;
  els.dropEmpty.hidden = true;
  els.clearImage.hidden = false;
  els.preview.onload = () => {
    if (app.image?.previewUrl !== previewUrl) return;
    app.image.width = els.preview.naturalWidth;
    app.image.height = els.preview.naturalHeight;
    if (!app.image.upload && !app.image.url) showImageSummary(app.image);
    else if (app.image.url) showImageSummary(app.image, " · uploaded");
  };
  if (app.key) {
    startUpload();
  } else {
    setImageStatus("Chosen; it is uploaded once your key is saved.");
  }
}

function imageSummary(image, extra = "") {
  const size = image.width ? `${image.width} × ${image.height}, ` : "";
  const kb = `${formatNumber(Math.max(1, Math.round(image.file.size / 1024)))} KB`;
  return `${image.file.name || "image"} · ${size}${kb}${extra}`;
}

/** What the server will refuse about this picture's shape, said before it does. */
function imageProblem(image) {
  if (!image.width || !image.height) return "";
  const ratio = image.width / image.height;
  if (ratio < 2 / 5 || ratio > 5 / 2) return "Its shape is outside 2:5 to 5:2, so it will be refused.";
  if (Math.min(image.width, image.height) < 300) return "Its short side is under 300 px, so it will be refused.";
  return "";
}

function showImageSummary(image, extra = "") {
  const problem = imageProblem(image);
  setImageStatus(problem ? `${imageSummary(image, extra)}. ${problem}` : imageSummary(image, extra), Boolean(problem));
}

function startUpload() {
  const image = app.image;
  if (!image) return Promise.resolve(null);
  const form = new FormData();
  form.append("file", image.file, image.file.name || "image");
  form.append("uploadPath", UPLOAD_PATH);
  form.append("fileName", fileNameFor(image.file));
  setImageStatus("Uploading…");
  image.upload = api("/api/file-stream-upload", { method: "POST", form }).then(
    (data) => {
      if (app.image !== image) return null;
      image.url = data.downloadUrl;
      showImageSummary(image, " · uploaded");
      announce("Image uploaded.");
      return image.url;
    },
    (error) => {
      if (app.image === image) {
        image.upload = null;
        setImageStatus(`Upload failed. ${describeError(error)}`, true);
      }
      throw error;
    },
  );
  image.upload.catch(() => {}); // reported above; a submit awaits it again
  return image.upload;
}

function clearImage({ quiet = false } = {}) {
  if (app.image?.previewUrl) URL.revokeObjectURL(app.image.previewUrl);
  app.image = null;
  els.preview.hidden = true;
  els.preview.removeAttribute("src");
  els.dropEmpty.hidden = false;
  els.clearImage.hidden = true;
  els.imageInput.value = "";
  setImageStatus("");
  if (!quiet) {
    announce("Image removed.");
    els.imageInput.focus();
  }
}

async function useSample() {
  setImageStatus("Loading the sample…");
  try {
    const response = await fetch("/samples/sample.jpg");
    if (!response.ok) throw new Error(`the sample image is missing (HTTP ${response.status})`);
    const blob = await response.blob();
    chooseImage(new File([blob], "sample.jpg", { type: "image/jpeg" }));
  } catch (error) {
    setImageStatus(describeError(error), true);
  }
}

function wireImageInput() {
  els.imageInput.addEventListener("change", () => chooseImage(els.imageInput.files[0]));
  els.sampleImage.addEventListener("click", useSample);
  els.clearImage.addEventListener("click", () => clearImage());
  for (const name of ["dragenter", "dragover"]) {
    els.dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      els.dropzone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    els.dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      els.dropzone.classList.remove("dragging");
    });
  }
  els.dropzone.addEventListener("drop", (event) => chooseImage(event.dataTransfer?.files?.[0]));
  // A pasted image (a screenshot, say) works like a dropped one.
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((item) => IMAGE_TYPES.includes(item.type));
    if (file && !els.imageField.hidden) {
      event.preventDefault();
      chooseImage(file);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The prompt and its camera commands

function insertAtCursor(textarea, text) {
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

function renderCameraCommands() {
  const buttons = CAMERA_COMMANDS.map((name) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chip";
    button.textContent = name;
    button.setAttribute("aria-label", `Insert [${name}]`);
    // Keep the caret where it is: a mouse press would otherwise move focus first.
    button.addEventListener("mousedown", (event) => event.preventDefault());
    button.addEventListener("click", () => insertAtCursor(els.prompt, `[${name}]`));
    return button;
  });
  els.cameraCommands.replaceChildren(...buttons);
}

function renderPromptCount() {
  const max = els.prompt.maxLength > 0 ? els.prompt.maxLength : 5000;
  els.promptCount.textContent = `${formatNumber(els.prompt.value.length)} / ${formatNumber(max)}`;
}

// ---------------------------------------------------------------------------------------------
// The model, duration and resolution, all read from the catalog

function property(model, name) {
  return model?.input?.properties?.[name] || null;
}

function priceOf(model, duration, resolution) {
  const hasResolution = Boolean(property(model, "resolution"));
  const hasDuration = Boolean(property(model, "duration"));
  const match = model.prices.find(
    (row) => (!hasDuration || row.duration === duration) && (!hasResolution || row.resolution === resolution),
  );
  return match ? match.credits : null;
}

/** The rule that forbids this combination, if any (the catalog's x-rules, or a missing price). */
function forbiddenBy(model, choice) {
  for (const rule of model.input["x-rules"] || []) {
    const forbidden = rule.forbidden || {};
    if (Object.entries(forbidden).every(([field, value]) => choice[field] === value)) return rule.message;
  }
  if (priceOf(model, choice.duration, choice.resolution) === null) {
    return `${choice.duration} s at ${choice.resolution} is not offered`;
  }
  return null;
}

function optionLabel(field, value) {
  return field === "duration" ? `${value} s` : value;
}

function renderModels() {
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

function selectModel(name) {
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

function ruleNotes(model) {
  return (model.input["x-rules"] || []).map((rule) => `${rule.message}.`).join(" ");
}

/** After `picked` changed, move the other field to a value that goes with it. */
function adjust(picked) {
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

function renderChoices() {
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
}

function pick(field, value) {
  app.choice[field] = value;
  const note = adjust(field);
  renderChoices();
  const focused = (field === "duration" ? els.durationOptions : els.resolutionOptions)
    .querySelector(`input[value="${CSS.escape(value)}"]`);
  focused?.focus();
  els.comboNote.textContent = note || ruleNotes(app.model);
  if (note) announce(note);
}

function renderPrice() {
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

async function loadModels() {
  try {
    const listing = await api("/api/v1/models", { key: null });
    app.models = listing.filter((model) => model.available);
    renderModels();
  } catch (error) {
    showMessage(els.formError, `The models could not be loaded. ${describeError(error)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Creating a task

function setBusy(text) {
  els.submit.disabled = Boolean(text);
  els.submit.textContent = text || "Generate video";
}

async function submit(event) {
  event.preventDefault();
  showMessage(els.formError, "");
  const fail = (text, focus) => {
    showMessage(els.formError, text);
    focus?.focus();
  };
  if (!app.key) return fail("Save your API key first.", els.keyInput);
  if (!app.model) return fail("No model is available on this server.", els.model);
  const needsImage = Boolean(property(app.model, "image_url"));
  if (needsImage && !app.image) return fail("Choose an image first.", els.imageInput);
  const prompt = els.prompt.value.trim();
  if (!prompt) return fail("Write a prompt first.", els.prompt);

  const input = { prompt };
  for (const field of ["duration", "resolution"]) {
    if (property(app.model, field) && app.choice[field] !== null) input[field] = app.choice[field];
  }
  try {
    if (needsImage) {
      setBusy("Uploading the image…");
      input.image_url = app.image.url || (await (app.image.upload || startUpload()));
      if (!input.image_url) return;
    }
    setBusy("Creating the task…");
    const data = await api("/api/v1/jobs/createTask", {
      method: "POST",
      json: { model: app.model.model, input },
    });
    announce("Task created.");
    track(data.taskId);
    if (window.matchMedia("(max-width: 899px)").matches) {
      els.result.scrollIntoView({ behavior: "smooth", block: "start" });
    }
    refreshBalance();
    loadRecent();
  } catch (error) {
    fail(describeError(error));
  } finally {
    setBusy(null);
  }
}

// ---------------------------------------------------------------------------------------------
// Following a task: the live stream, else polling

function stopTracking() {
  app.tracking?.controller.abort();
  app.tracking = null;
}

function showTask(taskId) {
  els.resultEmpty.hidden = true;
  els.taskView.hidden = false;
  els.taskId.textContent = taskId;
  els.taskId.title = `Task ${taskId}`;
  showMessage(els.taskError, "");
  els.player.hidden = true;
  els.video.removeAttribute("src");
  els.video.load();
  els.download.hidden = true;
  els.cancel.hidden = true;
  markCurrent(taskId);
}

function showProgress({ state, progress }) {
  els.taskState.textContent = state;
  els.taskState.className = `badge ${state}`;
  const percent = Math.max(0, Math.min(100, Number(progress) || 0));
  els.taskProgress.value = percent;
  els.taskPercent.textContent = `${percent}%`;
  if (!ENDED.has(state)) els.taskDetail.textContent = `${STATE_TEXT[state] || state}…`;
  els.cancel.hidden = ENDED.has(state);
}

function showRecord(record) {
  showProgress(record);
  const input = parseJson(record.param, {}).input || {};
  const facts = [];
  if (input.duration) facts.push(`${input.duration} s`);
  if (input.resolution) facts.push(input.resolution);
  if (record.state === "success") {
    const result = parseJson(record.resultJson, {});
    const url = result.resultUrls?.[0];
    if (record.costTime) facts.push(`made in ${(record.costTime / 1000).toFixed(1)} s`);
    facts.push(`${formatNumber(record.creditsConsumed)} credits`);
    els.taskDetail.textContent = facts.join(" · ");
    if (url) {
      els.video.src = url;
      if (result.firstFrameUrl) els.video.poster = result.firstFrameUrl;
      els.player.hidden = false;
      els.download.href = url;
      els.download.setAttribute("download", `kinema-${record.taskId.slice(0, 8)}.mp4`);
      els.download.hidden = false;
    }
    announce("The video is ready.");
  } else if (record.state === "fail") {
    els.taskDetail.textContent = facts.length ? `${facts.join(" · ")} · nothing charged` : "Nothing charged";
    const code = record.failCode || "501";
    const lead = FAIL_LEADS[code] || "The task failed";
    showMessage(els.taskError, `${lead} (${code}): ${record.failMsg || "no reason given"}`);
    announce("The task failed.");
  }
}

/** Read `/jobs/stream` through fetch (EventSource cannot send a header); answer the final record. */
async function streamTask(taskId, signal) {
  const response = await fetch(`/api/v1/jobs/stream?taskId=${encodeURIComponent(taskId)}`, {
    headers: { Authorization: `Bearer ${app.key}`, Accept: "text/event-stream" },
    signal,
  });
  const type = response.headers.get("content-type") || "";
  if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
    if (type.includes("json")) {
      const answer = await response.json().catch(() => null);
      if (answer && answer.code !== 200) throw new ApiError(answer.code, answer.msg || "");
    }
    return null; // not a stream: poll instead
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
      if (!data.length) continue;
      const payload = parseJson(data.join("\n"), null);
      if (!payload) continue;
      if (name === "state") showProgress(payload);
      if (name === "record") {
        reader.cancel().catch(() => {});
        return payload;
      }
    }
  }
}

async function pollTask(taskId, signal) {
  for (;;) {
    try {
      const record = await api(`/api/v1/jobs/recordInfo?taskId=${encodeURIComponent(taskId)}`, { signal });
      if (ENDED.has(record.state)) return record;
      showProgress(record);
      await sleep(POLL_MS, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof ApiError && error.code === 429) {
        await sleep(Math.max(POLL_MS, (Number(error.retryAfter) || 2) * 1000), signal);
      } else if (error instanceof TypeError) {
        els.taskDetail.textContent = "The connection dropped; trying again…";
        await sleep(POLL_MS, signal);
      } else {
        throw error;
      }
    }
  }
}

async function track(taskId, known = null) {
  stopTracking();
  const controller = new AbortController();
  app.tracking = { taskId, controller };
  showTask(taskId);
  showProgress(known || { state: "waiting", progress: 0 });
  if (known && ENDED.has(known.state)) {
    showRecord(known);
    app.tracking = null;
    return;
  }
  const { signal } = controller;
  let record = null;
  try {
    try {
      record = await streamTask(taskId, signal);
    } catch (error) {
      if (signal.aborted || error instanceof ApiError) throw error;
      // The stream broke (a proxy, a dropped connection): polling carries on.
    }
    record = record || (await pollTask(taskId, signal));
  } catch (error) {
    if (signal.aborted) return;
    showMessage(els.taskError, describeError(error));
    if (error instanceof ApiError && error.code === 401) forgetKey(describeError(error));
    return;
  }
  if (signal.aborted) return;
  app.tracking = null;
  showRecord(record);
  refreshBalance();
  loadRecent();
}

async function cancelTask() {
  const taskId = app.tracking?.taskId;
  if (!taskId) return;
  els.cancel.disabled = true;
  try {
    await api("/api/v1/jobs/cancel", { method: "POST", json: { taskId } });
    announce("Canceling the task.");
  } catch (error) {
    showMessage(els.taskError, describeError(error));
  } finally {
    els.cancel.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Recent tasks

function markCurrent(taskId) {
  for (const button of els.recentList.querySelectorAll("button.task-item")) {
    button.setAttribute("aria-current", String(button.dataset.taskId === taskId));
  }
}

function recentItem(record) {
  const input = parseJson(record.param, {}).input || {};
  const result = parseJson(record.resultJson, {});
  const button = document.createElement("button");
  button.type = "button";
  button.className = "task-item";
  button.dataset.taskId = record.taskId;
  let thumb;
  if (result.firstFrameUrl) {
    thumb = document.createElement("img");
    thumb.src = result.firstFrameUrl;
    thumb.alt = "";
    thumb.loading = "lazy";
    thumb.className = "thumb";
  } else {
    thumb = document.createElement("span");
    thumb.className = "thumb placeholder";
    thumb.setAttribute("aria-hidden", "true");
    thumb.textContent = record.state === "fail" ? "—" : "…";
  }
  const text = document.createElement("span");
  text.className = "task-text";
  const prompt = document.createElement("span");
  prompt.className = "task-prompt";
  prompt.textContent = input.prompt || record.model;
  const meta = document.createElement("span");
  meta.className = "task-meta";
  const badge = document.createElement("span");
  badge.className = `badge ${record.state}`;
  badge.textContent = record.state;
  const facts = document.createElement("span");
  facts.textContent = [input.duration && `${input.duration} s`, input.resolution, timeAgo(record.createTime)]
    .filter(Boolean)
    .join(" · ");
  meta.append(badge, facts);
  text.append(prompt, meta);
  button.append(thumb, text);
  button.addEventListener("click", () => track(record.taskId, record));
  const item = document.createElement("li");
  item.append(button);
  return item;
}

async function loadRecent({ more = false } = {}) {
  if (!app.key) return;
  showMessage(els.recentError, "");
  const cursor = more && app.recentCursor ? `&cursor=${encodeURIComponent(app.recentCursor)}` : "";
  try {
    const page = await api(`/api/v1/jobs/list?pageSize=8${cursor}`);
    const items = page.tasks.map(recentItem);
    if (more) els.recentList.append(...items);
    else els.recentList.replaceChildren(...items);
    app.recentCursor = page.nextCursor;
    els.moreRecent.hidden = !page.nextCursor;
    els.recentEmpty.hidden = els.recentList.children.length > 0;
    els.recentEmpty.textContent = "No tasks yet: your first video will show up here.";
    if (app.tracking) markCurrent(app.tracking.taskId);
    else markCurrent(els.taskId.textContent);
  } catch (error) {
    showMessage(els.recentError, describeError(error));
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function start() {
  renderCameraCommands();
  wireImageInput();
  els.keyForm.addEventListener("submit", saveKey);
  els.forgetKey.addEventListener("click", () => forgetKey());
  els.prompt.addEventListener("input", renderPromptCount);
  els.model.addEventListener("change", () => selectModel(els.model.value));
  els.compose.addEventListener("submit", submit);
  els.cancel.addEventListener("click", cancelTask);
  els.refreshRecent.addEventListener("click", () => loadRecent());
  els.moreRecent.addEventListener("click", () => loadRecent({ more: true }));

  app.key = localStorage.getItem(KEY_STORAGE);
  renderAccount();
  loadModels();
  if (app.key) {
    refreshBalance();
    loadRecent();
  }
}

start();
