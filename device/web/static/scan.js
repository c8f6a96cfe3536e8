// Live preview: the MJPEG stream in an <img>, hints and the crop square from the
// server-sent events of /scan/hints. The stream stops while the page is hidden (the
// device stops reading the camera when nobody watches). Capture freezes the frame.
(function () {
  "use strict";
  var box = document.getElementById("preview");
  if (!box) { return; }
  var BLANK = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
  var img = document.getElementById("preview-img");
  var frozen = document.getElementById("preview-frozen");
  var state = document.getElementById("preview-state");
  var list = document.getElementById("hints");
  var crop = document.getElementById("crop-rect");
  var guide = document.getElementById("guide");
  var events = null, retry = null, hintsRetry = null, stopped = false, first = true;
  window.atopiscanHints = 0;  // hint updates received (the browser test reads it)

  function showState(text, bad) {
    state.textContent = text;
    state.classList.toggle("bad", !!bad);
  }

  function showHints(d) {
    window.atopiscanHints += 1;
    if (d.state === "camera_lost") {
      showState("Camera unavailable: retrying by itself…", true);
    } else if (d.state === "live") {
      showState("live", false);
    }
    guide.style.display = d.state === "camera_lost" ? "none" : "";
    list.textContent = "";
    var items = d.state === "live" ? d.hints : [];
    if (d.state === "live" && d.ok) { items = [{code: "ready", text: "Ready: press Capture"}]; }
    if (d.state === "live" && d.crop_doubt) {  // the auto crop is unsure: say why
      items = items.concat([{code: "crop-unsure", text: "Auto crop unsure (" +
        d.crop_doubt.replace(/_/g, " ") + "): the guide square will be graded"}]);
    }
    items.forEach(function (h) {
      var li = document.createElement("li");
      li.className = "hint hint-" + h.code;
      li.textContent = h.text;
      list.appendChild(li);
    });
    if (d.box) {
      crop.setAttribute("x", d.box[0]);
      crop.setAttribute("y", d.box[1]);
      crop.setAttribute("width", d.box[2]);
      crop.setAttribute("height", d.box[3]);
      crop.style.display = "";
      crop.setAttribute("stroke", d.crop_mode === "auto" ? "#5ce65c" : "#ffffff");
    } else if (d.state !== "live") {
      crop.style.display = "none";
    }
  }

  function openHints() {
    if (stopped || events || document.hidden) { return; }
    events = new EventSource(box.dataset.hints);
    events.onmessage = function (ev) { showHints(JSON.parse(ev.data)); };
    events.onerror = function () {
      showState("reconnecting…", true);
      fetch("/api/me", {credentials: "same-origin"}).then(function (resp) {
        if (resp.status === 401) { window.location.reload(); }  // the login ended
      }, function () {});
      // A refused stream (503: the stream caps, say while the last page's streams are
      // still closing) closes an EventSource for good: open a new one in a while.
      if (events && events.readyState === EventSource.CLOSED) {
        events = null;
        clearTimeout(hintsRetry);
        hintsRetry = setTimeout(openHints, 2000);
      }
    };
  }

  function start() {
    if (stopped) { return; }
    if (!first) { img.src = box.dataset.stream + "?t=" + Date.now(); }  // the page opened it
    first = false;
    openHints();
  }

  function stop() {
    img.src = BLANK;
    clearTimeout(hintsRetry);
    if (events) { events.close(); events = null; }
  }

  img.addEventListener("error", function () {
    if (stopped || img.src === BLANK) { return; }
    showState("preview lost: reconnecting…", true);
    clearTimeout(retry);
    // The stream ends with the login: then show the login page instead of retrying.
    fetch("/api/me", {credentials: "same-origin"}).then(function (resp) {
      if (resp.status === 401) { window.location.reload(); } else { retry = setTimeout(start, 2000); }
    }, function () { retry = setTimeout(start, 2000); });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); } else { start(); }
  });
  window.addEventListener("pagehide", stop);

  var form = document.getElementById("capture-form");
  if (form) {
    form.addEventListener("submit", function () {
      // Freeze what is on screen while the device grades it.
      try {
        frozen.width = img.naturalWidth;
        frozen.height = img.naturalHeight;
        frozen.getContext("2d").drawImage(img, 0, 0);
        frozen.hidden = false;
        img.hidden = true;
      } catch (e) { /* nothing to freeze yet */ }
      stopped = true;
      stop();
      showState("grading this frame…", false);
      var button = document.getElementById("capture");
      if (button) { button.disabled = true; button.textContent = "Grading…"; }
    });
  }
  start();
})();
