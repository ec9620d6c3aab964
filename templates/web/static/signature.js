// Optional drawn signature: pointer strokes on a canvas, sent as a PNG data URL in a
// hidden field when the form is submitted. The typed name is the signature; this only
// adds a picture of it. No inline script: the page's Content-Security-Policy forbids it.
(function () {
  "use strict";
  var pad = document.getElementById("pad");
  var field = document.getElementById("drawn");
  var form = document.getElementById("sign-form");
  if (!pad || !field || !form) { return; }
  var ctx = pad.getContext("2d");
  var drawing = false, drawn = false;
  ctx.lineWidth = 3; ctx.lineCap = "round"; ctx.strokeStyle = "#111";
  function point(e) {
    var r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
  }
  pad.addEventListener("pointerdown", function (e) {
    drawing = true; var p = point(e); ctx.beginPath(); ctx.moveTo(p.x, p.y); pad.setPointerCapture(e.pointerId);
  });
  pad.addEventListener("pointermove", function (e) {
    if (!drawing) { return; } var p = point(e); ctx.lineTo(p.x, p.y); ctx.stroke(); drawn = true;
  });
  pad.addEventListener("pointerup", function () { drawing = false; });
  pad.addEventListener("pointercancel", function () { drawing = false; });
  document.getElementById("clear-pad").addEventListener("click", function () {
    ctx.clearRect(0, 0, pad.width, pad.height); drawn = false; field.value = "";
  });
  form.addEventListener("submit", function () { field.value = drawn ? pad.toDataURL("image/png") : ""; });
}());
