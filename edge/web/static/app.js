// The pages' actions: each button's data-action calls the JSON API, then the page reloads.
"use strict";

function say(text, kind) {
  const msg = document.getElementById("msg");
  msg.textContent = text;
  msg.className = kind;
}

async function call(method, url, body, contentType) {
  const headers = { "X-Edge-Request": "1" };  // the server refuses writes without it (CSRF)
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

function valueOf(button, name) {
  const box = button.closest("[data-scope]");
  const field = box && box.querySelector(`[name="${name}"]`);
  return field ? field.value.trim() : "";
}

function filesOf(button) {
  const box = button.closest("[data-scope]");
  const field = box && box.querySelector('input[type="file"]');
  return field ? Array.from(field.files) : [];
}

const actions = {
  async "name-visitor"(b) {
    const name = valueOf(b, "name");
    if (!name) throw new Error("type a name first");
    const r = await call("POST", `/api/visitors/${b.dataset.id}/name`, { name });
    return `visitor ${b.dataset.id} named ${r.name}: the model reloads within seconds`;
  },
  async "ignore-visitor"(b) {
    await call("POST", `/api/visitors/${b.dataset.id}/ignore`);
    return `visitor ${b.dataset.id} ignored: never to be named`;
  },
  async "delete-visitor"(b) {
    if (!confirm(`Delete visitor ${b.dataset.id}'s crops?`)) return null;
    await call("DELETE", `/api/visitors/${b.dataset.id}`);
    return `visitor ${b.dataset.id} deleted`;
  },
  async upload(b) {
    const name = b.dataset.name || valueOf(b, "name");
    const files = filesOf(b);
    if (!name) throw new Error("type a name first");
    if (!files.length) throw new Error("choose one or more photos first");
    let added = 0;
    for (const file of files) {
      say(`uploading ${file.name} ...`, "info");
      await call("POST", `/api/people/${part(name)}/photos`, file);
      added += 1;
    }
    return `${added} photo(s) of ${name} enrolled`;
  },
  async "delete-photo"(b) {
    if (!confirm(`Delete ${b.dataset.file}?`)) return null;
    await call("DELETE", `/api/people/${part(b.dataset.name)}/photos/${part(b.dataset.file)}`);
    return `${b.dataset.file} deleted`;
  },
  async rename(b) {
    const name = valueOf(b, "new-name");
    if (!name) throw new Error("type the new name first");
    await call("POST", `/api/people/${part(b.dataset.name)}/rename`, { name });
    return `${b.dataset.name} is now ${name}`;
  },
  async forget(b) {
    if (!confirm(`Forget ${b.dataset.name} and delete their photos?`)) return null;
    await call("POST", `/api/people/${part(b.dataset.name)}/forget`);
    return `${b.dataset.name} forgotten`;
  },
};

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  event.preventDefault();
  button.disabled = true;
  try {
    say("working ...", "info");
    const done = await actions[button.dataset.action](button);
    if (done === null) { say("", ""); return; }
    sessionStorage.setItem("edge-msg", done);
    location.reload();
  } catch (err) {
    say(err.message, "error");
  } finally {
    button.disabled = false;
  }
});

document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) event.target.form.submit();
});

window.addEventListener("DOMContentLoaded", () => {
  const done = sessionStorage.getItem("edge-msg");
  if (done) { say(done, "info"); sessionStorage.removeItem("edge-msg"); }
  const refresh = document.body.dataset.refresh;
  if (refresh) setTimeout(() => location.reload(), Number(refresh) * 1000);
});
