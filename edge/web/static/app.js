// The pages' actions (each button's data-action, each file input's data-upload calls the JSON
// API) and live updates: /api/changes is polled and the page's [data-region]s are refreshed in
// place, never a whole-page reload, never under a card someone is typing in.
"use strict";

const POLL_MS = 3000;

function say(text, kind) {
  const msg = document.getElementById("msg");
  msg.textContent = text;
  msg.className = kind;
}

const ANYWAY = "; add it anyway with --force";  // the library's refusal of someone else's face
const MERGE = " (--merge)";  // the library's refusal of a rename onto an existing person

// A refusal the user may overrule: ask (the second click), then `again()`; else rethrow.
async function overrule(err, hint, question, again) {
  if (!err.message.includes(hint)) throw err;
  if (!confirm(`${err.message.replace(hint, "")}\n\n${question}`)) throw new Error("kept as it was");
  return again();
}

async function call(method, url, body, contentType, extra) {
  const headers = { "X-Edge-Request": "1", ...(extra || {}) };  // writes need it (CSRF)
  let payload = body;
  if (body !== undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (body instanceof File) {
    headers["Content-Type"] = contentType || body.type || "application/octet-stream";
    headers["X-Filename"] = encodeURIComponent(body.name);
  }
  const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.status + " " + response.statusText);
  return data;
}

const part = encodeURIComponent;

function valueOf(el, name) {
  const box = el.closest("[data-scope]");
  const field = box && box.querySelector(`[name="${name}"]`);
  return field ? field.value.trim() : "";
}

// --- live regions ------------------------------------------------------------------------

function busy(el) {
  if (el.contains(document.activeElement) && document.activeElement !== document.body) return true;
  if (el.querySelector("details[open]")) return true;
  return Array.from(el.querySelectorAll("input")).some((i) => (i.type === "file" ? i.files.length : i.value));
}

function morph(old, fresh) {
  const want = Array.from(fresh.children);
  const ids = new Set(want.map((c) => c.id));
  for (const c of Array.from(old.children)) if (!ids.has(c.id) && !busy(c)) c.remove();
  let prev = null;
  for (const w of want) {
    let cur = w.id ? document.getElementById(w.id) : null;
    if (cur && cur.parentNode !== old) cur = null;
    if (!cur) {
      cur = document.importNode(w, true);
      if (prev) prev.after(cur); else old.prepend(cur);
    } else if (cur.outerHTML !== w.outerHTML && !busy(cur)) {
      const next = document.importNode(w, true);
      cur.replaceWith(next);
      cur = next;
    }
    prev = cur;
  }
}

async function refresh() {
  const response = await fetch(location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const region of document.querySelectorAll("[data-region]")) {
    const fresh = doc.getElementById(region.id);
    if (fresh) morph(region, fresh);
  }
}

let seen = null;

async function poll() {
  const key = document.body.dataset.live;
  try {
    const changes = await (await fetch("/api/changes", { credentials: "same-origin" })).json();
    if (seen !== null && changes[key] !== seen) await refresh();
    seen = changes[key];
  } catch (err) {
    // the device restarting or the network gone: try again at the next poll
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// --- actions -----------------------------------------------------------------------------

function clearCard(el) {
  const box = el.closest("[data-scope]");
  if (!box) return;
  for (const i of box.querySelectorAll("input")) i.value = "";
  for (const d of box.querySelectorAll("details[open]")) d.open = false;
  if (document.activeElement) document.activeElement.blur();
}

async function upload(input) {
  const name = input.dataset.upload || valueOf(input, "name");
  const files = Array.from(input.files);
  if (!name) { input.value = ""; throw new Error("type the name first, then choose the photos"); }
  if (!files.length) return null;
  const failed = [];
  let added = 0;
  for (const file of files) {  // one by one: a bad photo does not stop the others
    say(`uploading ${file.name} (${added + failed.length + 1} of ${files.length}) ...`, "info");
    try {
      const url = `/api/people/${part(name)}/photos`;
      await call("POST", url, file).catch((err) => overrule(err, ANYWAY, "Add this photo anyway?",
        () => call("POST", url, file, undefined, { "X-Force": "1" })));
      added += 1;
    } catch (err) {
      failed.push(err.message.startsWith(`${file.name}: `) ? err.message : `${file.name}: ${err.message}`);
    }
  }
  const done = `${added} photo(s) of ${name} enrolled`;
  if (!failed.length) return done;
  if (!added) throw new Error(failed.join("; "));
  return `${done}; not used: ${failed.join("; ")}`;
}

const actions = {
  async "name-visitor"(b) {
    const name = valueOf(b, "name");
    if (!name) throw new Error("type a name first");
    const url = `/api/visitors/${b.dataset.id}/name`;
    const together = true;  // every visit of this stranger (the card shows them all)
    const r = await call("POST", url, { name, together }).catch((err) => overrule(err, ANYWAY,
      `Name this visitor ${name} anyway?`, () => call("POST", url, { name, together, force: true })));
    return `visitor ${b.dataset.id} named ${r.name}: recognized from their next visit`;
  },
  async "ignore-visitor"(b) {
    await call("POST", `/api/visitors/${b.dataset.id}/ignore`, { together: true });
    return `visitor ${b.dataset.id}: this face will never be named`;
  },
  async "delete-visitor"(b) {
    const ids = (b.dataset.ids || b.dataset.id).split(",");
    if (!confirm(`Delete the pictures of visit(s) ${ids.join(", ")}?`)) return null;
    for (const id of ids) await call("DELETE", `/api/visitors/${id}`);
    return `visitor ${b.dataset.id} deleted`;
  },
  async "correct-event"(b) {
    const name = valueOf(b, "name");
    if (!name) throw new Error("type who it is first");
    const url = `/api/events/${b.dataset.id}/correct`;
    await call("POST", url, { name }).catch((err) => overrule(err, ANYWAY,
      `Add this face to ${name} anyway?`, () => call("POST", url, { name, force: true })));
    return `this face is now one of ${name}'s: recognized as them from now on`;
  },
  async "never-event"(b) {
    await call("POST", `/api/events/${b.dataset.id}/correct`, { name: null });
    return "this face will never be named";
  },
  async "delete-photo"(b) {
    if (!confirm(`Delete ${b.dataset.file}?`)) return null;
    await call("DELETE", `/api/people/${part(b.dataset.name)}/photos/${part(b.dataset.file)}`);
    return `${b.dataset.file} deleted`;
  },
  async rename(b) {
    const name = valueOf(b, "new-name");
    if (!name) throw new Error("type the new name first");
    const url = `/api/people/${part(b.dataset.name)}/rename`;
    await call("POST", url, { name }).catch((err) => overrule(err, MERGE,
      `Make ${b.dataset.name} and ${name} one person (their photos together)?`,
      () => call("POST", url, { name, merge: true })));
    return `${b.dataset.name} is now ${name}`;
  },
  async forget(b) {
    if (!confirm(`Forget ${b.dataset.name}? Their photos go to the trash (dataset/.trash) and can be restored for a while.`)) return null;
    await call("POST", `/api/people/${part(b.dataset.name)}/forget`);
    return `${b.dataset.name} forgotten`;
  },
};

async function act(el, work) {
  el.disabled = true;
  try {
    say("working ...", "info");
    const done = await work();
    if (done === null) { say("", ""); return; }
    clearCard(el);
    await refresh();
    say(done, "info");
  } catch (err) {
    say(err.message, "error");
  } finally {
    el.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  event.preventDefault();
  act(button, () => actions[button.dataset.action](button));
});

document.addEventListener("change", (event) => {
  const el = event.target;
  if (el.matches("[data-autosubmit]")) el.form.submit();
  else if (el.matches("input[type=file][data-upload]")) act(el, () => upload(el));
});

window.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.live) poll();
});
