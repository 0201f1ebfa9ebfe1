// Bastion dashboard: the live feed (Server-Sent Events), live approvals, and small form helpers.
// No framework and no inline script (the CSP forbids it); rows are built with textContent, never innerHTML.
"use strict";

(function () {
  const MAX_ROWS = 200;

  function clock(epoch) {
    return new Date(epoch * 1000).toISOString().substring(11, 19);
  }

  function cell(row, text) {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function badge(outcome) {
    const span = document.createElement("span");
    span.className = "badge o-" + (outcome || "none");
    span.textContent = outcome || "—";
    return span;
  }

  function callRow(item) {
    const tr = document.createElement("tr");
    tr.dataset.id = item.id;
    tr.className = "fresh";
    const link = document.createElement("a");
    link.href = "/ui/events/" + encodeURIComponent(item.id);
    link.textContent = clock(item.time);
    cell(tr, link);
    cell(tr, item.principal);
    cell(tr, item.server);
    cell(tr, item.method);
    cell(tr, item.tool);
    cell(tr, badge(item.outcome));
    const findings = document.createElement("span");
    if (item.findings) {
      findings.className = "findings";
      findings.textContent = item.findings + ": " + item.finding_types.join(", ");
    }
    cell(tr, findings);
    cell(tr, item.latency_ms.toFixed(1) + " ms");
    return tr;
  }

  function noticeItem(item) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = "/ui/events/" + encodeURIComponent(item.id);
    link.textContent = clock(item.time) + " " + item.kind;
    li.appendChild(link);
    li.appendChild(document.createTextNode(" " + (item.principal || item.server || "") + " "));
    li.appendChild(badge(item.severity));
    return li;
  }

  function startFeed(table) {
    const rows = document.getElementById("feed-rows");
    const notices = document.getElementById("notices");
    const status = document.getElementById("feed-status");
    const empty = document.getElementById("feed-empty");
    const pause = document.getElementById("feed-pause");
    let paused = false;
    let held = [];
    let source = null;

    function show(item) {
      if (item.kind === "exchange") {
        rows.insertBefore(callRow(item), rows.firstChild);
        while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild);
        if (empty) empty.hidden = true;
      } else if (notices) {
        notices.insertBefore(noticeItem(item), notices.firstChild);
        while (notices.children.length > 50) notices.removeChild(notices.lastChild);
      }
    }

    function connect() {
      source = new EventSource(table.dataset.stream);
      source.addEventListener("open", () => { status.textContent = paused ? "Paused." : "Live: connected."; });
      source.addEventListener("error", () => { status.textContent = "Disconnected; reconnecting…"; });
      const onItem = (event) => {
        const item = JSON.parse(event.data);
        if (paused) {
          held.push(item);
          status.textContent = "Paused: " + held.length + " new call(s) held.";
        } else {
          show(item);
        }
      };
      source.addEventListener("call", onItem);
      source.addEventListener("notice", onItem);
      source.addEventListener("resync", () => {
        status.textContent = "Fell behind; reconnecting…";
        source.close();
        window.setTimeout(connect, 1000);
      });
    }

    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        held.forEach(show);
        held = [];
        status.textContent = "Live: connected.";
      } else {
        status.textContent = "Paused.";
      }
    });
    connect();
  }

  function watchApprovals(container) {
    const source = new EventSource("/api/feed/stream?kind=approval");
    source.addEventListener("approval", async () => {
      const active = document.activeElement;
      const activeId = active && active.closest("form") ? active.closest("form").action : null;
      const response = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("approvals");
      if (!fresh) return;
      container.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
      if (activeId) {
        const again = container.querySelector('form[action="' + new URL(activeId).pathname + '"] button');
        if (again) again.focus();
      }
    });
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("feed");
    if (table) startFeed(table);
    const approvals = document.querySelector("[data-live=approvals]");
    if (approvals) watchApprovals(approvals);
    document.querySelectorAll("[data-select-on-focus]").forEach((input) => {
      input.addEventListener("focus", () => input.select());
    });
  });
})();
