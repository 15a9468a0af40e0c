// casevault console: progressive enhancement only. Every page works
// without this file; with it, "/" focuses the search box, the search
// results and a legal hold's scope preview update as you type, and the
// browser's time zone is offered to the server for dates (a cookie; a
// user's own setting wins).
(function () {
  "use strict";
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("cv_tz=" + encodeURIComponent(tz)) < 0) {
      document.cookie = "cv_tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* no Intl: dates stay in UTC */ }

  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    var q = document.getElementById("q");
    if (!q) { window.location.href = "/search"; return; }
    ev.preventDefault();
    q.focus();
    q.select();
  });

  // The hold form's live preview: as the scope is typed, what it covers
  // now comes from the server (POST /holds/preview?partial=1, the same
  // handler the "Preview" button posts to without JavaScript).
  var holdForm = document.getElementById("holdform");
  var preview = document.getElementById("preview");
  if (holdForm && preview && window.fetch && window.URLSearchParams) {
    var ptimer = null, pseq = 0;
    var scopeChanged = function (ev) {
      var t = ev.target;
      if (!t || !t.closest || !t.closest("fieldset")) return;
      clearTimeout(ptimer);
      ptimer = setTimeout(function () {
        var mine = ++pseq;
        fetch("/holds/preview?partial=1", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html" },
          body: new URLSearchParams(new FormData(holdForm)).toString()
        })
          .then(function (r) { return r.ok || r.status === 422 ? r.text() : null; })
          .then(function (html) {
            if (html === null || mine !== pseq) return;
            // The server escaped every value (html/template).
            preview.innerHTML = html;
          })
          .catch(function () { /* the Preview button still works */ });
      }, 400);
    };
    holdForm.addEventListener("input", scopeChanged);
    holdForm.addEventListener("change", scopeChanged);
  }

  var form = document.getElementById("searchform");
  var box = document.getElementById("q");
  var results = document.getElementById("results");
  if (!form || !box || !results || !window.fetch) return;
  var timer = null, seq = 0;
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = box.value.trim();
      if (q.length < 2) return;
      var params = new URLSearchParams(new FormData(form));
      var url = "/search?" + params.toString();
      params.set("partial", "1");
      var mine = ++seq;
      fetch("/search?" + params.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok || r.status === 422 ? r.text() : null; })
        .then(function (html) {
          if (html === null || mine !== seq) return;
          // The server escaped everything but <mark> (web/agent.go).
          results.innerHTML = html;
          history.replaceState(null, "", url);
        })
        .catch(function () { /* keep the old results; Enter still submits */ });
    }, 300);
  });
})();
