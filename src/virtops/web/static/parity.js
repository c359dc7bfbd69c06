// What the CLI can do, in the console too: autostart of VMs, networks and pools; `vm set`; a
// volume's resize, clone, wipe, upload and download; delete a VM with its storage; a network's
// static DHCP hosts; a dir pool's permissions. Each is one REST call to the core function the CLI
// calls, whose refusal is shown as its sentence; no rule lives here. It fills app.js's hooks.
"use strict";

const enc = encodeURIComponent;
const volumePath = (v) => `/api/pools/${enc(v.pool)}/volumes/${enc(v.name)}`;

// A modal form: its fields, a submit button, and the core's refusal shown inside it (the page's
// error line is behind the modal). `submit` answers what to show when done, or throws. A refusal
// whose way out (option "force", "shrink", remove_storage false) is a checkbox of the form offers
// it as a button: the box set as the way says, and sent again.
function parityDialog(title, fields, submitLabel, submit) {
  $("#parity-dialog")?.remove();
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const wayOut = el("p", { class: "way-out" });
  const outcome = el("p", { class: "outcome", role: "status" });
  const send = el("button", { type: "submit" }, submitLabel);  // Enter in a field sends too; Escape closes (a modal dialog)
  const form = el("form", { method: "dialog" }, ...fields, error, wayOut, outcome,
    el("div", { class: "wizard-buttons" }, send, button("Close", () => dialog.close(), { "data-dialog-close": true })));
  const dialog = modalDialog({ id: "parity-dialog" }, title, form);  // dialogs.js: the console's one dialog
  form.onsubmit = async (event) => {
    event.preventDefault();
    if (form.dataset.busy) return;  // one request at a time (dialogs.js whileBusy disables the form meanwhile)
    error.hidden = true;
    wayOut.replaceChildren();
    outcome.textContent = "";
    const values = formValues(form);
    let failure = null;
    const shown = await whileBusy(form, () => submit(values, dialog).catch((err) => { failure = err; return null; }));
    if (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      for (const way of failure.ways || []) {  // the core's ways out (dialogs.js) that are a checkbox of the form
        const box = form.elements[way.option];
        if (!box || box.type !== "checkbox" || box.checked === way.value || box.disabled) continue;
        const label = way.value === true ? `Go ahead: ${box.parentElement.textContent.trim()}` : wayLabel(way);
        wayOut.append(button(label, () => { box.checked = way.value; form.requestSubmit(); }, { "data-way-out": way.option }));
      }
    } else if (shown === undefined) dialog.close();
    else outcome.textContent = shown;
  };
  dialog.addEventListener("close", () => dialog.remove());
  showModal(dialog);
  return dialog;
}

const field = (label, name, attrs = {}) => el("label", {}, `${label} `, el("input", { name, ...attrs }));
const check = (label, name, attrs = {}) => el("label", {}, el("input", { type: "checkbox", name, ...attrs }), ` ${label}`);

// -- autostart: a checkbox in the lists' Autostart column ------------------------------------------
const AUTOSTART = {
  pool: (p) => `/api/pools/${enc(p.name)}/autostart`,
  network: (n) => `/api/networks/${enc(n.name)}/autostart`,
  vm: (v) => `/api/vms/${enc(v.name)}/settings`,
};
extras.autostart = (kind, object) => {
  if (object.persistent === false) return "-";  // transient: nothing to start with the host
  const box = el("input", { type: "checkbox", "aria-label": `autostart ${kind} ${object.name}`, "data-autostart": object.name });
  box.checked = Boolean(object.autostart);
  box.onchange = () => act(() => whileBusy(box, async () => {
    try {
      await api("POST", AUTOSTART[kind](object), { autostart: box.checked });
    } catch (err) {
      box.checked = !box.checked;  // the host kept it as it was
      throw err;
    }
  }));
  return box;
};

// -- pools ---------------------------------------------------------------------------------------
extras.poolActions = (p) => (p.type !== "dir" ? [] : [button("Permissions…", () => parityDialog(`Permissions of pool ${p.name}`, [
  field("Mode", "mode", { value: p.mode ?? "", placeholder: "0750" }),
  field("Owner", "owner", { value: p.owner ?? "", placeholder: "user name or uid" }),
  field("Group", "group", { value: p.group ?? "", placeholder: "group name or gid" }),
  el("p", {}, "A running pool stops for a moment and starts again; running VMs keep their open disks."),
], "Apply", async (v) => {
  // Only what differs is sent: applying permissions restarts a running pool.
  const changed = Object.fromEntries(["mode", "owner", "group"].filter((key) => (v[key] ?? "") !== String(p[key] ?? "")).map((key) => [key, v[key]]));
  const answer = await api("POST", `/api/pools/${enc(p.name)}/permissions`, changed);
  const info = answer.pool;
  Object.assign(p, { mode: info.mode, owner: info.owner, group: info.group });  // what the next Apply compares with
  const warning = answer.warnings.length ? ` Warning: ${answer.warnings.join(" ")}` : "";
  return `mode ${info.mode}, owner ${info.owner}, group ${info.group}: ${answer.steps.join(", ")}.${warning}`;
}))]);

// -- networks: static DHCP hosts -------------------------------------------------------------------
extras.networkActions = (n) => (n.mode === "bridge" ? [] : [button("DHCP hosts…", () => networkHosts(n))]);

const hostKey = (h) => (h.mac ? { mac: h.mac } : h.id ? { duid: h.id } : { ip: h.ip });

function networkHosts(n) {
  const path = `/api/networks/${enc(n.name)}`;
  const list = el("table", { class: "hosts" });
  // Every address's hosts: those known by name only and the IPv6 ones by DUID too. Each is removed by
  // what picks it alone (the core's HostKey): its MAC, else its DUID, else its address (a name may repeat).
  const drawHosts = async () => {
    const info = await api("GET", path);
    table(list, [["Known by", knownBy], ["IP", (h) => h.ip], ["Name", (h) => h.name],
      ["", (h) => button("Remove", () => act(async () => { await api("POST", `${path}/hosts/remove`, hostKey(h)); await drawHosts(); }),
        { "aria-label": `remove ${h.mac || h.id || h.name} ${h.ip}` })]],
      info.addresses.flatMap((a) => a.hosts), (h) => ({ "data-mac": h.mac, "data-ip": h.ip }));
  };
  parityDialog(`Static DHCP hosts of ${n.name}`, [list,
    field("MAC", "mac", { required: true, placeholder: "52:54:00:..." }),
    field("IP", "ip", { required: true, placeholder: n.subnet || "" }),
    field("Host name", "hostname", { placeholder: "optional" }),
  ], "Add host", async (v) => {
    const entry = await api("POST", `${path}/hosts`, { mac: v.mac, ip: v.ip, name: v.hostname });
    await drawHosts();
    return `${entry.mac} gets ${entry.ip}.`;
  });
  load(drawHosts);
}

// -- volumes: resize, clone, wipe, upload, download --------------------------------------------------
extras.volumeActions = (v) => [
  button("Resize…", () => parityDialog(`Resize volume ${v.pool}/${v.name}`, [
    field("New capacity", "size", { required: true, placeholder: `now ${size(v.capacity)}; e.g. 2G` }),
    check("Allow shrinking (data past the new end is lost)", "shrink"),
    check("Even a disk of a running VM", "force"),
  ], "Resize", (f) => api("POST", `${volumePath(v)}/resize`, { size: f.size, shrink: f.shrink, force: f.force })
    .then((r) => warned(r.warnings)))),
  button("Clone…", () => parityDialog(`Clone volume ${v.pool}/${v.name}`, [
    field("Name of the copy", "name", { required: true, value: `${v.name}-clone` }),
    check("Linked (a qcow2 overlay on the original: instant, shares its data)", "linked"),
  ], "Clone", (f) => api("POST", `${volumePath(v)}/clone`, { name: f.name, linked: f.linked }).then((r) => warned(r.warnings)))),
  button("Wipe…", () => parityDialog(`Wipe volume ${v.pool}/${v.name}`, [
    el("p", {}, `Every byte of ${v.pool}/${v.name} is overwritten; its data cannot come back.`),
    el("label", {}, "Algorithm ", el("select", { name: "algorithm" }, ...["zero", "nnsa", "dod", "bsi", "gutmann", "schneier",
      "pfitzner7", "pfitzner33", "random", "trim"].map((a) => el("option", { value: a }, a)))),
    check("Even though VMs use it", "force"),
  ], "Wipe", (f) => api("POST", `${volumePath(v)}/wipe`, { algorithm: f.algorithm, force: f.force })
    .then((r) => (r.users.length ? `Wiped although these use it: ${r.users.join(", ")}.` : undefined)))),
  button("Upload…", () => uploadDialog(v)),
  el("a", { href: apiPath(`${volumePath(v)}/content`), download: v.name, class: "button", "aria-label": `download ${v.pool}/${v.name}` }, "Download"),
];

const warned = (warnings) => (warnings && warnings.length ? `Done; warning: ${warnings.join(" ")}` : undefined);

// The file goes to the server as the request's body, which streams it to the daemon; XHR, not
// fetch, because only XHR reports an upload's progress (on BAR). Answers the core's result, or
// throws its refusal (with the option that is its way out). newvm.js sends an ISO with it too.
function sendFile(path, file, bar) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", apiPath(path));
    for (const [name, value] of Object.entries(headers({ "Content-Type": "application/octet-stream" }))) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) { bar.max = event.total; bar.value = event.loaded; } };
    xhr.onload = () => {
      const answer = xhr.responseText ? JSON.parse(xhr.responseText) : {};
      if (xhr.status >= 200 && xhr.status < 300) {
        bar.value = bar.max;
        resolve(answer);
      } else reject(Object.assign(new Error(answer.error || `upload: ${xhr.status}`), { option: answer.option, ways: answer.ways }));
    };
    xhr.onerror = () => reject(new Error(`upload of ${file.name}: the connection to the server broke.`));
    xhr.send(file);
  });
}

function uploadDialog(v) {
  const bar = el("progress", { max: 1, value: 0, "aria-label": "upload progress" });
  parityDialog(`Upload an image into ${v.pool}/${v.name}`, [
    el("p", {}, `The file's bytes replace the volume's (${size(v.capacity)}); blocks of zeros stay holes.`),
    el("label", {}, "Image file ", el("input", { type: "file", name: "file", required: true })),
    check("Even though VMs use it", "force"),
    bar,
  ], "Upload", async (f, dialog) => {
    const file = $("input[type=file]", dialog).files[0];
    const answer = await sendFile(`${volumePath(v)}/content?force=${f.force}&filename=${enc(file.name)}`, file, bar);
    return `Uploaded ${file.name}: ${size(answer.size)}, ${size(answer.data_bytes)} of data written.`;
  });
}

// -- VMs: settings and delete with storage -----------------------------------------------------------
extras.vmActions = (vm, path) => [
  el("label", { class: "toggle" }, extras.autostart("vm", vm), " autostart"),
  button("Settings…", () => vmSettings(vm, path)),
  button("Remove with storage…", () => vmRemove(vm, path)),
];

// Only what differs from the VM as the dialog last saw it is sent (the core refuses a request
// that changes nothing); after each change that is what was applied.
function vmSettings(vm, path) {
  const seen = { memory: `${Math.round(vm.memory_bytes / 1048576)}M`, vcpus: vm.vcpus, autostart: Boolean(vm.autostart) };
  parityDialog(`Settings of ${vm.name}`, [
    field("Memory", "memory", { value: seen.memory }),
    field("vCPUs", "vcpus", { type: "number", min: 1, value: seen.vcpus }),
    el("fieldset", {}, el("legend", {}, "Direct kernel boot (empty: unchanged)"),
      field("Kernel", "kernel", { placeholder: "/path/to/vmlinuz" }), field("Initrd", "initrd"), field("Command line", "cmdline"),
      check("No kernel boot: boot from the first disk", "no_boot")),
    field("Boot order", "boot_order", { placeholder: "unchanged; e.g. cdrom,hd or network,hd" }),
    check("Start with the host", "autostart", { checked: seen.autostart, disabled: vm.persistent === false }),
  ], "Apply", async (f) => {
    const body = {};
    if (f.memory && f.memory !== seen.memory) body.memory = f.memory;
    if (f.vcpus && Number(f.vcpus) !== seen.vcpus) body.vcpus = Number(f.vcpus);
    if (f.kernel || f.initrd || f.cmdline) body.boot = { kernel: f.kernel || "", initrd: f.initrd, cmdline: f.cmdline || "" };
    if (f.no_boot) body.no_boot = true;
    if (f.boot_order) body.boot_order = f.boot_order.split(",").map((device) => device.trim());
    if (f.autostart !== seen.autostart && vm.persistent !== false) body.autostart = f.autostart;
    const result = await api("POST", `${path}/settings`, body);
    Object.assign(seen, { memory: f.memory || seen.memory, vcpus: Number(f.vcpus) || seen.vcpus, autostart: f.autostart });
    const waits = result.next_boot.length ? ` ${result.next_boot.join(", ")}: takes effect at its next boot; it is not rebooted.` : "";
    return `Changed: ${result.changed.join(", ")}.${waits}`;
  });
}

// Which volumes go is the core's answer (GET .../storage); a VM whose volume another VM uses is
// refused there, and its sentence stands in place of the list.
async function vmRemove(vm, path) {
  let volumes = [], refusal = null;
  try {
    volumes = await api("GET", `${path}/storage`);
  } catch (err) {
    refusal = err.message;
  }
  const listed = el("ul", { class: "volumes" }, ...volumes.map((v) => el("li", { "data-volume": v }, v)));
  parityDialog(`Delete ${vm.name}`, [
    el("p", {}, vm.running ? `${vm.name} is running: it is stopped at once (destroyed), then deleted.` : `${vm.name}'s definition is deleted.`),
    check(volumes.length ? "Also delete these volumes, with their data:" : "Also delete its volumes (it has none in a pool)", "remove_storage",
      { disabled: Boolean(refusal) || !volumes.length }),
    refusal ? el("p", { class: "refused" }, refusal) : listed,
    vm.running ? check(`Stop ${vm.name} at once`, "force") : null,
  ].filter(Boolean), "Delete", async (f) => {
    await api("DELETE", `${path}?remove_storage=${Boolean(f.remove_storage)}&force=${Boolean(f.force)}`);
  });
}
