// The key (kept in this browser's local storage) and the balance.

import { ApiError, api, describeError } from "./api.js";
import { announce, els, formatNumber, showMessage } from "./dom.js";
import { renderPrice } from "./form.js";
import { clearRecent, loadRecent } from "./history.js";
import { startUpload } from "./image.js";
import { stopTracking } from "./result.js";
import { KEY_STORAGE, app } from "./state.js";

export function maskKey(key) {
  return key.length > 12 ? `${key.slice(0, 7)}…${key.slice(-4)}` : "…";
}

export function renderAccount() {
  const connected = Boolean(app.key);
  els.account.hidden = !connected;
  els.keyPanel.hidden = connected;
  if (connected) {
    els.keyHint.textContent = maskKey(app.key);
    els.balance.textContent = app.balance === null ? "…" : formatNumber(app.balance);
  }
  renderPrice();
}

export async function refreshBalance() {
  if (!app.key) return;
  try {
    app.balance = await api("/api/v1/chat/credit");
  } catch (error) {
    if (error instanceof ApiError && error.code === 401) return forgetKey(describeError(error));
  }
  renderAccount();
}

export async function saveKey(event) {
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

export function forgetKey(reason) {
  localStorage.removeItem(KEY_STORAGE);
  app.key = null;
  app.balance = null;
  stopTracking();
  clearRecent();
  renderAccount();
  if (typeof reason === "string") {
    showMessage(els.keyError, reason);
  } else {
    announce("The key is forgotten: this browser no longer holds it.");
  }
  els.keyInput.focus();
}
