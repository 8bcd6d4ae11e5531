// What the page knows right now, shared by its parts.

export const KEY_STORAGE = "kinema.playground.apiKey";

export const app = {
  key: null,
  balance: null,
  models: [],
  model: null,
  choice: { duration: null, resolution: null },
  image: null, // {file, previewUrl, width, height, url (uploaded), upload (promise)}
  tracking: null, // {taskId, controller}
  shown: null, // the record the result card shows, once it has one
  recentCursor: null,
  camera: { prompt: "", unknown: [], confirmed: "" }, // the prompt's unknown camera commands
};
