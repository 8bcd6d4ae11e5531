// The result card: the task being followed (its live stream, else polling), its own prompt and
// image with a way to run them again, and the video, which plays on its own, muted and looping.

import { refreshBalance, forgetKey } from "./account.js";
import { ApiError, FAIL_LEADS, api, describeError, outcome, sleep } from "./api.js";
import { announce, els, formatNumber, parseJson, showMessage } from "./dom.js";
import { applySettings, settingsOf } from "./form.js";
import { loadRecent, markCurrent } from "./history.js";
import { useImageUrl } from "./image.js";
import { app } from "./state.js";

const POLL_MS = 2000;
const ENDED = new Set(["success", "fail"]);
const STATE_TEXT = {
  sending: "Sending",
  waiting: "Checking the image",
  queuing: "Waiting for a worker",
  generating: "Generating",
  success: "Done",
  fail: "Failed",
};

export function stopTracking() {
  app.tracking?.controller.abort();
  app.tracking = null;
}

/** Bring the result card to the top of the window at once, unless it is there (on a phone it
 * sits below the form; beside the form, it keeps its place on its own). */
export function keepResultInView() {
  const box = els.result.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight * 0.2) {
    els.result.scrollIntoView({ block: "start", behavior: "instant" });
  }
}

function resetCard(taskId) {
  els.resultEmpty.hidden = true;
  els.taskView.hidden = false;
  els.taskId.textContent = taskId;
  els.taskId.title = taskId ? `Task ${taskId}` : "";
  showMessage(els.taskError, "");
  els.player.hidden = true;
  els.video.removeAttribute("src");
  els.video.removeAttribute("poster");
  els.video.load();
  els.download.hidden = true;
  els.cancel.hidden = true;
  els.reuse.hidden = true;
}

/** What the task was asked: its prompt and image, from the request as sent. */
function showTaskInput(model, input, imageUrl) {
  const { duration, resolution } = settingsOf(model, input);
  els.taskPrompt.textContent = input.prompt || "";
  els.taskSettings.textContent = [model, duration && `${duration} s`, resolution].filter(Boolean).join(" · ");
  els.taskInput.hidden = !input.prompt && !imageUrl;
  els.taskImage.hidden = !imageUrl;
  if (imageUrl) els.taskImage.src = imageUrl;
  else els.taskImage.removeAttribute("src");
}

/** The card the moment Generate is pressed, before the task exists. */
export function showPending(model, input, imageUrl, text) {
  stopTracking();
  app.shown = null;
  resetCard("");
  markCurrent(null);
  showTaskInput(model, input, imageUrl);
  showProgress({ state: "sending", progress: 0 });
  els.taskDetail.textContent = text;
}

export function showPendingText(text) {
  els.taskDetail.textContent = text;
}

export function showPendingError(text) {
  els.taskState.textContent = "not sent";
  els.taskState.className = "badge fail";
  els.taskDetail.textContent = "Nothing was charged.";
  showMessage(els.taskError, text);
}

function showTask(taskId, record) {
  resetCard(taskId);
  markCurrent(taskId);
  if (record) {
    const param = parseJson(record.param, {});
    const input = param.input || {};
    showTaskInput(record.model, input, input.image_url || input.end_image_url || "");
  }
}

export function showProgress(record) {
  const state = outcome(record);
  els.taskState.textContent = state;
  els.taskState.className = `badge ${state}`;
  const percent = Math.max(0, Math.min(100, Number(record.progress) || 0));
  els.taskProgress.value = percent;
  els.taskPercent.textContent = `${percent}%`;
  if (!ENDED.has(record.state)) els.taskDetail.textContent = `${STATE_TEXT[state] || state}…`;
  els.cancel.hidden = ENDED.has(record.state) || state === "sending";
}

function showRecord(record) {
  app.shown = record;
  showProgress(record);
  const input = parseJson(record.param, {}).input || {};
  const { duration, resolution } = settingsOf(record.model, input);
  const facts = [duration && `${duration} s`, resolution].filter(Boolean);
  els.reuse.hidden = false;
  if (record.state === "success") {
    const result = parseJson(record.resultJson, {});
    const url = result.resultUrls?.[0];
    if (record.costTime) facts.push(`made in ${(record.costTime / 1000).toFixed(1)} s`);
    facts.push(`${formatNumber(record.creditsConsumed)} credits`);
    els.taskDetail.textContent = facts.join(" · ");
    if (url) {
      if (record.firstFrameUrl) els.video.poster = record.firstFrameUrl;
      els.video.src = url;
      els.player.hidden = false;
      els.video.play().catch(() => {}); // muted, so allowed; a refusal leaves the controls
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
    announce(code === "499" ? "The task was canceled." : "The task failed.");
  }
}

/** Fill the form with the shown task's model, prompt, settings and image. */
export function reuseSettings() {
  const record = app.shown;
  if (!record) return;
  const input = parseJson(record.param, {}).input || {};
  applySettings(record.model, input);
  if (input.image_url) useImageUrl(input.image_url, "the task's image");
  announce("The form now holds this task's settings.");
  els.prompt.focus({ preventScroll: true });
  els.compose.scrollIntoView({ block: "start", behavior: "instant" });
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

export async function track(taskId, known = null) {
  stopTracking();
  const controller = new AbortController();
  app.tracking = { taskId, controller };
  showTask(taskId, known);
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

export async function cancelTask() {
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
