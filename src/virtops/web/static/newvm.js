// The New VM wizard of the VMs page: a name; how it boots (an ISO volume as CD-ROM, one uploaded
// from the browser, an existing disk image, a kernel on the host, the network); memory and vCPUs;
// disks (volumes no VM uses, new volumes); NICs on networks or bridges; screen, autostart, start;
// a summary, then one POST /api/vms with the core's CreateRequest, and the new VM's page. Every rule
// is the core's: a refusal shows its sentence.
"use strict";

const newVm = (() => {
  const form = () => $("#vm-wizard");
  const pathOf = (v) => `${v.pool}/${v.name}`;
  const isIso = (v) => v.format === "iso" || /\.iso$/i.test(v.name);
  const options = (values, none) => [...(none ? [el("option", { value: "" }, none)] : []),
    ...values.map((value) => el("option", { value }, value))];
  let host = { volumes: [], pools: [], networks: [] };

  // What the host offers: the volumes of its running pools (the free ones for disks; a CD-ROM is
  // read-only, so an ISO in use elsewhere is offered too), its pools and networks.
  async function readHost() {
    const [pools, networks] = await Promise.all([api("GET", "/api/pools"), api("GET", "/api/networks")]);
    const active = pools.filter((p) => p.active);
    const volumes = (await Promise.all(active.map((p) => api("GET", `/api/pools/${encodeURIComponent(p.name)}/volumes`)))).flat();
    return { volumes, pools: active.map((p) => p.name), networks: networks.map((n) => n.name) };
  }

  const freeVolumes = () => host.volumes.filter((v) => !v.used_by.length && !isIso(v)).map(pathOf);

  function addRow(templateId, list, fill) {
    const row = $(templateId).content.firstElementChild.cloneNode(true);
    fill(row);
    $("[data-remove]", row).onclick = () => row.remove();
    $(list).append(row);
    const first = $("select, input", row);
    if (first) first.focus();
    return row;
  }

  const addVolume = () => addRow("#vm-wizard-volume-row", "#vm-wizard-disks", (row) => {
    $("[data-field=volume]", row).replaceChildren(...options(freeVolumes()));
  });
  const addNewDisk = () => addRow("#vm-wizard-new-disk-row", "#vm-wizard-disks", (row) => {
    $("[data-field=pool]", row).replaceChildren(...options(host.pools));
  });
  const addNic = () => addRow("#vm-wizard-nic-row", "#vm-wizard-nics", (row) => {
    $("[data-field=network]", row).replaceChildren(...options(host.networks));
    const kind = $("[data-field=kind]", row);
    kind.onchange = () => $$("[data-kind]", row).forEach((label) => { label.hidden = label.dataset.kind !== kind.value; });
  });

  const field = (row, name) => $(`[data-field=${name}]`, row).value.trim();

  // The core's CreateRequest from what the wizard holds.
  function request(v) {
    const body = { name: v.name, memory: v.memory, vcpus: Number(v.vcpus), graphics: v.graphics,
      autostart: Boolean(v.autostart), start: Boolean(v.start), disks: [], new_disks: [], nics: [] };
    if (v.media === "cdrom" && v.cdrom) body.cdrom = v.cdrom;
    if (v.media === "import") {
      body.import_disk = true;
      if (v.import_volume) body.disks.push({ volume: v.import_volume });  // the first disk, booted from
    }
    if (v.media === "kernel") body.boot = { kernel: v.kernel || "", initrd: v.initrd || null, cmdline: v.cmdline || "" };
    if (v.media === "pxe") body.pxe = true;
    for (const row of $$("#vm-wizard-disks [data-row]")) {
      if (row.dataset.row === "disk") body.disks.push({ volume: field(row, "volume") });
      else body.new_disks.push({ pool: field(row, "pool"), size: field(row, "size"), format: field(row, "format") });
    }
    for (const row of $$("#vm-wizard-nics [data-row]")) {
      const kind = field(row, "kind");
      body.nics.push({ [kind]: field(row, kind), model: field(row, "model") });
    }
    return body;
  }

  function bootText(body) {
    if (body.cdrom) return `CD-ROM ${body.cdrom}`;
    if (body.import_disk) return `its first disk${body.disks.length ? ` (${body.disks[0].volume})` : ""}`;
    if (body.boot) return ["kernel", "initrd", "cmdline"].filter((k) => body.boot[k]).map((k) => `${k}=${body.boot[k]}`).join(" ");
    if (body.pxe) return "the network (PXE), then its first disk";
    return "its first disk";
  }

  function summary(v) {
    const body = request(v);
    const disks = [...body.disks.map((d) => d.volume), ...body.new_disks.map((d) => `new ${d.size} ${d.format} volume in pool ${d.pool}`)];
    const nics = body.nics.map((n) => `${n.network ? "network " + n.network : "bridge " + n.bridge} (${n.model})`);
    return [["Name", body.name], ["Boots from", bootText(body)], ["Memory", body.memory], ["vCPUs", String(body.vcpus)],
      ["Disks", disks.join(", ") || "none"], ["NICs", nics.join(", ") || "none"],
      ["Screen", body.graphics === "vnc" ? "VNC on the host's loopback" : "serial console only"],
      ["Autostart", yesNo(body.autostart)], ["Start once created", yesNo(body.start)]];
  }

  function showMedia() {
    const chosen = form().media.value;
    $$("[data-media]", form()).forEach((part) => { part.hidden = part.dataset.media !== chosen; });
  }

  // An ISO from the browser becomes a new volume of the pool (streamed; the core removes it again
  // when the upload fails), then the wizard's CD-ROM.
  async function uploadIso() {
    const file = form().iso_file.files[0], pool = form().iso_pool.value;
    if (!file) throw new Error("iso_file: choose an ISO image on this computer first.");
    const bar = $("#vm-wizard-upload-progress"), status = $("#vm-wizard-upload-status"), send = $("#vm-wizard-upload");
    bar.hidden = false;
    send.disabled = true;  // one upload at a time
    status.textContent = `uploading ${file.name}`;
    try {
      await sendFile(`/api/pools/${encodeURIComponent(pool)}/volumes/${encodeURIComponent(file.name)}/content?create=true`, file, bar);
    } catch (err) {
      status.textContent = "";
      throw err;
    } finally {
      send.disabled = false;
    }
    status.textContent = `uploaded ${file.name} into pool ${pool}`;
    host = await readHost();
    fillCdroms();
    form().cdrom.value = `${pool}/${file.name}`;
  }

  const fillCdroms = () => form().cdrom.replaceChildren(...options(host.volumes.filter(isIso).map(pathOf), "none"));

  function init() {
    if (!form()) return;
    const open = wizard(form(), { summary, finish: async (v) => {
      const made = await api("POST", "/api/vms", request(v));
      location.href = objectHref("vms", made.name);  // on to the new VM's page, where its console and devices are
      return made;
    } });
    for (const radio of form().media) radio.onchange = showMedia;
    $("#vm-wizard-add-volume").onclick = addVolume;
    $("#vm-wizard-add-new-disk").onclick = addNewDisk;
    $("#vm-wizard-add-nic").onclick = addNic;
    $("#vm-wizard-upload").onclick = () => act(uploadIso);
    $("#vm-new").onclick = () => act(async () => {
      host = await readHost();
      fillCdroms();
      form().iso_pool.replaceChildren(...options(host.pools));
      $("#vm-wizard-upload-progress").hidden = true;
      $("#vm-wizard-upload-status").textContent = "";
      form().import_volume.replaceChildren(...options(freeVolumes()));
      $("#vm-volume-paths").replaceChildren(...host.volumes.map((v) => el("option", { value: v.path }, pathOf(v))));
      $("#vm-wizard-disks").replaceChildren();
      $("#vm-wizard-nics").replaceChildren();
      open();
      showMedia();
      form().name.focus();
    });
  }

  return { init };
})();

document.addEventListener("DOMContentLoaded", newVm.init);
