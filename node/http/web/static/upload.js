/* Report forms on a slow link (item.html, forms marked data-upload).
 *
 * Checks the files against the limits the form states before anything is sent,
 * sends the form with XMLHttpRequest and shows how far the upload is and about
 * how long it has left; when the server refuses or the connection fails, the form
 * stays exactly as it was (text and chosen files) and says why. Without this
 * script the form posts as a plain form and the server re-renders it with the
 * text kept. No inline script, no eval: the page's CSP is script-src 'self'.
 */
(function () {
  "use strict";

  function fill(text, values) {
    return String(text || "").replace(/\{(\w+)\}/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : whole;
    });
  }

  function sizeText(n) {
    if (n < 1024) { return n + " B"; }
    if (n < 1024 * 1024) { return (n / 1024).toFixed(1) + " KB"; }
    return (n / (1024 * 1024)).toFixed(1) + " MB";
  }

  function setup(form) {
    var msgs = {};
    try { msgs = JSON.parse(form.getAttribute("data-msgs") || "{}"); } catch (e) { return; }
    var maxFile = Number(form.getAttribute("data-max-file")) || Infinity;
    var maxTotal = Number(form.getAttribute("data-max-total")) || Infinity;
    var maxCount = Number(form.getAttribute("data-max-count")) || Infinity;
    var status = form.querySelector(".upload-status");
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.className = "upload-bar";
    var busy = false;

    function say(text, failed) {
      status.hidden = false;
      status.textContent = text;
      status.classList.toggle("form-error", !!failed);
      status.setAttribute("role", failed ? "alert" : "status");
    }

    function left(seconds) {
      seconds = Math.max(1, Math.ceil(seconds));
      if (seconds < 90) { return fill(msgs.seconds, {n: seconds}); }
      return fill(msgs.minutes, {n: Math.ceil(seconds / 60)});
    }

    function buttons(disabled) {
      var all = form.querySelectorAll("button, input[type=submit]");
      for (var i = 0; i < all.length; i += 1) { all[i].disabled = disabled; }
    }

    function precheck() {
      var files = [];
      var inputs = form.querySelectorAll("input[type=file]");
      for (var i = 0; i < inputs.length; i += 1) {
        for (var j = 0; j < inputs[i].files.length; j += 1) { files.push(inputs[i].files[j]); }
      }
      if (files.length > maxCount) { return fill(msgs.too_many, {count: maxCount}); }
      var total = 0;
      for (var k = 0; k < files.length; k += 1) {
        if (files[k].size > maxFile) {
          return fill(msgs.too_big, {name: files[k].name, size: sizeText(files[k].size),
                                     limit: sizeText(maxFile)});
        }
        total += files[k].size;
      }
      if (total > maxTotal) {
        return fill(msgs.too_much, {size: sizeText(total), limit: sizeText(maxTotal)});
      }
      return null;
    }

    function why(html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var found = doc.querySelector("#" + form.id + " .form-error") ||
                  doc.querySelector("#page-error") || doc.querySelector(".form-error");
      if (found) { return found.textContent.replace(/\s+/g, " ").trim(); }
      return doc.title || "";
    }

    function done(xhr) {
      busy = false;
      buttons(false);
      bar.remove();
      if (xhr.status >= 500) { say(fill(msgs.server_error, {status: xhr.status}), true); return; }
      if (xhr.status >= 200 && xhr.status < 300 && /[?&]done=/.test(xhr.responseURL)) {
        say(msgs.saving, false);
        window.location.assign(xhr.responseURL);
        return;
      }
      say(fill(msgs.refused, {why: why(xhr.responseText || "")}), true);
    }

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest || !window.DOMParser) { return; }
      event.preventDefault();
      if (busy) { return; }
      var refusal = precheck();
      if (refusal) { say(refusal, true); return; }
      var data = new FormData(form);
      var submitter = event.submitter;
      if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
      var xhr = new XMLHttpRequest();
      // The rate is measured from the first progress event, not from the click: the
      // first bytes go at once into buffers (the socket's, the browser's), and counted
      // as sent they made the first estimates much too short on a slow line.
      var first = null;
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable || e.total === 0) { return; }
        var percent = Math.floor((e.loaded / e.total) * 100);
        var now = Date.now();
        if (first === null) { first = {at: now, loaded: e.loaded}; }
        var elapsed = (now - first.at) / 1000;
        var moved = e.loaded - first.loaded;
        bar.value = percent;
        if (percent >= 100) { say(msgs.saving, false); return; }
        if (elapsed >= 1 && moved > 0) {
          var rate = moved / elapsed;
          say(fill(msgs.progress, {percent: percent, left: left((e.total - e.loaded) / rate)}),
              false);
        } else {
          say(fill(msgs.progress_start, {percent: percent}), false);
        }
        status.appendChild(bar);
      });
      xhr.upload.addEventListener("load", function () { say(msgs.saving, false); });
      xhr.addEventListener("load", function () { done(xhr); });
      function cut() {
        busy = false;
        buttons(false);
        bar.remove();
        say(msgs.network, true);
      }
      xhr.addEventListener("error", cut);
      xhr.addEventListener("timeout", cut);
      xhr.addEventListener("abort", cut);
      busy = true;
      buttons(true);
      say(fill(msgs.progress_start, {percent: 0}), false);
      xhr.send(data);
    });
  }

  var forms = document.querySelectorAll("form[data-upload]");
  for (var i = 0; i < forms.length; i += 1) { setup(forms[i]); }
}());
