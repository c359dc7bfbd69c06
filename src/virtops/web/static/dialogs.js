// Safe actions: confirmations that say what an action costs (the core computes it: GET .../impact),
// the core's ways out of a refusal (force; a pool's volumes deleted too or kept) offered as buttons,
// and the keyboard and busy states of wizards and forms. Uses app.js's helpers ($, $$, el, api, act, button).
"use strict";

// -- the one modal dialog ----------------------------------------------------------------------
// Every dialog of the console (confirmations here, parity.js's forms) is this <dialog>: shown modal
// (the rest of the page inert), titled by its h2, Tab kept inside, Escape closing it, and the focus
// back where it was once it closes.
function modalDialog({ id, titleId = `${id}-title`, className = "" }, title, ...children) {
  const dialog = el("dialog", { id, class: `modal ${className}`.trim(), "aria-labelledby": titleId },
    el("h2", { id: titleId }, title), ...children);
  dialog.addEventListener("keydown", (event) => keepFocusIn(dialog, event));
  document.body.append(dialog);
  return dialog;
}

function showModal(dialog) {
  const opener = document.activeElement;
  dialog.addEventListener("close", () => { if (opener && opener.isConnected) opener.focus(); }, { once: true });
  dialog.showModal();
}

// -- confirmations ----------------------------------------------------------------------------
// One per page: Escape and Cancel (the button that has focus, so Enter cancels too) leave
// everything as it was.
function confirmDialog() {
  return $("#confirm-dialog") || modalDialog({ id: "confirm-dialog", titleId: "confirm-title", className: "confirm" }, "",
    el("p", { id: "confirm-cost", class: "cost" }),
    el("ul", { id: "confirm-guests", class: "guests", "aria-label": "running guests affected" }),
    el("form", { method: "dialog", class: "dialog-buttons" },
      el("button", { value: "cancel", id: "confirm-cancel" }, "Cancel"),
      el("button", { value: "confirm", id: "confirm-ok", class: "danger" }, "Confirm"),
      el("span", { id: "confirm-ways" })));
}

function keepFocusIn(container, event) {
  if (event.key !== "Tab") return;
  const focusable = $$("button, input, select, textarea, a[href]", container).filter((node) => !node.disabled && !node.hidden);
  if (!focusable.length) return;
  const [first, last] = [focusable[0], focusable[focusable.length - 1]];
  if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
  else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
}

// Resolves true when the operator confirms, false on Cancel or Escape; focus goes back where it was.
// `ways` (the core's ways out: {option, value, does}) are the choices in place of Confirm, a button
// each: it resolves to the way chosen.
function confirmAction({ title, cost, confirmLabel = "Confirm", guests = [], guestsAre = "running guests affected", ways = [] }) {
  const dialog = confirmDialog();
  dialog.setAttribute("aria-describedby", "confirm-cost");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-cost", dialog).textContent = cost;
  const list = $("#confirm-guests", dialog);
  list.replaceChildren(...guests.map((guest) => el("li", { "data-guest": guest }, guest)));
  list.setAttribute("aria-label", guestsAre);
  list.hidden = guests.length === 0;
  $("#confirm-ok", dialog).textContent = confirmLabel;
  $("#confirm-ok", dialog).hidden = ways.length > 0;
  $("#confirm-ways", dialog).replaceChildren(...ways.map((way, i) =>
    el("button", { value: `way-${i}`, class: "danger", "data-way": way.option, "data-value": String(way.value) }, wayLabel(way))));
  dialog.returnValue = "";
  showModal(dialog);
  $("#confirm-cancel", dialog).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const chosen = /^way-(\d+)$/.exec(dialog.returnValue);
      resolve(chosen ? ways[Number(chosen[1])] : dialog.returnValue === "confirm");
    }, { once: true });
  });
}

// A way out in the console's words: what it does, as the core says it ("delete the volumes too").
const wayLabel = (way) => way.does.charAt(0).toUpperCase() + way.does.slice(1);

// The core's answer to "what does this cost?" (GET impactPath), asked before a disruptive request:
// returns the impact when confirmed (with the way chosen, when it offers ways), null when cancelled.
async function confirmImpact(impactPath, { title, confirmLabel }) {
  const impact = await api("GET", impactPath);
  const confirmed = await confirmAction({ title, cost: impact.cost, guests: impact.guests, confirmLabel, ways: impact.ways || [] });
  return confirmed ? { ...impact, chosen: confirmed === true ? null : confirmed } : null;
}

// Ask, then send the request with the option the core said it needs (force) and the way chosen, or
// send nothing: null when cancelled, else the API's answer.
async function disruptive({ impact, title, confirmLabel, method, path }) {
  const confirmed = await confirmImpact(impact, { title, confirmLabel });
  if (!confirmed) return null;
  const options = { ...(confirmed.option ? { [confirmed.option]: true } : {}),
    ...(confirmed.chosen ? { [confirmed.chosen.option]: confirmed.chosen.value } : {}) };
  return api(method, withOptions(path, options));
}

// The path with query parameters set (replaced when it has them already).
function withOptions(path, options) {
  if (!Object.keys(options).length) return path;
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(options)) url.searchParams.set(name, String(value));
  return url.pathname + url.search;
}

// -- the core's ways out of a refusal -------------------------------------------------------------
// A refusal that names ways out (the API's "ways": an option and its value each) can be sent again
// with one of them: in the body when the request has one, else in the query. Any refusal, whichever
// action met it, is offered so: a dialog with the core's sentence, a button per way, and Cancel.
function withWayOut(err, method, path, body) {
  if (!err.ways || !err.ways.length) return err;
  err.retry = (way) => (body !== undefined && body !== null && typeof body === "object"
    ? api(method, path, { ...body, [way.option]: way.value }) : api(method, withOptions(path, { [way.option]: way.value })));
  return err;
}

// Cancel (or Escape) sends nothing: the host stays as it was, the sentence stays on the page.
async function offerWaysOut(err) {
  const way = await confirmAction({ title: "Not done yet: how should it go on?", cost: err.message, ways: err.ways });
  if (way && way !== true) await act(() => err.retry(way));
}

function waysOutButton(err) {
  return button("Ways out…", () => offerWaysOut(err), { id: "ways-out" });
}

// -- wizards and forms ----------------------------------------------------------------------------
// A step indicator above the steps: "Step 2 of 5: IPv4 address space", and the list of steps with
// aria-current on the one shown. The steps' names are their legends.
function stepIndicator(form, steps) {
  const names = steps.map((step) => ($("legend", step)?.textContent || "").replace(/^\d+\.\s*/, ""));
  const status = el("p", { class: "step-now", "aria-live": "polite" });
  const list = el("ol", { class: "steps", "aria-label": "steps" }, ...names.map((name) => el("li", {}, name)));
  steps[0].before(el("nav", { class: "step-indicator", "aria-label": "wizard steps" }, status, list));
  return (at) => {
    status.textContent = `Step ${at + 1} of ${steps.length}: ${names[at]}`;
    [...list.children].forEach((item, i) => { if (i === at) item.setAttribute("aria-current", "step"); else item.removeAttribute("aria-current"); });
  };
}

// Focus on a step's first field, else on fallback (Forward, or the summary's Finish), so Enter moves on.
function focusFirst(step, fallback) {
  const field = $$("input, select, textarea", step).find((node) => !node.disabled && node.type !== "hidden" && !node.closest("[hidden]"));
  (field || fallback)?.focus();
}

// Keys of a wizard: Enter in a field goes to the next step (it never finishes early: only the
// summary's Finish, by its button or Enter there, does); Escape cancels.
function wizardKeys(form, { onLastStep, next, cancel }) {
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); cancel(); return; }
    if (event.key !== "Enter" || onLastStep() || event.target.tagName === "TEXTAREA" || event.target.tagName === "BUTTON") return;
    event.preventDefault();
    next();
  });
}

// Runs work with `scope` (a form, or one control) disabled, so a second click sends nothing; a
// spinner shows when it takes longer than half a second. Returns work's result; while one runs,
// another call returns undefined at once.
const SPINNER_AFTER_MS = 500;
async function whileBusy(scope, work) {
  if (scope.dataset.busy) return undefined;
  scope.dataset.busy = "yes";
  scope.setAttribute("aria-busy", "true");
  const controls = scope.elements ? [...scope.elements] : [scope], focused = document.activeElement;
  const wasDisabled = controls.map((control) => control.disabled);
  controls.forEach((control) => { control.disabled = true; });
  const spinner = el("span", { class: "spinner", role: "status" }, "Working…");
  const timer = setTimeout(() => (scope.elements ? scope.append(spinner) : scope.after(spinner)), SPINNER_AFTER_MS);
  try {
    return await work();
  } finally {
    clearTimeout(timer);
    spinner.remove();
    controls.forEach((control, i) => { control.disabled = wasDisabled[i]; });
    delete scope.dataset.busy;
    scope.removeAttribute("aria-busy");
    // A disabled control lost the focus to the page: it goes back, so Escape and Tab work there again.
    if (document.activeElement === document.body && focused && focused.isConnected && !focused.disabled) focused.focus();
  }
}
