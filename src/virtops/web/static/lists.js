// Every table of the console (app.js's table() draws through drawTable here): an empty state, a
// box that scrolls sideways on a narrow screen, and per-object names for repeated buttons. A table
// marked data-list is a list at scale: search, sortable columns in natural order (n1, n2, n10),
// filters by a column's values (data-filter="State Host"), pages, all kept in the URL's query so
// a reload or a shared link shows the same; data-bulk adds a checkbox per row and bulk actions.
// Values from the host are set as text, never as HTML.
"use strict";

const PAGE_ROWS = 50;
const naturally = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const SIZE_TEXT = /^(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB|PiB)$/;

function drawTable(node, columns, rows, rowAttrs = () => ({})) {
  if ("list" in node.dataset) return drawList(node, columns, rows, rowAttrs);
  boxed(node);
  node.replaceChildren(
    el("thead", {}, el("tr", {}, ...columns.map(([heading]) => el("th", { scope: "col" }, heading || unseen("Actions"))))),
    el("tbody", {}, ...(rows.length ? rows.map((row) => tableRow(columns, row, rowAttrs(row)))
      : [emptyRow(columns.length, node.dataset.empty || "Nothing here yet.")])),
  );
}

// A table scrolls inside its own box, so a phone's page never scrolls sideways.
function boxed(node) {
  if (!node.parentElement.classList.contains("table-box")) {
    const box = el("div", { class: "table-box" });
    node.before(box);
    box.append(node);
  }
}

function tableRow(columns, row, attrs, before = []) {
  const tr = el("tr", attrs, ...before, ...columns.map(([, cell]) => {
    const value = cell(row);
    return el("td", {}, value instanceof Node ? value : String(value ?? "-"));
  }));
  nameButtons(tr, attrs);
  return tr;
}

// "Start", "Delete" repeated on every row: each says whose it is to a screen reader (Start vm1).
function nameButtons(tr, attrs) {
  const name = attrs["data-name"];
  if (!name) return;
  const whose = attrs["data-host"] ? `${name} on ${attrs["data-host"]}` : name;
  for (const button of tr.querySelectorAll("button:not([aria-label])")) {
    const label = button.textContent.trim();
    if (label && !label.includes(name)) button.setAttribute("aria-label", `${label} ${whose}`);
  }
}

// A heading a screen reader reads and the eye does not need (the buttons below say what they do).
const unseen = (text) => el("span", { class: "visually-hidden" }, text);

const emptyRow = (span, text) => el("tr", { class: "empty" }, el("td", { colspan: span }, text));

// -- lists at scale ------------------------------------------------------------------------------
// The state of a list lives in the URL: ?q=&sort=&desc=1&page=&f-state= (a list with
// data-list="vol" uses vol-q, vol-sort, ...: two lists on a page keep their own).
function listParams(node) {
  const prefix = node.dataset.list ? `${node.dataset.list}-` : "";
  const get = (key) => new URLSearchParams(location.search).get(prefix + key) || "";
  const set = (changes) => {
    const now = new URLSearchParams(location.search);
    for (const [key, value] of Object.entries(changes)) {
      if (value === "" || value === null || value === false || value === 1 && key === "page") now.delete(prefix + key);
      else now.set(prefix + key, value);
    }
    const search = now.toString();
    history.replaceState(history.state, "", location.pathname + (search ? `?${search}` : "") + location.hash);
  };
  return { get, set };
}

const slug = (heading) => heading.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");

// What a cell is sorted and filtered by: its text, a number as a number, a size shown with its unit
// (512.00 MiB < 1.00 GiB) by bytes.
function cellKey(value) {
  if (typeof value === "number") return value;
  const text = value instanceof Node ? value.textContent : String(value ?? "-");
  const sized = SIZE_TEXT.exec(text);
  return sized ? Number(sized[1]) * 1024 ** units.indexOf(sized[2]) : text;
}

function compareKeys(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;  // numbers before "-"
  if (typeof b === "number") return 1;
  return naturally.compare(a, b);
}

// Every text a row holds, in lower case: names, IPs, MACs, networks, states, hosts, paths.
const searchTexts = new WeakMap();
function searchText(row) {
  let text = searchTexts.get(row);
  if (text === undefined) {
    const parts = [];
    const walk = (value) => {
      if (value === null || value === undefined) return;
      if (Array.isArray(value)) value.forEach(walk);
      else if (typeof value === "object") Object.values(value).forEach(walk);
      else if (typeof value === "string") parts.push(value);  // not counts, sizes or flags: "1" would find every row
    };
    walk(row);
    text = parts.join("\n").toLowerCase();
    searchTexts.set(row, text);
  }
  return text;
}

function drawList(node, columns, rows, rowAttrs) {
  boxed(node);
  const list = node.listView || (node.listView = listControls(node));
  Object.assign(list, { columns, rows, rowAttrs });
  list.draw();
}

function listControls(node) {
  const params = listParams(node);
  const noun = node.dataset.noun || "rows";
  const filters = (node.dataset.filter || "").split(" ").filter(Boolean);
  const label = node.getAttribute("aria-label") || noun;
  const search = el("input", { type: "search", name: "q", placeholder: node.dataset.searchHint || "name", "aria-label": `Search ${label}` });
  const selects = Object.fromEntries(filters.map((heading) => [heading,
    el("select", { name: `f-${slug(heading)}`, "aria-label": `${heading} of the ${label}` })]));
  const count = el("span", { class: "list-count", role: "status" });
  const pager = el("span", { class: "pager" });
  const form = el("form", { class: "inline list-controls", "data-for": node.id, role: "search", onsubmit: (event) => event.preventDefault() },
    el("label", {}, "Search ", search),
    ...filters.map((heading) => el("label", {}, `${heading} `, selects[heading])), count, pager);
  node.parentElement.before(form);
  const list = { columns: [], rows: [], rowAttrs: () => ({}), selected: new Set() };
  search.value = params.get("q");
  const changed = () => { params.set({ page: 1 }); list.draw(); };
  search.addEventListener("input", () => { params.set({ q: search.value.trim() }); changed(); });
  for (const [heading, select] of Object.entries(selects)) {
    select.addEventListener("change", () => { params.set({ [`f-${slug(heading)}`]: select.value }); changed(); });
  }
  const bulk = node.dataset.bulk ? bulkBar(node, list) : null;

  list.draw = () => {
    const { columns, rows, rowAttrs } = list;
    const at = (heading) => columns.findIndex(([h]) => h === heading);
    // The filters offer the values the rows have now (a filter kept in the URL stays offered).
    for (const [heading, select] of Object.entries(selects)) {
      const index = at(heading);
      const wanted = params.get(`f-${slug(heading)}`);
      const values = index < 0 ? [] : [...new Set(rows.map((row) => String(cellKey(columns[index][1](row)))))];
      if (wanted && !values.includes(wanted)) values.push(wanted);
      select.replaceChildren(el("option", { value: "" }, `every ${heading.toLowerCase()}`),
        ...values.sort(naturally.compare).map((value) => el("option", { value }, value)));
      select.value = wanted;
    }
    const terms = params.get("q").toLowerCase().split(/\s+/).filter(Boolean);
    const wantedBy = filters.map((heading) => [at(heading), params.get(`f-${slug(heading)}`)]).filter(([index, value]) => index >= 0 && value);
    let shown = rows.filter((row) => terms.every((term) => searchText(row).includes(term))
      && wantedBy.every(([index, value]) => String(cellKey(columns[index][1](row))) === value));
    const sortBy = at(params.get("sort") || columns[0][0]);
    const desc = params.get("desc") === "1";
    if (sortBy >= 0) {
      const keyed = shown.map((row) => [cellKey(columns[sortBy][1](row)), row]);
      keyed.sort(([a], [b]) => compareKeys(a, b) * (desc ? -1 : 1));
      shown = keyed.map(([, row]) => row);
    }
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
    const page = Math.min(pages, Math.max(1, Number.parseInt(params.get("page"), 10) || 1));
    const slice = shown.slice((page - 1) * PAGE_ROWS, page * PAGE_ROWS);
    const keyOf = (row) => rowKey(rowAttrs(row));
    // Only what the search and filters show stays selected: a bulk action never reaches a hidden row.
    if (bulk) {
      const showing = new Set(shown.map(keyOf));
      list.selected = new Set([...list.selected].filter((key) => showing.has(key)));
    }

    const heads = columns.map(([heading], index) => {
      if (!heading) return el("th", { scope: "col" }, unseen("Actions"));
      const sorted = index === sortBy;
      return el("th", { scope: "col", "aria-sort": sorted ? (desc ? "descending" : "ascending") : null },
        el("button", { type: "button", class: "sort", "data-sort": heading, onclick: () => {
          params.set({ sort: index === 0 && sorted && desc ? "" : heading, desc: sorted && !desc ? "1" : "", page: 1 });
          list.draw();
        } }, heading, sorted ? el("span", { "aria-hidden": "true" }, desc ? " ▼" : " ▲") : null));
    });
    const empty = rows.length ? `No ${noun} match${terms.length ? ` “${params.get("q")}”` : " these filters"}.`
      : node.dataset.empty || `No ${noun} yet.`;
    const body = slice.map((row) => {
      const attrs = rowAttrs(row);
      const box = bulk ? [el("td", {}, bulk.checkbox(keyOf(row), attrs))] : [];
      return tableRow(columns, row, attrs, box);
    });
    node.replaceChildren(
      el("thead", {}, el("tr", {}, ...(bulk ? [el("th", { scope: "col" }, bulk.all(slice.map(keyOf)))] : []), ...heads)),
      el("tbody", {}, ...(body.length ? body : [emptyRow(columns.length + (bulk ? 1 : 0), empty)])));
    count.textContent = shown.length === rows.length ? `${rows.length} ${noun}` : `${shown.length} of ${rows.length} ${noun}`;
    const go = (to) => () => { params.set({ page: to }); list.draw(); };
    pager.replaceChildren(...(pages === 1 ? [] : [
      el("button", { type: "button", "data-page": "previous", disabled: page === 1, onclick: go(page - 1) }, "Previous"),
      el("span", { class: "page-of" }, `page ${page} of ${pages}`),
      el("button", { type: "button", "data-page": "next", disabled: page === pages, onclick: go(page + 1) }, "Next")]));
    if (bulk) bulk.update();
  };
  return list;
}

// A row's key for the selection: its name, and its host on a fleet's list.
const rowKey = (attrs) => (attrs["data-host"] ? `${attrs["data-host"]}\n${attrs["data-name"]}` : attrs["data-name"]);

// -- bulk actions on the selected rows -----------------------------------------------------------
// data-bulk="start shutdown delete": a button per action for the rows ticked; the server does each
// object in turn (the core's rules for each) and answers one result per object, listed under the
// table. Delete keeps the VMs' volumes unless "with their volumes" is ticked. On a fleet's list
// (rows with a host) each host's server part gets its own VMs (/api/hosts/HOST/vms/bulk, all
// hosts at once); a host that does not answer is each of its VMs' result.
const BULK_LABELS = { start: "Start", shutdown: "Shut down", destroy: "Force off", delete: "Delete" };

function bulkBar(node, list) {
  const actions = node.dataset.bulk.split(" ");
  const results = el("ul", { class: "bulk-results", "aria-label": "Results of the last bulk action" });
  const storage = el("input", { type: "checkbox", name: "remove_storage" });
  const buttons = actions.map((action) => el("button", { type: "button", "data-bulk-action": action,
    onclick: () => act(() => runBulk(action)) }, BULK_LABELS[action] || action));
  const chosen = el("span", { class: "bulk-count" });
  const bar = el("div", { class: "bulk", "data-for": node.id }, chosen, ...buttons,
    actions.includes("delete") ? el("label", {}, storage, " with their volumes") : null);
  node.parentElement.before(bar);
  node.parentElement.after(results);

  const runBulk = async (action) => {
    const chosen = [...list.selected].map((key) => key.split("\n"));  // [name] or [host, name]
    const byHost = new Map();
    for (const key of chosen) {
      const host = key.length > 1 ? key[0] : "";
      byHost.set(host, [...(byHost.get(host) || []), key[key.length - 1]]);
    }
    const named = (name, host) => (host ? `${name} on ${host}` : name);
    const removeStorage = action === "delete" && storage.checked;
    if (action === "delete" && !await confirmAction({ title: `Delete ${chosen.length} VMs?`, guestsAre: "VMs to delete", confirmLabel: "Delete VMs",
      guests: [...byHost].flatMap(([host, names]) => names.map((name) => named(name, host))),
      cost: removeStorage ? "Their volumes go too (never one another VM uses)." : "Their volumes stay." })) return;  // dialogs.js
    const answers = await Promise.allSettled([...byHost].map(([host, names]) => api("POST",
      host ? `/api/hosts/${encodeURIComponent(host)}${node.dataset.bulkPath.slice(4)}` : node.dataset.bulkPath,
      { action, names, remove_storage: removeStorage })));
    const lines = [...byHost].flatMap(([host, names], i) => (answers[i].status === "fulfilled" ? answers[i].value.results
      : names.map((name) => ({ name, ok: false, error: answers[i].reason.message }))).map((r) => ({ ...r, host })));
    results.replaceChildren(...lines.map((r) => el("li", { "data-name": r.name, "data-host": r.host || null, "data-ok": String(r.ok) },
      r.ok ? `${named(r.name, r.host)}: ${r.done}` : `${named(r.name, r.host)}: not done: ${r.error}`)));
    list.selected.clear();
    list.draw();
  };

  const controls = {
    checkbox: (key, attrs) => el("input", { type: "checkbox", checked: list.selected.has(key), "aria-label": `Select ${attrs["data-name"]}`,
      onchange: (event) => { if (event.target.checked) list.selected.add(key); else list.selected.delete(key); controls.update(); } }),
    all: (keys) => el("input", { type: "checkbox", "aria-label": "Select every row of this page", checked: keys.length > 0 && keys.every((key) => list.selected.has(key)),
      onchange: (event) => { keys.forEach((key) => (event.target.checked ? list.selected.add(key) : list.selected.delete(key))); list.draw(); } }),
    update: () => {
      buttons.forEach((b) => { b.disabled = list.selected.size === 0; });
      chosen.textContent = `${list.selected.size} selected`;
    },
  };
  return controls;
}

// -- success notices -----------------------------------------------------------------------------
// What an operator's action changed, said once it is done, in a live region a screen reader reads
// out: act() (app.js) watches the changes its requests make, api() reports each one that succeeded.
let changes = null;

function watchChanges() {
  if (changes) return () => {};  // an action within an action: the outer one tells
  const mine = changes = [];
  return () => {
    changes = null;
    const said = mine.filter(Boolean);
    if (said.length) notice(said.join(" "));
  };
}

function changeMade(method, path, body, answer) {
  if (changes && method !== "GET" && !path.startsWith("/log")) changes.push(describeChange(method, path, body, answer));
}

function notice(text) {
  const box = $("#notice");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}

const NOUNS = { vms: "VM", networks: "Network", pools: "Pool" };
const DONE = { start: "started", stop: "stopped", shutdown: "is shutting down", reboot: "is rebooting", destroy: "forced off",
  suspend: "suspended", resume: "resumed", refresh: "refreshed" };

function describeChange(method, path, body, answer) {
  const [kind, name, sub, part] = path.replace(/^\/api(\/hosts\/[^/]+)?\//, "").split("?")[0].split("/").map(decodeURIComponent);
  const noun = NOUNS[kind];
  const done = answer && Array.isArray(answer.done) && answer.done.length ? `${answer.done.join("; ")}.` : "Done.";
  if (answer && Array.isArray(answer.results)) {  // a bulk action: on a fleet's list, one a host
    const host = /^\/api\/hosts\/([^/]+)\//.exec(path);
    return `${host ? `${decodeURIComponent(host[1])}: ` : ""}${answer.results.filter((r) => r.ok).length} of ${answer.results.length} done.`;
  }
  if (!noun) return done;
  if (name === undefined) return method === "POST" ? `${noun} ${body?.name ?? ""} created.` : done;
  if (name === "xml") return `${noun} defined from its XML.`;
  if (sub === undefined) return method === "DELETE" ? `${noun} ${name} deleted.` : done;
  if (sub === "actions") return `${noun} ${name} ${DONE[part] || `: ${part} done`}.`;
  if (sub === "volumes") return method === "DELETE" ? `Volume ${name}/${part} deleted.` : `Volume ${name}/${body?.name ?? ""} created.`;
  if (sub === "disks" || sub === "nics") {
    const what = sub === "disks" ? "Disk" : "NIC";
    return method === "DELETE" ? `${what} ${part} detached from ${name}.` : `${what} attached to ${name}.`;
  }
  if (sub === "edit") return answer?.done ? `${noun} ${name} changed.` : null;  // a plan waiting for yes
  if (sub === "migrate") return part === "cancel" ? `Move of ${name} cancelled.` : `Moving VM ${name}.`;
  return done;
}
