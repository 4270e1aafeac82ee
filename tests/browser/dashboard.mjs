// Drives Debian's Chromium (headless) through the dashboard page for tests/tests/dashboard.rs
// and reports what a person would see, as JSON lines on stdout:
//
//   node dashboard.mjs URL SCREENSHOT_PATH
//
//   out: {"snapshot": {...}}             the page once loaded and live
//   out: {"idle_api_requests": N}        API requests in 3 s with nothing new (polling would show)
//   in:  {"wait_for_alert": {"sensor": S, "seq": N}}
//   out: {"appeared_ms": T, "same_document": true, "snapshot": {...}}
//        after which the screenshot is saved and the browser closed;
//   or in: {"close": {"wait_ms": T}}   (tests/tests/e2e/demo.rs: live data all the time)
//   out: {"same_document": true, "page_errors": [...], "snapshot": {...}} after T ms,
//        after which the screenshot is saved and the browser closed.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node dashboard.mjs URL SCREENSHOT_PATH");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const say = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function nextCommand() {
  const { value, done } = await lines.next();
  if (done) throw new Error("stdin closed before the next command");
  return JSON.parse(value);
}

async function snapshot(page) {
  return page.evaluate(() => {
    const text = (node, selector) => node.querySelector(selector)?.textContent.trim() ?? "";
    const bars = (id) => [...document.querySelectorAll(`#${id} g.bar`)].map((g) => ({
      ip: text(g, "text.label"),
      count: Number(text(g, "text.value")),
      width: Number(g.querySelector("rect").getAttribute("width")),
    }));
    return {
      status: document.querySelector("#status").dataset.state,
      alerts: [...document.querySelectorAll("#alerts li")].map((li) => ({
        sensor: text(li, ".sensor"),
        seq: Number(li.dataset.seq),
        temperature: text(li, ".temp"),
      })),
      sensors: [...document.querySelectorAll("#sensors tbody tr")].map((tr) => ({
        cells: [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()),
        trend_points: tr.querySelector("polyline")?.getAttribute("points").split(" ").length ?? 0,
      })),
      sensor_total: text(document, "#sensor-total"),
      current: { caption: text(document, "#chart-current figcaption"), bars: bars("chart-current") },
      previous: { caption: text(document, "#chart-previous figcaption"), bars: bars("chart-previous") },
      forecast: (() => {
        const chart = document.querySelector("#forecast svg");
        const points = (selector) =>
          chart.querySelector(selector)?.getAttribute("points").split(" ").filter(Boolean).length ?? 0;
        return {
          sensor: chart.dataset.sensor,
          shown: !document.querySelector("#forecast").classList.contains("hidden"),
          band_points: points("polygon.band"),
          expected_points: points("polyline.expected"),
          reading_points: points("polyline.reading"),
          anomalies: [...chart.querySelectorAll("circle.anomaly")].map((c) => ({
            seq: Number(c.dataset.seq),
            kind: c.dataset.kind,
          })),
          listed: [...document.querySelectorAll("#anomalies li")].map((li) => `${li.dataset.sensor}#${li.dataset.seq}`),
        };
      })(),
    };
  });
}

const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  let apiRequests = 0;
  page.on("request", (request) => {
    const path = new URL(request.url()).pathname;
    if (path.startsWith("/api/") && path !== "/api/events") apiRequests += 1;
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20000 });
  // The load at start and the one when the event stream opens.
  await page.waitForFunction(() => Number(document.body.dataset.loads || 0) >= 2, null, { timeout: 20000 });
  await page.waitForTimeout(300);
  await page.evaluate(() => { window.__sameDocument = true; });
  say({ snapshot: await snapshot(page) });

  const before = apiRequests;
  await page.waitForTimeout(3000);
  say({ idle_api_requests: apiRequests - before });

  const command = await nextCommand();
  if (command.close) {
    await page.waitForTimeout(command.close.wait_ms);
    say({
      same_document: await page.evaluate(() => window.__sameDocument === true),
      page_errors: errors,
      snapshot: await snapshot(page),
    });
  } else {
    const alert = command.wait_for_alert;
    const started = Date.now();
    await page.waitForSelector(`#alerts li[data-sensor="${alert.sensor}"][data-seq="${alert.seq}"]`, { timeout: 30000 });
    const appeared = Date.now() - started;
    await page.waitForTimeout(200);
    say({
      appeared_ms: appeared,
      same_document: await page.evaluate(() => window.__sameDocument === true),
      page_errors: errors,
      snapshot: await snapshot(page),
    });
  }
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
// stdin may still be open: the driver is done.
process.exit(0);
