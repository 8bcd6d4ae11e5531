// Copy as code: the exact request behind the form, as curl, Python (Kinema's SDK) and JavaScript.
// The key never appears: each reads it from the KINEMA_API_KEY environment variable.

import { announce, els } from "./dom.js";
import { currentInput } from "./form.js";
import { app } from "./state.js";

const LANGUAGES = { curl: "curl", python: "Python", javascript: "JavaScript" };
const IMAGE_PLACEHOLDER = "https://example.com/your-image.jpg";
let language = "curl";

/** The createTask body the form would send now. */
export function currentBody() {
  const input = currentInput();
  if (app.model && app.model.input?.properties?.image_url) {
    input.image_url = app.image?.url || IMAGE_PLACEHOLDER;
  }
  // In the order the published document lists them.
  const ordered = {};
  for (const name of ["prompt", "image_url", "duration", "resolution"]) {
    if (name in input) ordered[name] = input[name];
  }
  return { model: app.model?.model || "hailuo/2-3-image-to-video-standard", input: { ...ordered, ...input } };
}

const shellQuote = (text) => `'${text.replace(/'/g, "'\\''")}'`;
const pyString = (text) => JSON.stringify(text); // a JSON string is a valid Python string literal

export function snippet(kind, body, base = window.location.origin) {
  if (kind === "curl") {
    return [
      `curl -s ${base}/api/v1/jobs/createTask \\`,
      `  -H "Authorization: Bearer $KINEMA_API_KEY" \\`,
      "  -H 'Content-Type: application/json' \\",
      `  -d ${shellQuote(JSON.stringify(body))}`,
    ].join("\n");
  }
  if (kind === "python") {
    const args = [`model=${pyString(body.model)}`];
    for (const [name, value] of Object.entries(body.input)) args.push(`${name}=${pyString(value)}`);
    return [
      "import os",
      "",
      "from kinema.client import Client",
      "",
      `with Client(${pyString(base)}, os.environ["KINEMA_API_KEY"]) as client:`,
      "    task_id = client.create_task(",
      ...args.map((arg) => `        ${arg},`),
      "    )",
      "    task = client.wait(task_id)",
      "    print(client.download(task, f\"{task_id}.mp4\"))",
    ].join("\n");
  }
  return [
    "// Node.js 18 or later, as an ES module: save as kinema.mjs, then node kinema.mjs",
    `const base = ${JSON.stringify(base)};`,
    "const headers = {",
    "  Authorization: `Bearer ${process.env.KINEMA_API_KEY}`,",
    '  "Content-Type": "application/json",',
    "};",
    `const body = ${JSON.stringify(body, null, 2)};`,
    "",
    'const created = await fetch(`${base}/api/v1/jobs/createTask`, { method: "POST", headers, body: JSON.stringify(body) });',
    "const { code, msg, data } = await created.json();",
    "if (code !== 200) throw new Error(`${code}: ${msg}`);",
    "for (;;) {",
    "  const polled = await fetch(`${base}/api/v1/jobs/recordInfo?taskId=${data.taskId}`, { headers });",
    "  const record = (await polled.json()).data;",
    '  if (record.state === "success") { console.log(JSON.parse(record.resultJson).resultUrls[0]); break; }',
    '  if (record.state === "fail") throw new Error(`${record.failCode}: ${record.failMsg}`);',
    "  await new Promise((resolve) => setTimeout(resolve, 2000));",
    "}",
  ].join("\n");
}

export function renderCode() {
  if (!els.codePanel) return;
  for (const tab of els.codeTabs.querySelectorAll("[role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.language === language));
    tab.tabIndex = tab.dataset.language === language ? 0 : -1;
  }
  els.codeText.textContent = snippet(language, currentBody());
  const waiting = app.model?.input?.properties?.image_url && !app.image?.url;
  els.codeNote.textContent = waiting
    ? "Choose an image (and save your key) to put its uploaded link in place of the example URL."
    : "Set KINEMA_API_KEY to your key first; the code never holds it.";
}

async function copy() {
  const text = els.codeText.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without the clipboard API (a page not on localhost or https): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents(els.codeText);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    announce("Selected: press Ctrl+C (or ⌘C) to copy.");
    return;
  }
  els.codeCopy.textContent = "Copied";
  announce(`${LANGUAGES[language]} code copied.`);
  window.setTimeout(() => { els.codeCopy.textContent = "Copy"; }, 1500);
}

export function wireCode() {
  const tabs = Object.entries(LANGUAGES).map(([kind, label]) => {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.role = "tab";
    tab.className = "code-tab";
    tab.dataset.language = kind;
    tab.textContent = label;
    tab.setAttribute("aria-controls", "code-text");
    tab.addEventListener("click", () => {
      language = kind;
      renderCode();
    });
    return tab;
  });
  els.codeTabs.replaceChildren(...tabs);
  els.codeCopy.addEventListener("click", copy);
  els.codePanel.addEventListener("toggle", renderCode);
  renderCode();
}
