// Shared by the console's browser tests (admin.mjs, review.mjs, readonly.mjs).
//
// launch(base) starts Debian's chromium through playwright-core (no browser download) in
// a fresh profile, and routes every request of the context: one to the keyledger server
// (`base`) goes on, any other is aborted and recorded in `blocked`, which the test must
// find empty at the end (`assertNothingBlocked`).
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS || "target/console-screenshots";
export const STATE_FILE = process.env.CONSOLE_STATE || "target/console-test/state.json";

export async function launch(base) {
  const origin = new URL(base).origin;
  const profile = mkdtempSync(join(tmpdir(), "keyledger-console-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
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
  const blocked = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/") || url === origin) {
      return route.continue();
    }
    blocked.push(url);
    return route.abort("blockedbyclient");
  });
  const page = context.pages()[0] || (await context.newPage());
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, blocked, close };
}

// A tiny test runner: named steps, counted, the first failure stops the run with the
// step's name; `summary` prints "N passed, M failed".
export function runner(name) {
  let passed = 0;
  let failed = 0;
  return {
    async step(title, body) {
      try {
        await body();
        passed += 1;
        console.log(`ok - ${title}`);
      } catch (error) {
        failed += 1;
        console.log(`not ok - ${title}`);
        throw error;
      }
    },
    summary() {
      console.log(`${name}: ${passed} passed, ${failed} failed`);
      return failed === 0;
    },
    counts: () => ({ passed, failed }),
  };
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertNothingBlocked(blocked) {
  assert(blocked.length === 0, `requests to other hosts were attempted: ${blocked.join(", ")}`);
}

// Screenshots of the current page at 1280 and 390 px wide, full page.
export async function screenshots(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

// Asks the API's checkKey (from Node's fetch, not the browser) whether `key` may do
// `fn` (on `eventId`).
export async function checkKey(base, key, fn, eventId) {
  const body = { key, function: fn };
  if (eventId) body.event_id = eventId;
  const response = await fetch(`${base}/v1/check`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert(response.status === 200, `checkKey answered ${response.status}`);
  return response.json();
}

// A console session driven with fetch (no browser): signs in with `key`, returns
// `get(path)` and `post(path, fields)` carrying its cookie, without following redirects.
export async function fetchSession(base, key) {
  const cookies = new Map();
  const keep = (response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const [name, value] = pair.split("=");
      if (attributes.some((a) => a.trim().toLowerCase() === "max-age=0")) cookies.delete(name.trim());
      else cookies.set(name.trim(), value.trim());
    }
  };
  const header = () => [...cookies].map(([n, v]) => `${n}=${v}`).join("; ");
  const get = async (path) => {
    const response = await fetch(base + path, { headers: { cookie: header() }, redirect: "manual" });
    keep(response);
    return response;
  };
  const post = async (path, fields) => {
    const response = await fetch(base + path, {
      method: "POST",
      headers: { cookie: header(), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString(),
      redirect: "manual",
    });
    keep(response);
    return response;
  };
  const signIn = await get("/console/sign-in");
  const token = (await signIn.text()).match(/name="csrf" value="([^"]+)"/)[1];
  const answer = await post("/console/sign-in", { csrf: token, key });
  return { get, post, answer, csrf: async (path) => ((await (await get(path)).text()).match(/name="csrf" value="([^"]+)"/) || [])[1] };
}

// Every visible form control of the page has a label (a test finds each by its label).
export async function assertEveryControlLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((control) => control.type !== "hidden" && control.labels.length === 0)
      .map((control) => control.outerHTML),
  );
  assert(unlabelled.length === 0, `controls without a label on ${page.url()}: ${unlabelled.join(" ")}`);
}

// At 390 px wide nothing makes the page scroll sideways.
export async function assertFitsNarrowScreen(page) {
  await page.setViewportSize({ width: 390, height: 900 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize({ width: 1280, height: 900 });
  assert(width <= 390, `${page.url()} is ${width} px wide at 390 px`);
}
