// upload.js — drag and drop upload anywhere on the page (onto a folder row:
// into that folder), folders included, with the overlay that says where.

import { $, guard } from "./ui.js";

/**
 * @param {object} hooks {dirAt(treeRow|null) -> folder path, canWrite(), upload([{file, rel}], dir)}
 */
export function bindDropUpload(hooks) {
  const overlay = $("drop-overlay");
  let depth = 0;
  const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
  const rowOf = (ev) => ev.target.closest?.('[role="treeitem"]') ?? null;
  const clearTargets = () => {
    for (const r of document.querySelectorAll(".drop-target")) r.classList.remove("drop-target");
  };
  document.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    depth++;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (ev) => {
    if (!hasFiles(ev)) return;
    if (--depth <= 0) { depth = 0; document.body.classList.remove("dragging"); }
  });
  document.addEventListener("dragover", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault(); // else the browser would open the dropped file
    ev.dataTransfer.dropEffect = hooks.canWrite() ? "copy" : "none";
    overlay.textContent = `Drop to upload into ${hooks.dirAt(rowOf(ev))}`;
    clearTargets();
    ev.target.closest?.('[role="treeitem"][data-kind="dir"]')?.classList.add("drop-target");
  });
  document.addEventListener("drop", guard("Upload failed", async (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    clearTargets();
    if (!hooks.canWrite()) return;
    const dir = hooks.dirAt(rowOf(ev));
    await hooks.upload(await droppedFiles(ev.dataTransfer), dir);
  }));
}

/** The files of a drop, folders walked recursively: [{file, rel}]. */
async function droppedFiles(dt) {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dt.files].map((file) => ({ file, rel: file.name }));
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, rel: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}
