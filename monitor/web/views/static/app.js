// Postback Monitor pages: copy buttons, confirmations, relative times and the live
// hit list. Pages work without this file; it only adds to them. No inline script:
// the Content-Security-Policy forbids it.
"use strict";

(function () {
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const label = button.textContent;
    copyText(source.textContent).then(
      function () { button.textContent = "Copied"; },
      function () { button.textContent = "Select and copy"; }
    ).finally(function () {
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  function ago(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function tick() {
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      el.textContent = ago(el.getAttribute("datetime"));
    });
  }
  setInterval(tick, 5000);

  const MAX_ROWS = 500;

  function startLive(table) {
    const tbody = document.getElementById("hit-rows");
    const bar = document.getElementById("live-bar");
    const state = document.getElementById("live-state");
    const pauseButton = document.getElementById("live-pause");
    const newButton = document.getElementById("live-new");
    const counter = document.getElementById("live-count");
    const empty = document.getElementById("no-hits");
    let pending = [];
    let paused = false;
    let busy = false;
    let again = false;
    bar.hidden = false;

    function holding() {
      return paused || window.scrollY > 150;
    }

    function newestCursor() {
      const top = pending.length ? pending[0] : tbody.querySelector("tr[data-cursor]");
      return top ? top.dataset.cursor : "";
    }

    function showPending() {
      if (!pending.length) return;
      pending.forEach(function (row) { row.classList.add("new"); });
      tbody.prepend.apply(tbody, pending);
      pending = [];
      while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
      if (empty) empty.hidden = true;
      updateCounter();
    }

    function updateCounter() {
      counter.textContent = String(pending.length);
      newButton.hidden = pending.length === 0;
    }

    async function fetchNew() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do {
          again = false;
          const cursor = newestCursor();
          const url = table.dataset.rows + (cursor ? "&after=" + encodeURIComponent(cursor) : "");
          const response = await fetch(url, { credentials: "same-origin" });
          if (!response.ok) break;
          const doc = new DOMParser().parseFromString(await response.text(), "text/html");
          const rows = Array.from(doc.querySelectorAll("#new-rows > tr")).filter(function (row) {
            return !document.querySelector('tr[data-hit-id="' + row.dataset.hitId + '"]');
          });
          pending = rows.concat(pending);
          const summary = doc.getElementById("summary");
          const current = document.getElementById("summary");
          if (summary && current) current.replaceWith(summary);
          if (holding()) updateCounter(); else showPending();
          tick();
        } while (again);
      } catch (err) {
        state.textContent = "offline";
      } finally {
        busy = false;
      }
    }

    const source = new EventSource(table.dataset.live);
    source.addEventListener("hits", fetchNew);
    source.addEventListener("open", function () {
      state.textContent = "live";
      state.classList.remove("off");
      fetchNew();  // catch up on anything missed while disconnected
    });
    source.addEventListener("error", function () {
      state.textContent = "reconnecting…";
      state.classList.add("off");
    });
    pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
      state.classList.toggle("paused", paused);
      if (!paused && window.scrollY <= 150) showPending();
    });
    newButton.addEventListener("click", function () {
      showPending();
      window.scrollTo({ top: 0 });
    });
    window.addEventListener("scroll", function () {
      if (!paused && window.scrollY <= 150) showPending();
    }, { passive: true });
  }

  const table = document.getElementById("hits");
  if (table && table.dataset.live) startLive(table);
})();
