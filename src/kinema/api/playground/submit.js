// Generate: the form checked, the result card shown at once (and kept in view), the image
// uploaded if it is not yet, the task created and followed.

import { refreshBalance } from "./account.js";
import { api, describeError } from "./api.js";
import { announce, els, showMessage } from "./dom.js";
import { refreshPlan } from "./camera.js";
import { currentInput, property } from "./form.js";
import { loadRecent } from "./history.js";
import { startUpload } from "./image.js";
import { keepResultInView, showPending, showPendingError, showPendingText, track } from "./result.js";
import { app } from "./state.js";

function setBusy(text) {
  els.submit.disabled = Boolean(text);
  els.submit.textContent = text || "Generate video";
}

/** Stop once for unknown camera commands: the second press sends the prompt as it is. */
function cameraDoubt() {
  const { prompt, unknown, confirmed } = app.camera;
  if (!unknown.length || prompt !== els.prompt.value || confirmed === prompt) return null;
  app.camera.confirmed = prompt;
  const names = unknown.map((item) => `[${item.text}]`).join(", ");
  return `${names} ${unknown.length > 1 ? "are not camera commands" : "is not a camera command"}, so the camera will not do what it says. Fix it above, or press Generate again to send the prompt as it is.`;
}

export async function submit(event) {
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
  const input = currentInput();
  if (!input.prompt) return fail("Write a prompt first.", els.prompt);
  if (app.camera.prompt !== els.prompt.value) await refreshPlan();
  const doubt = cameraDoubt();
  if (doubt) return fail(doubt, els.prompt);

  showPending(app.model.model, input, needsImage ? app.image.previewUrl : "", "Creating the task…");
  keepResultInView();
  try {
    if (needsImage) {
      if (!app.image.url) {
        setBusy("Uploading the image…");
        showPendingText("Uploading the image…");
      }
      input.image_url = app.image.url || (await (app.image.upload || startUpload()));
      if (!input.image_url) return;
    }
    setBusy("Creating the task…");
    showPendingText("Creating the task…");
    const data = await api("/api/v1/jobs/createTask", {
      method: "POST",
      json: { model: app.model.model, input },
    });
    announce("Task created.");
    track(data.taskId);
    refreshBalance();
    loadRecent();
  } catch (error) {
    fail(describeError(error));
    showPendingError(describeError(error));
  } finally {
    setBusy(null);
  }
}
