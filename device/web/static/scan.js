// Live preview: fetch a snapshot about once a second, show it, remember its frame id
// so Capture grades exactly the frame on screen. Tap the preview to pause/resume.
(function () {
  "use strict";
  var box = document.getElementById("preview");
  if (!box) { return; }
  var img = document.getElementById("preview-img");
  var state = document.getElementById("preview-state");
  var frameField = document.getElementById("frame-id");
  var guide = document.getElementById("guide");
  var rect = document.getElementById("guide-rect");
  var fraction = rect ? rect.getAttribute("width") / Math.min(
    guide.viewBox.baseVal.width, guide.viewBox.baseVal.height) : 0.5;
  var paused = false, busy = false, lastUrl = null, failures = 0;

  function setGuide(w, h) {
    var side = Math.round(Math.min(w, h) * fraction);
    guide.setAttribute("viewBox", "0 0 " + w + " " + h);
    rect.setAttribute("x", Math.floor((w - side) / 2));
    rect.setAttribute("y", Math.floor((h - side) / 2));
    rect.setAttribute("width", side);
    rect.setAttribute("height", side);
  }

  function refresh() {
    if (paused || busy || document.hidden) { return; }
    busy = true;
    fetch(box.dataset.src + "?t=" + Date.now(), {credentials: "same-origin", cache: "no-store"})
      .then(function (resp) {
        if (!resp.ok) { throw new Error("camera " + resp.status); }
        var id = resp.headers.get("X-Frame-Id");
        var size = (resp.headers.get("X-Frame-Size") || "").split("x");
        return resp.blob().then(function (blob) { return {blob: blob, id: id, size: size}; });
      })
      .then(function (r) {
        var url = URL.createObjectURL(r.blob);
        img.src = url;
        if (lastUrl) { URL.revokeObjectURL(lastUrl); }
        lastUrl = url;
        if (frameField) { frameField.value = r.id || ""; }
        if (r.size.length === 2) { setGuide(+r.size[0], +r.size[1]); }
        state.textContent = "live";
        failures = 0;
      })
      .catch(function (err) {
        failures += 1;
        state.textContent = "camera unavailable, retrying… (" + err.message + ")";
      })
      .finally(function () { busy = false; });
  }

  box.addEventListener("click", function () {
    paused = !paused;
    state.textContent = paused ? "paused: tap to resume" : "live";
    if (!paused) { refresh(); }
  });
  var form = document.getElementById("capture-form");
  if (form) {
    form.addEventListener("submit", function () {
      paused = true;  // keep the captured frame on screen while it is graded
      var button = document.getElementById("capture");
      if (button) { button.disabled = true; button.textContent = "Grading…"; }
    });
  }
  refresh();
  setInterval(function () {
    // Back off to one try in five while the camera keeps failing.
    if (failures < 3 || failures % 5 === 0) { refresh(); } else { failures += 1; }
  }, 1000);
})();
