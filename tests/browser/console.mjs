// Drives Taskyard's web console in headless Chromium (Debian's
// /usr/bin/chromium, through playwright-core; no browser is downloaded).
//
//   node tests/browser/console.mjs <console URL> <screenshot folder>
//
// Submits an exec task through the console's form, watches its page until
// it has succeeded, checks the timeline and the log, and saves screenshots
// of the overview, the task list, the task, the nodes and the pools. Every
// wait is bounded; any failure exits non-zero with the reason.

import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node console.mjs <console URL> <screenshot folder>");
  process.exit(2);
}
const executablePath = process.env.TASKYARD_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 30_000;
const SCRIPT = "for i in 1 2 3; do echo line $i; sleep 0.3; done";

mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "taskyard-chromium-"));

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shoot(page, name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

let context;
try {
  // A fresh profile folder: launchPersistentContext passes it to Chromium
  // as --user-data-dir.
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    viewport: { width: 1360, height: 900 },
    headless: true,
    timeout: WAIT_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));

  // The overview.
  await page.goto(base + "/", { waitUntil: "load" });
  check((await page.title()).includes("Overview"), `unexpected title ${await page.title()}`);
  await page.locator("#nodes table").waitFor();
  await page.locator("#charts svg").first().waitFor();

  // Submit through the form on the task list.
  await page.goto(base + "/tasks", { waitUntil: "load" });
  const form = page.locator("form.submit");
  await form.locator("select[name=kind]").selectOption("exec");
  await form.locator("textarea[name=spec]").fill(
    JSON.stringify({ command: "sh", args: ["-c", SCRIPT] }),
  );
  await form.locator("input[name=cpu_millis]").fill("200");
  await form.locator("input[name=memory_mb]").fill("64");
  await Promise.all([
    page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/),
    form.locator("button[type=submit]").click(),
  ]);
  const taskUrl = page.url();
  const taskId = taskUrl.split("/").pop();
  console.log(`submitted ${taskId}`);

  // Watch it to completion: the page updates itself (no reload here).
  await page.locator('#task-state[data-state="succeeded"]').waitFor({ timeout: WAIT_MS });
  console.log("the task page shows succeeded");

  // The timeline has every step, in order.
  const states = await page.locator("#timeline tbody tr").evaluateAll((rows) =>
    rows.map((row) => row.dataset.state),
  );
  for (const state of ["queued", "scheduled", "running", "succeeded"]) {
    check(states.includes(state), `the timeline lacks ${state}: ${states.join(", ")}`);
  }
  check((await page.locator("#attempts tbody tr").count()) >= 1, "no attempt is shown");

  // The log, live or from the result.
  await page.waitForFunction(
    () => /line 3/.test(document.getElementById("log")?.textContent || ""),
    null,
    { timeout: WAIT_MS },
  );
  const log = await page.locator("#log").textContent();
  for (const line of ["line 1", "line 2", "line 3"]) {
    check(log.includes(line), `the log lacks "${line}": ${log}`);
  }
  console.log(`log: ${JSON.stringify(log)}`);
  await shoot(page, "task");

  // The list shows it, filtered by kind and state.
  await page.goto(`${base}/tasks?kind=exec&state=succeeded`, { waitUntil: "load" });
  await page.locator(`tr[data-task="${taskId}"]`).waitFor();
  await shoot(page, "tasks");

  await page.goto(base + "/", { waitUntil: "load" });
  await page.locator("#nodes table").waitFor();
  await shoot(page, "overview");

  await page.goto(base + "/nodes", { waitUntil: "load" });
  const nodeLink = page.locator("#nodes tbody a").first();
  await nodeLink.waitFor();
  await shoot(page, "nodes");
  await nodeLink.click();
  await page.locator("figure.chart svg").first().waitFor();
  await shoot(page, "node");

  await page.goto(base + "/pools", { waitUntil: "load" });
  await page.locator("form.pool").first().waitFor();
  await shoot(page, "pools");

  check(problems.length === 0, problems.join("; "));
  console.log("console browser test passed");
} catch (err) {
  console.error(`console browser test failed: ${err.stack || err}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
