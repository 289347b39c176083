// Progressive enhancement only: every page works without this file.
"use strict";

document.documentElement.classList.add("js");

const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"];

// The threshold is a number box without JavaScript (its value is always the one sent); here it
// becomes a slider whose value is shown next to its label while it moves.
function bindSliderOutputs() {
  for (const slider of document.querySelectorAll("[data-threshold-slider]")) {
    const output = document.getElementById(`${slider.id}-value`);
    slider.type = "range";
    output.textContent = `${slider.value}%`;
    slider.addEventListener("input", () => {
      output.textContent = `${slider.value}%`;
    });
  }
}

function formatMegabytes(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

// Search form: drop, paste or pick a file, and preview it.
function bindImageInput() {
  const form = document.querySelector("[data-search-form]");
  if (!form) return;
  const zone = form.querySelector("[data-dropzone]");
  const input = form.querySelector("#file");
  const preview = form.querySelector("[data-preview]");
  const fileName = form.querySelector("[data-file-name]");
  const sizeError = form.querySelector("[data-size-error]");
  const maxBytes = Number(form.dataset.maxBytes);
  // After an error on a refined search, the form keeps that search's photo: shown until
  // another is chosen, and again if the choice is undone.
  const keptSrc = preview.hasAttribute("data-kept") ? preview.getAttribute("src") : null;
  const keptText = fileName.dataset.keptText || "";
  let previewUrl = null;

  // The server refuses a file over the limit, but only once it has been sent: say so now.
  function tooLarge() {
    const file = input.files && input.files[0];
    const over = Boolean(file) && file.size > maxBytes;
    sizeError.hidden = !over;
    sizeError.textContent = over
      ? `That file is ${formatMegabytes(file.size)}, over the ${form.dataset.maxMb} MB limit; choose a smaller image.`
      : "";
    return over;
  }

  function showPreview() {
    const file = input.files && input.files[0];
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    if (!file) {
      if (keptSrc) preview.src = keptSrc;
      preview.hidden = !keptSrc;
      zone.classList.toggle("has-image", Boolean(keptSrc));
      fileName.textContent = keptSrc ? keptText : "";
      return;
    }
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    zone.classList.add("has-image");
    fileName.textContent = `Selected: ${file.name || "pasted image"} (${Math.ceil(file.size / 1024)} KB)`;
  }

  function fileChanged() {
    showPreview();
    tooLarge();
  }

  function useFile(file) {
    if (!file || !IMAGE_TYPES.includes(file.type)) {
      fileName.textContent = "That is not an image we can use (JPEG, PNG, WebP, GIF or BMP).";
      return;
    }
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    fileChanged();
  }

  input.addEventListener("change", fileChanged);
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("is-dragover");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("is-dragover"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (!file) return; // pasting text into the URL field stays normal
    event.preventDefault();
    useFile(file);
  });
  form.addEventListener("submit", (event) => {
    if (tooLarge()) {
      event.preventDefault();
      return;
    }
    const button = form.querySelector("[data-submit]");
    button.disabled = true;
    button.textContent = "Searching…";
  });
  window.addEventListener("pageshow", () => {
    const button = form.querySelector("[data-submit]");
    button.disabled = false;
    button.textContent = "Search";
  });
  fileChanged();
}

// The results' own address: the refine form's action with the fields the page was made with
// (`applied`, as its GET sent them) and the slider's threshold. Fields changed but not yet
// submitted are not in it: they do not show on the page. null for a form that POSTs (a query
// that could not be saved for a link).
function resultsAddress(form, applied, threshold) {
  if (form.method !== "get") return null;
  const params = new URLSearchParams();
  for (const [name, value] of applied) {
    if (name === "threshold") params.append(name, threshold);
    else if (typeof value === "string" && value !== "") params.append(name, value);
  }
  const url = new URL(form.action);
  url.search = params.toString();
  return url.pathname + url.search;
}

// Results page: the slider hides and shows the cards already on the page, instantly, and the
// "More like this" links carry its value. The address bar (and the "Share link")
// follows, so what is copied or reloaded shows what is on the screen.
function bindResultFilter() {
  const form = document.querySelector("[data-refine]");
  const grid = document.querySelector("[data-results]");
  if (!form || !grid) return;
  const slider = form.querySelector("[data-threshold-slider]");
  const cards = [...grid.querySelectorAll("[data-similarity]")];
  const links = [...grid.querySelectorAll("a[data-similar-link]")];
  const shareLink = document.querySelector("[data-share-link]");
  const applied = [...new FormData(form)];
  let addressTimer = 0;
  const text = (selector) => document.querySelector(selector);

  function updateAddress() {
    const address = resultsAddress(form, applied, slider.value);
    if (!address) return;
    // replaceState: moving the slider is not a page of its own in the history.
    history.replaceState(history.state, "", address);
    if (shareLink) shareLink.href = address;
  }

  function refilter() {
    // data-percent is the label's own whole percent: the card shown is the card labelled.
    const threshold = Number(slider.value);
    let shown = 0;
    for (const card of cards) {
      const visible = Number(card.dataset.percent) >= threshold;
      card.hidden = !visible;
      if (visible) shown += 1;
    }
    const below = cards.length - shown;
    text("[data-shown-count]").textContent = shown;
    text("[data-shown-noun]").textContent = shown === 1 ? "match" : "matches";
    text("[data-threshold-text]").textContent = `${slider.value}%`;
    text("[data-below-count]").textContent = below;
    text("[data-below-noun]").textContent = below === 1 ? "result" : "results";
    text("[data-below]").hidden = below === 0;
    text("[data-empty]").hidden = shown > 0;
    for (const link of links) {
      const url = new URL(link.href);
      url.searchParams.set("threshold", slider.value);
      link.href = url.pathname + url.search;
    }
    // Once the slider rests: browsers throttle a page that replaces its address too often.
    clearTimeout(addressTimer);
    addressTimer = setTimeout(updateAddress, 150);
  }

  slider.addEventListener("input", refilter);
  // A POSTed search's address (/search) becomes its link, so a reload or a copy shows it again.
  if (form.hasAttribute("data-replace-address")) updateAddress();
}

// Catalog: changing the category filter applies it at once.
function bindAutoSubmit() {
  for (const form of document.querySelectorAll("[data-autosubmit]")) {
    form.addEventListener("change", () => form.requestSubmit());
  }
}

bindSliderOutputs();
bindImageInput();
bindResultFilter();
bindAutoSubmit();
