// Talking to the API: every call is a relative URL of this server, and answers the envelope's data.

import { app } from "./state.js";

export class ApiError extends Error {
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
export const FAIL_LEADS = {
  422: "The input was refused",
  499: "Canceled",
  500: "The server hit an error",
  501: "Generation failed",
  504: "Timed out",
};

/** The state to show: a task canceled by its owner (failCode 499) is not a failure. */
export function outcome(record) {
  return record.state === "fail" && record.failCode === "499" ? "canceled" : record.state;
}

/** An API error as a sentence: what happened, the code, and the server's own words. */
export function describeError(error) {
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
export async function api(path, { method = "GET", json, form, key = app.key, signal } = {}) {
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

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
