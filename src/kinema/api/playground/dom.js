// The page's elements and the small helpers every part of the playground uses.

export const $ = (id) => document.getElementById(id);

export const els = {
  account: $("account"), balance: $("balance"), keyHint: $("key-hint"), forgetKey: $("forget-key"),
  keyPanel: $("key-panel"), keyForm: $("key-form"), keyInput: $("key-input"), keySave: $("key-save"),
  keyError: $("key-error"),
  compose: $("compose"), imageField: $("image-field"), dropzone: $("dropzone"), imageInput: $("image-input"),
  preview: $("preview"), dropEmpty: $("drop-empty"), imageStatus: $("image-status"),
  sampleImage: $("sample-image"), clearImage: $("clear-image"), tryExample: $("try-example"),
  prompt: $("prompt"), promptCount: $("prompt-count"), cameraCommands: $("camera-commands"),
  cameraPlan: $("camera-plan"), cameraWarnings: $("camera-warnings"), chipPreview: $("chip-preview"),
  chipPreviewImage: $("chip-preview-image"), chipPreviewCaption: $("chip-preview-caption"),
  model: $("model"), modelDescription: $("model-description"),
  durationField: $("duration-field"), durationOptions: $("duration-options"),
  resolutionField: $("resolution-field"), resolutionOptions: $("resolution-options"),
  comboNote: $("combo-note"), price: $("price"), submit: $("submit"), formError: $("form-error"),
  codePanel: $("code-panel"), codeTabs: $("code-tabs"), codeText: $("code-text"), codeCopy: $("code-copy"),
  codeNote: $("code-note"),
  result: $("result"), taskId: $("task-id"), resultEmpty: $("result-empty"), taskView: $("task-view"),
  taskState: $("task-state"), taskPercent: $("task-percent"), taskProgress: $("task-progress"),
  taskDetail: $("task-detail"), taskInput: $("task-input"), taskImage: $("task-image"),
  taskPrompt: $("task-prompt"), taskSettings: $("task-settings"), reuse: $("reuse"),
  player: $("player"), video: $("video"), taskError: $("task-error"), download: $("download"),
  cancel: $("cancel"),
  recentList: $("recent-list"), recentEmpty: $("recent-empty"), recentError: $("recent-error"),
  refreshRecent: $("refresh-recent"), moreRecent: $("more-recent"),
  announcer: $("announcer"),
};

export function announce(text) {
  // Re-setting the same text would not be read again; clear first.
  els.announcer.textContent = "";
  window.setTimeout(() => { els.announcer.textContent = text; }, 30);
}

export function showMessage(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

export function formatNumber(value) {
  return new Intl.NumberFormat().format(value);
}

export function timeAgo(ms) {
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

export function parseJson(text, fallback) {
  try {
    return text ? JSON.parse(text) : fallback;
  } catch {
    return fallback;
  }
}

/** Call `run` once typing pauses for `ms`. */
export function debounce(run, ms) {
  let timer = null;
  return (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => run(...args), ms);
  };
}
