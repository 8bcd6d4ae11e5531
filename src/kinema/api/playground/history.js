// Recent tasks: the account's newest tasks, each with its prompt, settings and outcome; a click
// shows it in the result card.

import { api, describeError, outcome } from "./api.js";
import { els, parseJson, showMessage, timeAgo } from "./dom.js";
import { settingsOf } from "./form.js";
import { track } from "./result.js";
import { app } from "./state.js";

const PAGE_SIZE = 8;

export function markCurrent(taskId) {
  for (const button of els.recentList.querySelectorAll("button.task-item")) {
    button.setAttribute("aria-current", String(button.dataset.taskId === taskId));
  }
}

export function clearRecent() {
  els.recentList.replaceChildren();
  els.recentEmpty.hidden = false;
  els.moreRecent.hidden = true;
}

function recentItem(record) {
  const input = parseJson(record.param, {}).input || {};
  const button = document.createElement("button");
  button.type = "button";
  button.className = "task-item";
  button.dataset.taskId = record.taskId;
  let thumb;
  if (record.firstFrameUrl) {
    thumb = document.createElement("img");
    thumb.src = record.firstFrameUrl;
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
  const state = outcome(record);
  const badge = document.createElement("span");
  badge.className = `badge ${state}`;
  badge.textContent = state;
  const { duration, resolution } = settingsOf(record.model, input);
  const facts = document.createElement("span");
  facts.textContent = [duration && `${duration} s`, resolution, timeAgo(record.createTime)]
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

export async function loadRecent({ more = false } = {}) {
  if (!app.key) return;
  showMessage(els.recentError, "");
  const cursor = more && app.recentCursor ? `&cursor=${encodeURIComponent(app.recentCursor)}` : "";
  try {
    const page = await api(`/api/v1/jobs/list?pageSize=${PAGE_SIZE}${cursor}`);
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
