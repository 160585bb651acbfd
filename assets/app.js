// Gatehouse dashboard: the few behaviours htmx does not cover. Loaded with
// defer; everything still reads and submits with JavaScript off.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function textOf(el) {
    if (el.tagName === "INPUT" || el.tagName === "TEXTAREA") return el.value;
    return el.textContent;
  }

  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "offscreen";
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(ta); }
  }

  // <button data-copy="element-id"> copies that element's text or value.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var src = document.getElementById(btn.getAttribute("data-copy"));
    if (!src) return;
    var text = textOf(src);
    var done = function () {
      var old = btn.textContent;
      btn.textContent = "Copied";
      btn.classList.add("copied");
      setTimeout(function () { btn.textContent = old; btn.classList.remove("copied"); }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  });

  // <button data-reveal="input-id"> switches a password input to text and back.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-reveal]");
    if (!btn) return;
    var input = document.getElementById(btn.getAttribute("data-reveal"));
    if (!input) return;
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    btn.textContent = show ? "Hide" : "Reveal";
    btn.setAttribute("aria-pressed", show ? "true" : "false");
  });

  // "Menu" folds the sidebar open and shut under 768 px; without JavaScript
  // the link's #sidebar-menu target opens it instead.
  var toggle = document.querySelector(".menu-toggle");
  if (toggle) {
    var nav = document.getElementById("sidebar-menu");
    toggle.setAttribute("role", "button");
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", function (ev) {
      ev.preventDefault();
      var open = !nav.classList.contains("open");
      nav.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // A form htmx swapped in moves the focus as a page load would: to the
  // element marked autofocus (the first invalid field, or a row just added).
  document.addEventListener("htmx:afterSettle", function () {
    var el = document.querySelector("#main [autofocus]");
    if (!el) return;
    el.removeAttribute("autofocus");
    if (document.activeElement !== el) el.focus();
  });
})();
