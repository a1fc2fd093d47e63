// The upload page: pick, drop or paste images; each uploads with a progress bar, then its status
// follows live (long-poll) until DONE or FAILED. Below, the gallery of recent uploads.

import { ApiError, followJob, isFinal, listJobs, uploadFile } from "./api.js";
import {
  announce, createCard, createTile, showRejected, showUploadProgress, updateCard, updateTile,
} from "./views.js";

const PAGE_SIZE = 12;

const input = document.getElementById("file-input");
const dropzone = document.querySelector('[data-testid="drop-zone"]');
const cards = document.querySelector('[data-testid="uploads"]');
const gallery = document.querySelector('[data-testid="gallery"]');
const loadMore = document.querySelector('[data-testid="load-more"]');
const galleryEmpty = document.querySelector('[data-testid="gallery-empty"]');
const galleryError = document.querySelector('[data-testid="gallery-error"]');

const tiles = new Map(); // job id -> gallery tile
const cardsById = new Map(); // job id -> upload card (only for uploads made on this page)
const followed = new Set(); // job ids with a long-poll loop running
let nextCursor = null;

// --- one job's life on the page ------------------------------------------------------------------

function showJob(job) {
  const card = cardsById.get(job.id);
  if (card) updateCard(card, job);
  const tile = tiles.get(job.id);
  if (tile) updateTile(tile, job);
}

/** One long-poll loop per job, however many places show it. */
async function follow(job) {
  if (isFinal(job.status) || followed.has(job.id)) return;
  followed.add(job.id);
  try {
    const last = await followJob(job, (latest) => {
      showJob(latest);
      const card = cardsById.get(latest.id);
      const failure = latest.status === "FAILED" && latest.error ? latest.error.message : "";
      if (card) announce(card.querySelector('[data-testid="job-name"]').textContent, latest.status, failure);
    });
    showJob(last);
  } catch (error) {
    const card = cardsById.get(job.id);
    if (card) showRejected(card, error.detail || String(error));
  } finally {
    followed.delete(job.id);
  }
}

async function upload(file) {
  const card = createCard(file);
  cards.prepend(card);
  announce(file.name, "UPLOADING");
  let job;
  try {
    job = await uploadFile(file, (fraction) => showUploadProgress(card, fraction));
  } catch (error) {
    const detail = error instanceof ApiError ? error.detail : "The upload failed.";
    showRejected(card, detail);
    announce(file.name, "REJECTED", detail);
    return;
  }
  cardsById.set(job.id, card);
  addTiles([job], { atTop: true });
  showJob(job);
  announce(file.name, job.status);
}

function uploadAll(files) {
  for (const file of Array.from(files || [])) upload(file);
}

// --- picking, dropping, pasting ---------------------------------------------------------------------

input.addEventListener("change", () => {
  uploadAll(input.files);
  input.value = ""; // picking the same file again must upload it again
});

const carriesFiles = (event) => Array.from(event.dataTransfer ? event.dataTransfer.types : []).includes("Files");

// The whole window accepts a drop (a miss must not navigate away); the drop zone lights up.
window.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  dropzone.classList.add("is-dragging");
});
window.addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) dropzone.classList.remove("is-dragging");
});
window.addEventListener("drop", (event) => {
  dropzone.classList.remove("is-dragging");
  if (!carriesFiles(event)) return;
  event.preventDefault();
  uploadAll(event.dataTransfer.files);
});

document.addEventListener("paste", (event) => {
  const files = event.clipboardData ? event.clipboardData.files : null;
  if (files && files.length) {
    event.preventDefault();
    uploadAll(files);
  }
});

// --- the gallery ------------------------------------------------------------------------------------

function addTiles(jobs, { atTop = false } = {}) {
  const fresh = [];
  for (const job of jobs) {
    if (tiles.has(job.id)) continue;
    const tile = createTile(job);
    tiles.set(job.id, tile);
    fresh.push(tile);
    follow(job);
  }
  if (atTop) gallery.prepend(...fresh);
  else gallery.append(...fresh);
  galleryEmpty.hidden = tiles.size > 0;
  return fresh;
}

async function loadPage() {
  loadMore.disabled = true;
  gallery.setAttribute("aria-busy", "true");
  try {
    const page = await listJobs(PAGE_SIZE, nextCursor);
    galleryError.hidden = true;
    const fresh = addTiles(page.items);
    nextCursor = page.next_cursor;
    loadMore.hidden = !nextCursor;
    if (fresh.length && document.activeElement === loadMore && !nextCursor) {
      fresh[0].querySelector("a").focus(); // the button vanishes: keep keyboard users in place
    }
  } catch (error) {
    galleryError.textContent = `Recent uploads cannot be shown: ${error.detail || error}`;
    galleryError.hidden = false;
  } finally {
    loadMore.disabled = false;
    gallery.removeAttribute("aria-busy");
  }
}

loadMore.addEventListener("click", loadPage);
loadPage();
