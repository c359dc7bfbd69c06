// Safe actions: confirmations that say what an action costs (the core computes it: GET .../impact),
// the core's way out of a refusal ("force") offered as a button, and the keyboard and busy states of
// wizards and forms. Uses app.js's helpers ($, $$, el, api, act, button).
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
      el("button", { value: "confirm", id: "confirm-ok", class: "danger" }, "Confirm")));
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
function confirmAction({ title, cost, confirmLabel = "Confirm", guests = [], guestsAre = "running guests affected" }) {
  const dialog = confirmDialog();
  dialog.setAttribute("aria-describedby", "confirm-cost");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-cost", dialog).textContent = cost;
  const list = $("#confirm-guests", dialog);
  list.replaceChildren(...guests.map((guest) => el("li", { "data-guest": guest }, guest)));
  list.setAttribute("aria-label", guestsAre);
  list.hidden = guests.length === 0;
  $("#confirm-ok", dialog).textContent = confirmLabel;
  dialog.returnValue = "";
  showModal(dialog);
  $("#confirm-cancel", dialog).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// The core's answer to "what does this cost?" (GET impactPath), asked before a disruptive request:
// returns the impact when confirmed, null when cancelled.
async function confirmImpact(impactPath, { title, confirmLabel }) {
  const impact = await api("GET", impactPath);
  const confirmed = await confirmAction({ title, cost: impact.cost, guests: impact.guests, confirmLabel });
  return confirmed ? impact : null;
}

// Ask, then send the request with the option the core said it needs (force), or send nothing:
// null when cancelled, else the API's answer.
async function disruptive({ impact, title, confirmLabel, method, path }) {
  const confirmed = await confirmImpact(impact, { title, confirmLabel });
  return confirmed ? api(method, withOption(path, confirmed.option)) : null;
}

function withOption(path, option) {
  if (!option) return path;
  return `${path}${path.includes("?") ? "&" : "?"}${encodeURIComponent(option)}=true`;
}

// -- the core's way out of a refusal ------------------------------------------------------------
// A refusal that names an option (the API's "option": the core's force) is the same request again
// with it: in the body when the request has one, else in the query.
function withWayOut(err, method, path, body) {
  if (!err.option) return err;
  err.retry = () => (body !== undefined && body !== null && typeof body === "object"
    ? api(method, path, { ...body, [err.option]: true }) : api(method, withOption(path, err.option)));
  return err;
}

function goAheadButton(err) {
  return button("Go ahead anyway", () => act(err.retry), { id: "go-ahead", class: "danger" });
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
