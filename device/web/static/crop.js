// The crop square over the frozen photo: drag it to move, drag a corner to resize (it
// stays square, inside the photo). Pointer events: touch and mouse alike. The hidden
// box_* fields carry the square in photo pixels to "Grade this square".
(function () {
  "use strict";
  var box = document.getElementById("frame-box");
  var sq = document.getElementById("crop-square");
  if (!box || !sq) { return; }
  var W = +box.dataset.width, H = +box.dataset.height;
  var field = {};
  ["x", "y", "w", "h"].forEach(function (k) { field[k] = document.getElementById("box-" + k); });
  var rect = {x: +field.x.value, y: +field.y.value, s: Math.min(+field.w.value, +field.h.value)};
  var MIN = Math.max(16, Math.round(Math.min(W, H) * 0.05));
  var drag = null;

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

  function draw() {
    sq.style.left = (100 * rect.x / W) + "%";
    sq.style.top = (100 * rect.y / H) + "%";
    sq.style.width = (100 * rect.s / W) + "%";
    sq.style.height = (100 * rect.s / H) + "%";
    field.x.value = Math.round(rect.x);
    field.y.value = Math.round(rect.y);
    field.w.value = field.h.value = Math.round(rect.s);
  }

  function move(o, dx, dy) {
    rect.x = clamp(o.x + dx, 0, W - o.s);
    rect.y = clamp(o.y + dy, 0, H - o.s);
  }

  function resize(o, corner, dx, dy) {
    var west = corner.indexOf("w") >= 0, north = corner.indexOf("n") >= 0;
    var ax = west ? o.x + o.s : o.x, ay = north ? o.y + o.s : o.y;  // the fixed corner
    var px = (west ? o.x : o.x + o.s) + dx, py = (north ? o.y : o.y + o.s) + dy;
    var most = Math.min(west ? ax : W - ax, north ? ay : H - ay);
    var s = clamp(Math.max(Math.abs(px - ax), Math.abs(py - ay)), MIN, most);
    rect.s = s;
    rect.x = west ? ax - s : ax;
    rect.y = north ? ay - s : ay;
  }

  sq.addEventListener("pointerdown", function (ev) {
    ev.preventDefault();
    drag = {mode: ev.target.dataset.handle || "move", id: ev.pointerId, x: ev.clientX,
            y: ev.clientY, o: {x: rect.x, y: rect.y, s: rect.s}};
    sq.setPointerCapture(ev.pointerId);
    sq.classList.add("dragging");
  });
  sq.addEventListener("pointermove", function (ev) {
    if (!drag || ev.pointerId !== drag.id) { return; }
    var r = box.getBoundingClientRect();
    var dx = (ev.clientX - drag.x) * W / r.width, dy = (ev.clientY - drag.y) * H / r.height;
    if (drag.mode === "move") { move(drag.o, dx, dy); } else { resize(drag.o, drag.mode, dx, dy); }
    draw();
  });
  function end(ev) {
    if (!drag || ev.pointerId !== drag.id) { return; }
    drag = null;
    sq.classList.remove("dragging");
    var button = document.getElementById("recrop");
    if (button) { button.classList.add("moved"); }
  }
  sq.addEventListener("pointerup", end);
  sq.addEventListener("pointercancel", end);
  var form = document.getElementById("recrop-form");
  if (form) {
    form.addEventListener("submit", function () {
      var button = document.getElementById("recrop");
      button.disabled = true;
      button.textContent = "Grading…";
    });
  }
  draw();
})();

// Area % without a keyboard: the quick buttons fill the field.
(function () {
  "use strict";
  var area = document.getElementById("area");
  if (!area) { return; }
  var buttons = document.querySelectorAll("button[data-area]");
  Array.prototype.forEach.call(buttons, function (b) {
    b.addEventListener("click", function () {
      area.value = b.dataset.area;
      Array.prototype.forEach.call(buttons, function (o) { o.classList.toggle("picked", o === b); });
    });
  });
})();
