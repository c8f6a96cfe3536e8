// The rater's page: draw lesion boxes on the photo, grade each box's signs, save.
// Boxes are kept in the photo's own pixels; the canvas shows the photo scaled to fit.
"use strict";
(function () {
  const SIGNS = ["erythema", "excoriation", "lichenification", "papulation"];
  const REQUIRED = SIGNS.slice(0, 3);
  const HANDLE = 10;       // corner grab zone, screen pixels
  const MIN_SIDE = 8;      // smallest box side, photo pixels
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const el = (id) => document.getElementById(id);

  const state = { photo: null, img: null, boxes: [], sel: -1, sign: 0, undo: [],
                  answered: [], drag: null, scale: 1 };

  function say(text, bad) {
    const m = el("message");
    m.textContent = text || "";
    m.className = bad ? "message bad" : "message";
  }

  async function api(method, url, body) {
    const opts = { method, headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(url, opts);
    const data = await resp.json().catch(() => ({ error: resp.statusText }));
    if (!resp.ok) throw new Error(data.error || resp.statusText);
    return data;
  }

  function showQueue(q) {
    const p = q.progress;
    el("progress").max = Math.max(p.total, 1);
    el("progress").value = p.done;
    el("progress-text").textContent = `${p.done} of ${p.total} done`;
    state.answered = q.answered;
  }

  async function loadNext() {
    const q = await api("GET", "/api/queue");
    showQueue(q);
    if (q.next === null) {
      state.photo = null; state.boxes = []; draw(); listBoxes();
      delete canvas.dataset.photo;
      el("file").textContent = "";
      say("All done: no photo is waiting for you.");
      return;
    }
    await loadPhoto(q.next);
  }

  async function loadPhoto(id) {
    delete canvas.dataset.photo;
    const p = await api("GET", `/api/photos/${id}`);
    const img = new Image();
    img.src = `/photos/${id}/image`;
    await img.decode();
    state.photo = p; state.img = img; state.undo = [];
    state.boxes = p.boxes.map((b) => Object.assign({}, b));
    state.sel = state.boxes.length ? 0 : -1; state.sign = 0;
    const wrap = el("canvas-wrap").clientWidth || 960;
    state.scale = Math.min(wrap / p.width, 640 / p.height);
    canvas.width = Math.round(p.width * state.scale);
    canvas.height = Math.round(p.height * state.scale);
    el("file").textContent = p.file + (p.status ? ` (saved: ${p.status})` : "");
    say(p.status === "unusable" ? `You marked this photo unusable: ${p.reason}` : "");
    draw(); listBoxes(); canvas.focus();
    canvas.dataset.photo = String(p.id);  // the photo is drawn and the mouse now works on it
  }

  function snapshot() {
    state.undo.push(JSON.stringify({ boxes: state.boxes, sel: state.sel }));
    if (state.undo.length > 200) state.undo.shift();
  }

  function undo() {
    const last = state.undo.pop();
    if (!last) { say("Nothing to undo."); return; }
    const s = JSON.parse(last);
    state.boxes = s.boxes; state.sel = s.sel;
    draw(); listBoxes();
  }

  function clampBox(b) {
    const W = state.photo.width, H = state.photo.height;
    b.w = Math.max(MIN_SIDE, Math.min(Math.round(b.w), W));
    b.h = Math.max(MIN_SIDE, Math.min(Math.round(b.h), H));
    b.x = Math.max(0, Math.min(Math.round(b.x), W - b.w));
    b.y = Math.max(0, Math.min(Math.round(b.y), H - b.h));
    return b;
  }

  function newBox(x, y, w, h) {
    const b = { x, y, w, h };
    SIGNS.forEach((s) => { b[s] = null; });
    return clampBox(b);
  }

  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!state.photo) return;
    ctx.drawImage(state.img, 0, 0, canvas.width, canvas.height);
    const k = state.scale;
    state.boxes.forEach((b, i) => {
      const sel = i === state.sel;
      const done = REQUIRED.every((s) => b[s] !== null && b[s] !== undefined);
      ctx.lineWidth = sel ? 3 : 2;
      ctx.strokeStyle = sel ? "#ffd400" : (done ? "#3ddc84" : "#ff5a5a");
      ctx.strokeRect(b.x * k, b.y * k, b.w * k, b.h * k);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = "bold 14px system-ui";
      ctx.fillText(String(i + 1), b.x * k + 4, b.y * k + 16);
      if (sel) ctx.fillRect((b.x + b.w) * k - 6, (b.y + b.h) * k - 6, 12, 12);
    });
  }

  function listBoxes() {
    const list = el("box-list");
    list.innerHTML = "";
    state.boxes.forEach((b, i) => {
      const li = document.createElement("li");
      li.textContent = SIGNS.slice(0, 3).map((s) => `${s[0].toUpperCase()}${b[s] ?? "?"}`).join(" ")
        + (b.papulation !== null && b.papulation !== undefined ? ` P${b.papulation}` : "");
      if (i === state.sel) li.className = "selected";
      li.onclick = () => { state.sel = i; draw(); listBoxes(); };
      list.appendChild(li);
    });
    el("box-count").textContent = state.boxes.length;
    const b = state.boxes[state.sel];
    document.querySelectorAll(".sign").forEach((fs, si) => {
      fs.classList.toggle("active", b !== undefined && si === state.sign);
    });
    document.querySelectorAll(".grade").forEach((btn) => {
      btn.disabled = b === undefined;
      btn.classList.toggle("chosen", b !== undefined && b[btn.dataset.sign] === Number(btn.dataset.grade));
    });
  }

  function setGrade(sign, grade) {
    const b = state.boxes[state.sel];
    if (!b) { say("Draw or pick a box first (B makes one).", true); return; }
    snapshot();
    b[sign] = grade;
    const si = SIGNS.indexOf(sign);
    state.sign = si < 2 ? si + 1 : si;  // erythema -> excoriation -> lichenification
    draw(); listBoxes();
  }

  function toPhoto(ev) {
    const r = canvas.getBoundingClientRect();
    const sx = canvas.width / r.width;
    return { x: (ev.clientX - r.left) * sx / state.scale, y: (ev.clientY - r.top) * sx / state.scale };
  }

  function hit(p) {
    const grab = HANDLE / state.scale;
    for (let i = state.boxes.length - 1; i >= 0; i--) {
      const b = state.boxes[i];
      if (Math.abs(p.x - (b.x + b.w)) < grab && Math.abs(p.y - (b.y + b.h)) < grab) return { i, mode: "resize" };
    }
    for (let i = state.boxes.length - 1; i >= 0; i--) {
      const b = state.boxes[i];
      if (p.x >= b.x && p.x <= b.x + b.w && p.y >= b.y && p.y <= b.y + b.h) return { i, mode: "move" };
    }
    return null;
  }

  canvas.addEventListener("mousedown", (ev) => {
    if (!state.photo) return;
    canvas.focus();
    const p = toPhoto(ev);
    const h = hit(p);
    snapshot();
    if (h) {
      state.sel = h.i;
      const b = state.boxes[h.i];
      state.drag = { mode: h.mode, start: p, orig: Object.assign({}, b) };
    } else {
      state.drag = { mode: "draw", start: p, made: false };
    }
    draw(); listBoxes();
  });

  window.addEventListener("mousemove", (ev) => {
    const d = state.drag;
    if (!d) return;
    const p = toPhoto(ev);
    const dx = p.x - d.start.x, dy = p.y - d.start.y;
    const square = el("square").checked;
    if (d.mode === "draw") {
      let w = Math.abs(dx), h = Math.abs(dy);
      if (square) { w = h = Math.max(w, h); }
      if (w < MIN_SIDE / 2 && h < MIN_SIDE / 2) return;
      const x = dx < 0 ? d.start.x - w : d.start.x, y = dy < 0 ? d.start.y - h : d.start.y;
      if (!d.made) { state.boxes.push(newBox(x, y, w, h)); state.sel = state.boxes.length - 1; state.sign = 0; d.made = true; }
      Object.assign(state.boxes[state.sel], { x, y, w, h });
      clampBox(state.boxes[state.sel]);
    } else if (d.mode === "move") {
      Object.assign(state.boxes[state.sel], { x: d.orig.x + dx, y: d.orig.y + dy });
      clampBox(state.boxes[state.sel]);
    } else {
      let w = d.orig.w + dx, h = d.orig.h + dy;
      if (square) { w = h = Math.max(w, h); }
      Object.assign(state.boxes[state.sel], { w, h });
      clampBox(state.boxes[state.sel]);
    }
    draw();
  });

  window.addEventListener("mouseup", () => {
    if (state.drag && state.drag.mode === "draw" && !state.drag.made) state.undo.pop();
    state.drag = null; listBoxes();
  });

  function keyBox() {
    if (!state.photo) return;
    snapshot();
    const side = Math.round(Math.min(state.photo.width, state.photo.height) / 3);
    state.boxes.push(newBox((state.photo.width - side) / 2, (state.photo.height - side) / 2, side, side));
    state.sel = state.boxes.length - 1; state.sign = 0;
    draw(); listBoxes();
  }

  function nudge(dx, dy, grow) {
    const b = state.boxes[state.sel];
    if (!b) return;
    snapshot();
    if (grow) { b.x -= grow / 2; b.y -= grow / 2; b.w += grow; b.h += grow; } else { b.x += dx; b.y += dy; }
    clampBox(b); draw();
  }

  function removeBox() {
    if (state.sel < 0) return;
    snapshot();
    state.boxes.splice(state.sel, 1);
    state.sel = Math.min(state.sel, state.boxes.length - 1);
    draw(); listBoxes();
  }

  async function save(body) {
    if (!state.photo) return;
    try {
      const q = await api("PUT", `/api/photos/${state.photo.id}/answer`, body);
      showQueue(q);
      say(`Saved ${state.photo.file}.`);
      await loadNext();
    } catch (err) {
      say(err.message, true);
    }
  }

  function saveBoxes() {
    const missing = state.boxes.findIndex((b) => REQUIRED.some((s) => b[s] === null || b[s] === undefined));
    if (!state.boxes.length) { say("Draw at least one box, or mark the photo unusable (Q).", true); return; }
    if (missing >= 0) { state.sel = missing; draw(); listBoxes(); say(`Box ${missing + 1} still needs its grades.`, true); return; }
    save({ boxes: state.boxes.map((b) => { const o = { x: b.x, y: b.y, w: b.w, h: b.h }; SIGNS.forEach((s) => { o[s] = b[s] ?? null; }); return o; }) });
  }

  function markUnusable() {
    const reason = el("reason").value;
    if (!reason) { el("reason").focus(); say("Pick a reason first, then press Unusable.", true); return; }
    save({ unusable: reason });
  }

  async function back() {
    if (!state.photo) { if (state.answered.length) await loadPhoto(state.answered[state.answered.length - 1]); return; }
    const i = state.answered.indexOf(state.photo.id);
    const prev = i > 0 ? state.answered[i - 1] : (i < 0 ? state.answered[state.answered.length - 1] : undefined);
    if (prev === undefined) { say("No earlier photo."); return; }
    await loadPhoto(prev);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT") return;
    const k = ev.key, step = ev.shiftKey ? 10 : 1;
    if ((ev.ctrlKey || ev.metaKey) && k.toLowerCase() === "z") { undo(); ev.preventDefault(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const letter = { e: 0, x: 1, l: 2, p: 3 }[k.toLowerCase()];
    if (letter !== undefined) { state.sign = letter; listBoxes(); }
    else if (k >= "0" && k <= "3") setGrade(SIGNS[state.sign], Number(k));
    else if (k === "b" || k === "B") keyBox();
    else if (k === "Tab" && state.boxes.length) { state.sel = (state.sel + (ev.shiftKey ? -1 + state.boxes.length : 1)) % state.boxes.length; state.sign = 0; draw(); listBoxes(); }
    else if (k === "ArrowLeft") nudge(-step, 0);
    else if (k === "ArrowRight") nudge(step, 0);
    else if (k === "ArrowUp") nudge(0, -step);
    else if (k === "ArrowDown") nudge(0, step);
    else if (k === "+" || k === "=") nudge(0, 0, 2 * step);
    else if (k === "-") nudge(0, 0, -2 * step);
    else if (k === "Delete" || k === "Backspace") removeBox();
    else if (k === "Enter") saveBoxes();
    else if (k === "s" || k === "S") el("square").checked = !el("square").checked;
    else if (k === "q" || k === "Q") markUnusable();
    else if (k === "u" || k === "U") undo();
    else if (k === "[") back();
    else return;
    ev.preventDefault();
  });

  document.querySelectorAll(".grade").forEach((btn) => {
    btn.addEventListener("click", () => { state.sign = SIGNS.indexOf(btn.dataset.sign); setGrade(btn.dataset.sign, Number(btn.dataset.grade)); });
  });
  el("undo").onclick = undo;
  el("delete").onclick = removeBox;
  el("save").onclick = saveBoxes;
  el("unusable").onclick = markUnusable;
  el("back").onclick = back;
  loadNext().catch((err) => say(err.message, true));
})();
