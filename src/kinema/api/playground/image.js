// The image: chosen, dropped, pasted or the sample; checked for shape here, uploaded once a key is saved.

import { api, describeError } from "./api.js";
import { announce, els, formatNumber, showMessage } from "./dom.js";
import { renderCode } from "./code.js";
import { app } from "./state.js";

const UPLOAD_PATH = "playground";
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];

export function setImageStatus(text, isError = false) {
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

export function chooseImage(file) {
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

export function startUpload() {
  const image = app.image;
  if (!image || image.url) return Promise.resolve(image?.url ?? null);
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
      renderCode();
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

export function clearImage({ quiet = false } = {}) {
  if (app.image?.previewUrl?.startsWith("blob:")) URL.revokeObjectURL(app.image.previewUrl);
  app.image = null;
  els.preview.hidden = true;
  els.preview.removeAttribute("src");
  els.dropEmpty.hidden = false;
  els.clearImage.hidden = true;
  els.imageInput.value = "";
  els.preview.onerror = null;
  setImageStatus("");
  renderCode();
  if (!quiet) {
    announce("Image removed.");
    els.imageInput.focus();
  }
}

export async function useSample() {
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

export function wireImageInput() {
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

/** An image that is already a link of this server (a task's own input, shown again). */
export function useImageUrl(url, name = "image") {
  clearImage({ quiet: true });
  app.image = { file: null, name, previewUrl: url, url, upload: null };
  els.preview.src = url;
  els.preview.hidden = false;
  els.dropEmpty.hidden = true;
  els.clearImage.hidden = false;
  els.preview.onload = () => {
    if (app.image?.url !== url) return;
    app.image.width = els.preview.naturalWidth;
    app.image.height = els.preview.naturalHeight;
    setImageStatus(`${name} · ${app.image.width} × ${app.image.height} · the task's own image`);
  };
  els.preview.onerror = () => {
    if (app.image?.url === url) setImageStatus("The task's image is no longer available; choose one.", true);
  };
  setImageStatus("The task's own image");
  renderCode();
}
