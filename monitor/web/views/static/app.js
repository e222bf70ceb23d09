// Postback Monitor pages: copy buttons, confirmations, times in the browser's time
// zone, the hit filter's local times, the live hit list, and the reconcile page's
// column detection. Pages work without this file (times stay UTC and say so); it
// only adds to them. No inline script: the Content-Security-Policy forbids it.
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
      function () {
        button.textContent = "Copied";
        if (source.dataset.clickId) renewClickId(source);
      },
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

  // The test hit's curl line: a new click id once it has been copied, so two pasted
  // commands never send the same one (the server's shape: "test-" and 8 hex digits).
  function renewClickId(code) {
    const bytes = crypto.getRandomValues(new Uint8Array(4));
    const fresh = "test-" + Array.from(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
    code.textContent = code.textContent.split(code.dataset.clickId).join(fresh);
    code.title = code.textContent;
    code.dataset.clickId = fresh;
  }

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  function parseTime(iso) {
    // Microseconds from the server: keep milliseconds, which every engine parses.
    return new Date(Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1")));
  }

  function zoneName(date) {
    try {
      const part = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
        .formatToParts(date).find(function (p) { return p.type === "timeZoneName"; });
      return part ? part.value : "";
    } catch (err) {
      return "";
    }
  }

  function localText(date) {
    return pad(date.getFullYear(), 4) + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      " " + zoneName(date);
  }

  function utcText(date) {
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  // Every <time datetime> in the browser's time zone, UTC on hover; a relative one
  // ("3 min ago") keeps its text and gets both in its title.
  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      const date = parseTime(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      el.dataset.local = "";
      if (el.hasAttribute("data-clock")) {
        // A chart's axis: the clock (and the day over 7 days) is enough.
        const clockText = pad(date.getHours()) + ":" + pad(date.getMinutes());
        el.textContent = el.dataset.clock === "7d"
          ? pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " + clockText : clockText;
        el.title = localText(date) + " (" + utcText(date) + ")";
      } else if (el.hasAttribute("data-ago")) {
        el.title = localText(date) + " (" + utcText(date) + ")";
      } else {
        el.textContent = localText(date);
        el.title = utcText(date);
      }
    });
  }
  localizeTimes(document);

  // The hit filter's From and To: UTC in the page and in the URL, local time in the
  // inputs. Without this script they stay UTC and say so.
  function timeFields(value) {
    const m = /^(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?/.exec(value);
    return m ? m.slice(1).map(function (x) { return Number(x || 0); }) : null;
  }

  function inputValue(date) {
    return pad(date.getFullYear(), 4) + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function utcToLocalInput(value) {
    const f = timeFields(value);
    if (!f) return value;
    const date = new Date(0);
    date.setUTCFullYear(f[0], f[1] - 1, f[2]);
    date.setUTCHours(f[3], f[4], f[5], 0);
    return isNaN(date) ? value : inputValue(date);
  }

  function localInputToUtc(value) {
    const f = timeFields(value);
    if (!f) return value;
    const date = new Date(0);
    date.setFullYear(f[0], f[1] - 1, f[2]);
    date.setHours(f[3], f[4], f[5], 0);
    return isNaN(date) ? value : date.toISOString().slice(0, 19);
  }

  function offsetLabel() {
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes < 0 ? "-" : "+";
    const abs = Math.abs(minutes);
    return "local time, UTC" + sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("input[data-utc]").forEach(function (input) {
      if (input.value) input.value = utcToLocalInput(input.value);
      const zone = input.parentElement.querySelector(".zone");
      if (zone) zone.textContent = "(" + offsetLabel() + ")";
    });
    filters.addEventListener("submit", function (event) {
      event.preventDefault();
      const params = new URLSearchParams();
      new FormData(filters).forEach(function (value, key) {
        if (value === "") return;
        const input = filters.elements.namedItem(key);
        const utc = input && input.hasAttribute && input.hasAttribute("data-utc");
        params.append(key, utc ? localInputToUtc(String(value)) : String(value));
      });
      window.location.assign(window.location.pathname + "?" + params.toString());
    });
  }

  function ago(iso) {
    const seconds = Math.max(0, (Date.now() - parseTime(iso).getTime()) / 1000);
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

  // ---- Reconcile page (/reconcile) ----
  // The chosen report's first 64 KiB go to /reconcile/detect, which reads them with
  // the server's report reader; its header fills the column selects and what it
  // detected is selected, for the user to confirm. From/To: local time in the inputs,
  // UTC when sent. Without this script the selects say "detect automatically" and
  // the server detects when the run starts.
  function setupReconcile(form) {
    const DETECT_BYTES = 64 * 1024;
    const fileInput = document.getElementById("report-file");
    const status = document.getElementById("detect-status");
    const detected = document.getElementById("detected-columns");
    const selects = Array.from(form.querySelectorAll("select[data-field]"));
    const initial = selects.map(function (select) { return select.innerHTML; });
    const times = form.querySelectorAll("input[data-utc]");
    let asked = 0;

    function showLocal() {
      times.forEach(function (input) {
        if (input.value) input.value = utcToLocalInput(input.value);
        const zone = input.parentElement.querySelector(".zone");
        if (zone) zone.textContent = "(" + offsetLabel() + ")";
      });
    }
    showLocal();
    function tooLarge(file) {
      if (!file || file.size <= Number(form.dataset.maxBytes)) return false;
      say("This file is larger than the server takes (" + form.dataset.maxSize +
        "): export a shorter period.", "error-text");
      return true;
    }
    form.addEventListener("submit", function (event) {
      if (tooLarge(fileInput.files && fileInput.files[0])) {
        event.preventDefault();  // the upload would only be refused at its end
        fileInput.focus();
        return;
      }
      times.forEach(function (input) {
        if (input.value) input.value = localInputToUtc(input.value);
      });
    });
    // Back to a page the browser kept: the inputs hold the UTC values sent.
    window.addEventListener("pageshow", function (event) { if (event.persisted) showLocal(); });

    function say(text, kind) {
      status.textContent = text;
      status.className = "small " + kind;
    }

    function option(value, text, selected) {
      const el = document.createElement("option");
      el.value = value;
      el.textContent = text;
      el.selected = Boolean(selected);
      return el;
    }

    function fill(header, columns) {
      selects.forEach(function (select) {
        const field = select.dataset.field;
        select.textContent = "";
        select.appendChild(option("", field === "click_id" ? "choose a column" : "not in the report"));
        header.forEach(function (name) {
          select.appendChild(option(name, name, columns[field] === name));
        });
      });
      detected.value = JSON.stringify(columns);
    }

    function reset() {
      selects.forEach(function (select, i) { select.innerHTML = initial[i]; });
      detected.value = "";
    }

    fileInput.addEventListener("change", function () {
      const file = fileInput.files && fileInput.files[0];
      const ask = ++asked;
      reset();
      if (!file || tooLarge(file)) return;
      say("Reading the columns of " + file.name + "…", "muted");
      fetch(form.dataset.detect, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": form.dataset.csrf, "Content-Type": "application/octet-stream" },
        body: file.slice(0, DETECT_BYTES)
      }).then(function (response) {
        return response.json().then(function (doc) { return { ok: response.ok, doc: doc }; });
      }).then(function (answer) {
        if (ask !== asked) return;  // another file was chosen meanwhile
        const doc = answer.doc || {};
        if (!answer.ok || doc.error) {
          say(doc.error || "The file could not be read as a report.", "error-text");
          return;
        }
        fill(doc.header, doc.columns);
        say("Detected: " + doc.detected_label + ". Check the columns below.", "detected");
      }).catch(function () {
        if (ask === asked) say("The columns could not be read now: they are detected when the run starts.", "muted");
      });
    });
  }

  const reconcileForm = document.getElementById("reconcile-form");
  if (reconcileForm) setupReconcile(reconcileForm);

  const MAX_ROWS = 500;

  // The charts follow the live list: fetched again after new hits, at most every
  // CHART_REFRESH_MS (the newest bar fills up while the page is open).
  const CHART_REFRESH_MS = 3000;
  let chartTimer = null;
  let chartLast = 0;
  function refreshCharts() {
    if (chartTimer) return;
    const wait = Math.max(0, chartLast + CHART_REFRESH_MS - Date.now());
    chartTimer = setTimeout(async function () {
      chartTimer = null;
      chartLast = Date.now();
      const current = document.getElementById("charts");
      if (!current || !current.dataset.src) return;
      try {
        const response = await fetch(current.dataset.src, { credentials: "same-origin" });
        if (!response.ok) return;
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.getElementById("charts");
        if (!fresh) return;
        // Keep open what the user opened.
        const open = Array.from(current.querySelectorAll("details")).map(function (d) { return d.open; });
        fresh.querySelectorAll("details").forEach(function (d, i) { if (open[i]) d.open = true; });
        current.replaceWith(fresh);
        localizeTimes(fresh);
      } catch (err) { /* the list's own state shows the connection */ }
    }, wait);
  }

  function startLive(table) {
    const tbody = document.getElementById("hit-rows");
    const bar = document.getElementById("live-bar");
    const state = document.getElementById("live-state");
    const pauseButton = document.getElementById("live-pause");
    const newButton = document.getElementById("live-new");
    const counter = document.getElementById("live-count");
    const empty = document.getElementById("no-hits");
    const announcer = document.getElementById("live-announce");
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

    // For screen readers: what just arrived, and whether it waits behind the counter.
    function announce(rows, held) {
      if (!announcer || !rows.length) return;
      const flagged = rows.filter(function (row) { return row.classList.contains("flagged"); });
      let text = rows.length + (rows.length === 1 ? " new hit" : " new hits");
      if (flagged.length) text += ", " + flagged.length + " flagged";
      if (held) text += "; press Show to list " + (rows.length === 1 ? "it" : "them");
      announcer.textContent = text + ".";
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
          rows.forEach(localizeTimes);
          pending = rows.concat(pending);
          const summary = doc.getElementById("summary");
          const current = document.getElementById("summary");
          if (summary && current) current.replaceWith(summary);
          localizeTimes(document);
          if (rows.length) refreshCharts();
          announce(rows, holding());
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
