// Taskyard console: live regions, cancel / retry, and the live log.
// No framework and no build step; the server renders every page, and this
// script only swaps the `data-live` regions of the current page when the
// event stream says something changed (at most once a second).
(() => {
  "use strict";

  const MIN_GAP_MS = 1000;
  const FALLBACK_REFRESH_MS = 5000;
  let scheduled = false;
  let lastRefresh = 0;

  async function refresh() {
    scheduled = false;
    lastRefresh = Date.now();
    const regions = document.querySelectorAll("[data-live][id]");
    if (regions.length === 0) return;
    try {
      const response = await fetch(location.href, { cache: "no-store", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of regions) {
        const next = fresh.getElementById(region.id);
        if (next && next.innerHTML !== region.innerHTML) region.innerHTML = next.innerHTML;
      }
      document.title = fresh.title || document.title;
    } catch (_) {
      // The next event or tick tries again.
    }
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(refresh, Math.max(0, MIN_GAP_MS - (Date.now() - lastRefresh)));
  }

  const liveDot = document.getElementById("live");
  if (document.querySelector("[data-live]")) {
    if (window.EventSource) {
      const events = new EventSource("/console/events");
      events.addEventListener("change", schedule);
      events.addEventListener("lagged", schedule);
      events.addEventListener("open", () => liveDot && liveDot.classList.add("on"));
      events.addEventListener("error", () => liveDot && liveDot.classList.remove("on"));
    }
    // Heartbeats and samples publish no event: refresh now and then anyway.
    setInterval(schedule, FALLBACK_REFRESH_MS);
  }

  // Cancel and retry: POST with fetch, show the answer (or the JSON error).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const out = document.getElementById("action-result");
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.action, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "{}",
      });
      const text = await response.text();
      let shown = text;
      try {
        const json = JSON.parse(text);
        shown = json.error ? `${json.error.code || response.status}: ${json.error.message}` : JSON.stringify(json);
      } catch (_) {
        if (!response.ok) shown = `${response.status} ${response.statusText} ${text}`.trim();
      }
      if (out) {
        out.textContent = shown;
        out.className = response.ok ? "ok" : "error";
      }
    } catch (err) {
      if (out) {
        out.textContent = String(err);
        out.className = "error";
      }
    }
    schedule();
  });

  // The live log of the task page.
  const log = document.getElementById("log");
  if (log) followLog(log, document.getElementById("log-status"));

  function followLog(pre, status) {
    const id = pre.dataset.task;
    const seen = new Set();
    let after = "";
    const say = (text) => { if (status) status.textContent = text; };
    const append = (line) => {
      const key = `${line.attempt}:${line.seq}`;
      if (seen.has(key)) return;
      seen.add(key);
      const span = document.createElement("span");
      span.className = line.stream === "stderr" ? "stderr" : "stdout";
      const text = String(line.line);
      span.textContent = text.endsWith("\n") ? text : text + "\n";
      span.dataset.attempt = line.attempt;
      pre.appendChild(span);
    };
    const take = (page) => {
      for (const line of page.lines || []) append(line);
      if (page.next_after !== undefined && page.next_after !== null) after = page.next_after;
    };

    async function start() {
      let response;
      try {
        response = await fetch(`/api/v1/tasks/${id}/logs`, { cache: "no-store" });
      } catch (_) {
        return fromResult();
      }
      if (!response.ok) return fromResult();
      const page = await response.json();
      take(page);
      if (page.finished) return done();
      stream();
    }

    function stream() {
      if (!window.EventSource) return poll();
      say("live");
      const source = new EventSource(`/api/v1/tasks/${id}/logs/stream`);
      source.addEventListener("line", (event) => {
        try { append(JSON.parse(event.data)); } catch (_) { /* a bad line is skipped */ }
      });
      source.addEventListener("end", () => { source.close(); done(); });
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) poll();
      });
    }

    async function poll() {
      say("following");
      for (;;) {
        try {
          const response = await fetch(`/api/v1/tasks/${id}/logs?after=${encodeURIComponent(after)}`, { cache: "no-store" });
          if (!response.ok) return fromResult();
          const page = await response.json();
          take(page);
          if (page.finished) return done();
        } catch (_) { /* try again */ }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }

    function done() {
      if (pre.childNodes.length === 0) pre.textContent = "(no output)";
      say("finished");
      schedule();
    }

    // Without the log API: wait for the task to end and show the output
    // its result kept.
    async function fromResult() {
      say("waiting for the result (no live log here)");
      for (;;) {
        try {
          const response = await fetch(`/api/v1/tasks/${id}`, { cache: "no-store" });
          if (response.ok) {
            const task = await response.json();
            if (task.finished_at) {
              const result = task.result || {};
              for (const [stream, text] of [["stdout", result.stdout], ["stderr", result.stderr]]) {
                if (typeof text !== "string") continue;
                text.split("\n").filter((l, i, all) => l !== "" || i < all.length - 1)
                  .forEach((line, seq) => append({ attempt: task.attempt, seq: `${stream}${seq}`, stream, line }));
              }
              done();
              say("from the task's result");
              return;
            }
          }
        } catch (_) { /* try again */ }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }

    start();
  }
})();
