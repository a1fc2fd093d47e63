// Talks to the imgpipe HTTP API: upload with progress, long-poll a job to its end, page through recent jobs.
// Nothing here touches the page.

const IMAGES = new URL("api/v1/images", document.baseURI).href;
const LONG_POLL_SECONDS = 30;
const FINAL = new Set(["DONE", "FAILED"]);

/** An answer that is not a success: `detail` is the server's sentence (RFC 9457), fit to show as is. */
export class ApiError extends Error {
  constructor(status, detail, code = "") {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.code = code;
  }
}

export const isFinal = (status) => FINAL.has(status);

/**
 * At most `size` requests at once. A browser keeps about six connections per server;
 * long-polls and uploads must leave some free for images and the gallery.
 */
class Slots {
  constructor(size) {
    this.free = size;
    this.waiting = [];
  }

  async run(task) {
    if (this.free > 0) {
      this.free -= 1;
    } else {
      await new Promise((resolve) => this.waiting.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); else this.free += 1;
    }
  }
}

const uploadSlots = new Slots(2);
const pollSlots = new Slots(3);

function problemOf(status, body) {
  if (body && typeof body.detail === "string") return new ApiError(status, body.detail, body.code || "");
  return new ApiError(status, `The server answered ${status || "nothing"}; please try again.`);
}

async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch {
    throw new ApiError(0, "The server cannot be reached right now.");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || body === null) throw problemOf(response.status, body);
  return body;
}

/**
 * Upload one file as the multipart field `file`. Resolves with the job (202); rejects with an
 * ApiError carrying the server's `detail` (413 too big, 415 not an image, 422 ...).
 */
export function uploadFile(file, onProgress) {
  return uploadSlots.run(() => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", IMAGES);
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300 && xhr.response) resolve(xhr.response);
      else reject(problemOf(xhr.status, xhr.response));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0,
      "The connection broke during the upload. The server may have refused the file (too large?), or it is away.")));
    xhr.addEventListener("timeout", () => reject(new ApiError(0, "The upload timed out.")));
    const form = new FormData();
    form.append("file", file, file.name);
    onProgress(0);
    xhr.send(form);
  }));
}

export const getJob = (id, wait = 0) =>
  getJSON(`${IMAGES}/${encodeURIComponent(id)}${wait ? `?wait=${wait}` : ""}`);

export function listJobs(limit, cursor = null) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  return getJSON(`${IMAGES}?${params}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follow a job with long-polls (`?wait=30`, answered at once on each change) until it is final.
 * `onUpdate(job)` sees every new status. A brief outage is retried with backoff; 404 ends it.
 */
export async function followJob(job, onUpdate) {
  let current = job;
  let backoff = 1000;
  while (!isFinal(current.status)) {
    try {
      const latest = await pollSlots.run(() => getJob(current.id, LONG_POLL_SECONDS));
      backoff = 1000;
      if (latest.status !== current.status || latest.updated_at !== current.updated_at) onUpdate(latest);
      current = latest;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) throw error;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 15000);
    }
  }
  return current;
}
