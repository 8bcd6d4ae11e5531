// Kinema playground: the API, driven from a browser. ES modules served as they are (no framework,
// no build step), and no request leaves this server: every call is a relative URL.
//
// dom.js      the page's elements and small helpers     state.js    what the page knows
// api.js      calls to the API and their errors          account.js  the key and the balance
// image.js    choosing and uploading the image           camera.js   camera chips, previews, the plan
// form.js     model, duration, resolution, price         code.js     copy the request as code
// submit.js   Generate                                   result.js   the result card, live
// history.js  recent tasks

import { forgetKey, refreshBalance, renderAccount, saveKey } from "./account.js";
import { refreshPlan, renderCameraCommands, watchPrompt } from "./camera.js";
import { wireCode } from "./code.js";
import { els } from "./dom.js";
import { loadModels, renderPromptCount, selectModel } from "./form.js";
import { loadRecent } from "./history.js";
import { useSample, wireImageInput } from "./image.js";
import { cancelTask, reuseSettings } from "./result.js";
import { KEY_STORAGE, app } from "./state.js";
import { submit } from "./submit.js";

const EXAMPLE_PROMPT = "[Push in, Pan right] A mountain lake at sunset, mist over the water";

async function tryExample() {
  els.prompt.value = EXAMPLE_PROMPT;
  els.prompt.dispatchEvent(new Event("input", { bubbles: true }));
  await useSample();
  els.submit.focus({ preventScroll: true });
}

function start() {
  renderCameraCommands();
  wireImageInput();
  wireCode();
  watchPrompt();
  els.keyForm.addEventListener("submit", saveKey);
  els.forgetKey.addEventListener("click", () => forgetKey());
  els.prompt.addEventListener("input", renderPromptCount);
  els.model.addEventListener("change", () => selectModel(els.model.value));
  els.compose.addEventListener("submit", submit);
  els.cancel.addEventListener("click", cancelTask);
  els.reuse.addEventListener("click", reuseSettings);
  els.tryExample.addEventListener("click", tryExample);
  els.refreshRecent.addEventListener("click", () => loadRecent());
  els.moreRecent.addEventListener("click", () => loadRecent({ more: true }));

  app.key = localStorage.getItem(KEY_STORAGE);
  renderAccount();
  loadModels();
  refreshPlan();
  if (app.key) {
    refreshBalance();
    loadRecent();
  }
}

start();
