// Builds and updates the page's pieces: an upload card, a gallery tile, the live announcements.
// Only DOM work here; no requests.

const EXTENSIONS = {
  "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif",
  "image/avif": "avif", "image/heic": "heic", "image/heif": "heif", "image/tiff": "tif", "image/bmp": "bmp",
};

const STATUS_WORDS = {
  UPLOADING: "uploading", PENDING: "waiting for a worker", PROCESSING: "making the thumbnail",
  DONE: "done", FAILED: "failed", REJECTED: "refused by the server",
};

export function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1000;
    unit += 1;
  } while (value >= 999.95 && unit < units.length - 1);
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** "JPEG · 1200 × 1800 · 352.7 kB" */
export function describe(item) {
  const kind = (item.format || item.content_type.replace(/^image\//, "")).toUpperCase();
  return `${kind} · ${item.width} × ${item.height} · ${formatBytes(item.bytes)}`;
}

const variant = (job, type) => (job.variants || []).find((v) => v.type === type);
const jobName = (job) => (job.original && job.original.filename) || `image ${job.id.slice(0, 8)}`;
const downloadName = (job, v) => `${job.id}-${v.type}.${EXTENSIONS[v.content_type] || "bin"}`;

function fromTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

function setBadge(badge, status) {
  badge.textContent = status;
  badge.dataset.status = status;
}

function link(href, text, attributes = {}) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  for (const [name, value] of Object.entries(attributes)) a.setAttribute(name, value);
  return a;
}

function showImage(img, note, src, alt, width, height) {
  img.alt = alt;
  if (width && height) {
    img.width = width;
    img.height = height;
  }
  img.addEventListener("load", () => { img.hidden = false; note.hidden = true; }, { once: true });
  img.addEventListener("error", () => {
    img.hidden = true;
    note.hidden = false;
    note.textContent = "No preview for this format";
  }, { once: true });
  img.src = src;
}

// --- upload cards -----------------------------------------------------------------------------

/** A card for a file the user just picked: local preview (object URL) and an upload progress bar. */
export function createCard(file) {
  const card = fromTemplate("job-card-template");
  card.querySelector('[data-testid="job-name"]').textContent = file.name;
  const original = card.querySelector(".original");
  const note = original.nextElementSibling;
  original.hidden = true;
  showImage(original, note, URL.createObjectURL(file), `Original: ${file.name}`);
  const progress = card.querySelector("progress");
  progress.setAttribute("aria-label", `Upload progress of ${file.name}`);
  setCardState(card, "UPLOADING");
  card.querySelector(".card-percent").textContent = "queued";
  return card;
}

function setCardState(card, status) {
  card.dataset.status = status;
  setBadge(card.querySelector('[data-testid="job-status"]'), status);
  const uploading = status === "UPLOADING";
  card.querySelector("progress").hidden = !uploading;
  card.querySelector(".card-percent").hidden = !uploading;
  if (!uploading) card.querySelector(".card-percent").textContent = "";
}

export function showUploadProgress(card, fraction) {
  const percent = Math.round(fraction * 100);
  card.querySelector("progress").value = percent;
  card.querySelector(".card-percent").textContent = `${percent}%`;
}

function showError(node, message) {
  node.hidden = !message;
  node.textContent = message || "";
}

/** The server refused the upload: show its `detail`, nothing more technical. */
export function showRejected(card, detail) {
  setCardState(card, "REJECTED");
  showError(card.querySelector('[data-testid="error"]'), detail);
  card.querySelector(".figure-thumb").hidden = true;
}

/** Bring a card up to date with the job as the API reports it. */
export function updateCard(card, job) {
  card.dataset.jobId = job.id;
  setCardState(card, job.status);
  const name = jobName(job);
  const thumb = variant(job, "thumbnail");
  const thumbFigure = card.querySelector(".figure-thumb");
  const img = card.querySelector(".thumbnail");
  if (thumb && !img.hasAttribute("src")) showImage(img, img.nextElementSibling, thumb.url, `Thumbnail of ${name}`, thumb.width, thumb.height);
  thumbFigure.hidden = job.status === "FAILED";
  showError(card.querySelector('[data-testid="error"]'), job.status === "FAILED" && job.error ? job.error.message : "");

  const facts = card.querySelector(".facts");
  facts.replaceChildren();
  const fact = (term, value, testid) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    if (testid) dd.dataset.testid = testid;
    facts.append(dt, dd);
  };
  if (job.original) fact("Original", describe(job.original), "original-facts");
  if (thumb) fact("Thumbnail", describe(thumb), "thumbnail-facts");
  fact("Job", job.id, "job-id");

  const actions = card.querySelector(".actions");
  actions.replaceChildren();
  for (const v of job.variants || []) {
    actions.append(link(v.url, `Download ${v.type}`, {
      class: "button", download: downloadName(job, v), "data-testid": `download-${v.type}`,
    }));
  }
  actions.append(link(job.links.self, "Job JSON", { class: "button button-quiet", "data-testid": "job-json" }));
}

// --- gallery tiles ----------------------------------------------------------------------------

export function createTile(job) {
  const tile = fromTemplate("gallery-tile-template");
  tile.dataset.jobId = job.id;
  updateTile(tile, job);
  return tile;
}

export function updateTile(tile, job) {
  const name = jobName(job);
  tile.dataset.status = job.status;
  tile.querySelector(".tile-name").textContent = name;
  setBadge(tile.querySelector(".badge"), job.status);
  tile.querySelector(".tile-dims").textContent = job.original ? `${job.original.width} × ${job.original.height}` : "";
  const time = tile.querySelector(".tile-time");
  time.dateTime = job.created_at;
  time.textContent = new Date(job.created_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const json = tile.querySelector(".tile-json");
  json.href = job.links.self;
  json.setAttribute("aria-label", `Job JSON of ${name}`);

  const original = variant(job, "original");
  const thumb = variant(job, "thumbnail");
  const anchor = tile.querySelector(".tile-link");
  anchor.href = original ? original.url : job.links.self;
  anchor.setAttribute("aria-label", `Open the original of ${name}`);
  const img = tile.querySelector(".tile-thumb");
  const note = img.nextElementSibling;
  if (thumb && !img.hasAttribute("src")) showImage(img, note, thumb.url, `Thumbnail of ${name}`, thumb.width, thumb.height);
  if (!thumb) note.textContent = STATUS_WORDS[job.status] || job.status;
  showError(tile.querySelector(".tile-error"), job.status === "FAILED" && job.error ? job.error.message : "");
}

// --- announcements ----------------------------------------------------------------------------

/** Read a status change out to screen readers; keep only the last few lines in the live region. */
export function announce(name, status, detail = "") {
  const live = document.getElementById("live");
  const line = document.createElement("p");
  line.textContent = `${name}: ${STATUS_WORDS[status] || status}${detail ? `. ${detail}` : ""}`;
  live.append(line);
  while (live.childElementCount > 5) live.firstElementChild.remove();
}
