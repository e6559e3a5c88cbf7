// A read-only admin in the console, after admin.mjs on the same server: a second admin
// holding only security.users.read signs in and is offered no change anywhere (every page
// it can reach is crawled: no form that posts but sign-out, no button outside a search or
// filter form), the screens it may not see answer 403; forged POSTs from its session, with
// its valid CSRF token, to every action of the console get 403 and change nothing; a POST
// without the CSRF token gets 403. Every request not to the keyledger server is aborted and
// fails the test. Screenshots of what it sees at 1280 and 390 px.
//
// Usage: node readonly.mjs URL ADMIN_KEY (scripts/console-test.sh runs it after admin.mjs).
import { readFileSync } from "node:fs";
import {
  STATE_FILE, assert, assertEveryControlLabelled, assertFitsNarrowScreen, assertNothingBlocked, fetchSession, launch, runner, screenshots as take,
} from "./lib.mjs";

// Every screen: its controls labelled, no sideways scrolling at 390 px, screenshots.
async function screenshots(page, name) {
  await assertEveryControlLabelled(page);
  await assertFitsNarrowScreen(page);
  await take(page, name);
}

const [base, adminKey] = process.argv.slice(2);
if (!base || !adminKey) {
  console.error("usage: node readonly.mjs URL ADMIN_KEY");
  process.exit(2);
}
const state = JSON.parse(readFileSync(STATE_FILE, "utf8"));

async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert(response.ok, `${method} ${path} answered ${response.status}: ${await response.clone().text()}`);
  return response.json();
}

// The records appended after `after` that change something: every type but the usage
// records and the refused admin requests (which record that nothing changed).
async function changesAfter(after) {
  const listed = [];
  let cursor = after;
  for (;;) {
    const page = await api("GET", `/v1/audit/events?after=${cursor}&limit=1000`);
    listed.push(...page.items.filter((r) => !["KeyUsageIntervalRecorded", "AdminAccessDenied"].includes(r.type)));
    if (page.next === null) return listed;
    cursor = page.next;
  }
}

async function head() {
  return (await api("GET", "/v1/audit/checkpoint")).size;
}

const t = runner("console readonly.mjs");
const { page, blocked, close } = await launch(base);
let ok = false;
try {
  let readerKey;
  let readerId;

  await t.step("an admin holding only security.users.read signs in", async () => {
    const role = await api("POST", "/v1/roles", { description: "Readers" });
    await api("POST", `/v1/roles/${role.id}/functions/activate`, { functions: ["security.users.read"] });
    const user = await api("POST", "/v1/users", { name: "Read-only admin" });
    readerId = user.id;
    await api("PUT", `/v1/users/${user.id}/roles/${role.id}`);
    readerKey = (await api("POST", `/v1/users/${user.id}/key`)).key;
    await page.goto(`${base}/console/sign-in`);
    await page.getByLabel("API key").fill(readerKey);
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in" }).click()]);
    assert((await page.getByText("Signed in as").innerText()).includes("Read-only admin"), "signed in");
  });

  await t.step("no page it can reach offers a change: no form that posts, no button but search and sign-out", async () => {
    const start = new URL(page.url()).pathname;
    const seen = new Set();
    const queue = [start, "/console/", `/console/users/${state.userId}`, `/console/users/${state.userId}/key`, `/console/users/${readerId}`];
    const offered = [];
    while (queue.length > 0 && seen.size < 60) {
      const path = queue.shift();
      if (seen.has(path)) continue;
      seen.add(path);
      const response = await page.goto(base + path);
      if (response.status() !== 200) continue;
      const found = await page.evaluate(() => {
        const problems = [];
        for (const form of document.querySelectorAll("form")) {
          const method = (form.getAttribute("method") || "get").toLowerCase();
          if (method !== "get" && !form.classList.contains("sign-out")) problems.push(`a ${method} form to ${form.action}`);
        }
        for (const button of document.querySelectorAll("button, input[type=submit], input[type=button]")) {
          const form = button.closest("form");
          const method = form ? (form.getAttribute("method") || "get").toLowerCase() : null;
          const signOut = form && form.classList.contains("sign-out");
          if (!(method === "get" || signOut)) problems.push(`a button "${button.textContent.trim()}" outside a GET form`);
        }
        const links = [...document.querySelectorAll("a[href^='/console/']")]
          .map((a) => a.getAttribute("href").split("#")[0])
          .filter((href) => !href.includes("/assets/") && !href.includes("download") && !href.includes("?"));
        return { problems, links };
      });
      offered.push(...found.problems.map((problem) => `${path}: ${problem}`));
      for (const link of found.links) if (!seen.has(link)) queue.push(link);
    }
    assert(offered.length === 0, `changes offered:\n${offered.join("\n")}`);
    assert(seen.has("/console/users"), `the users screen was visited: ${[...seen]}`);
    console.log(`  ${seen.size} pages crawled: ${[...seen].join(" ")}`);
  });

  await t.step("screens it may not see are not in the navigation and answer 403", async () => {
    await page.goto(`${base}/console/users`);
    const nav = (await page.getByRole("navigation", { name: "Screens" }).innerText()).split("\n").map((s) => s.trim());
    for (const hidden of ["Roles", "Event access", "Who can", "Audit trail", "Integrity", "Point in time", "Access review"]) {
      assert(!nav.includes(hidden), `${hidden} is not offered: ${nav}`);
    }
    for (const path of ["/console/roles", "/console/audit", "/console/integrity", "/console/integrity/bundle", "/console/point-in-time", "/console/access-review", "/console/audit/download?format=csv"]) {
      const response = await page.goto(base + path);
      assert(response.status() === 403, `${path} answered ${response.status()}`);
    }
    await page.goto(`${base}/console/users`);
    await screenshots(page, "readonly-users");
    await page.goto(`${base}/console/users/${state.userId}`);
    await screenshots(page, "readonly-user");
    await page.goto(`${base}/console/audit`);
    await screenshots(page, "readonly-forbidden");
  });

  await t.step("forged POSTs from its session, with its valid CSRF token, get 403 and change nothing", async () => {
    const session = await fetchSession(base, readerKey);
    assert(session.answer.status === 303, `sign-in answered ${session.answer.status}`);
    const csrf = await session.csrf("/console/users");
    assert(csrf, "the session's CSRF token");
    const before = await head();
    const { userId, roleId, groupId } = state;
    const forged = [
      ["/console/roles", { description: "Forged role" }],
      [`/console/roles/${roleId}/functions`, { function: "security.roles.manage", action: "activate" }],
      ["/console/users", { name: "Forged user" }],
      [`/console/users/${userId}/disable`, {}],
      [`/console/users/${userId}/enable`, {}],
      [`/console/users/${readerId}/roles`, { role_id: roleId }],
      [`/console/users/${userId}/roles/${roleId}/unassign`, {}],
      [`/console/users/${userId}/event-access`, { all_events: "on" }],
      [`/console/users/${userId}/key`, { grace: "0" }],
      [`/console/users/${userId}/key/revoke`, { confirm: "yes" }],
      ["/console/event-access", { name: "Forged group" }],
      ["/console/event-access/users", { user_id: readerId, all_events: "on" }],
      [`/console/event-access/${groupId}/events`, { event_id: "forged-event" }],
      [`/console/event-access/${groupId}/events/remove`, { event_id: "summit-2027-nyc" }],
    ];
    for (const [path, fields] of forged) {
      const response = await session.post(path, { csrf, ...fields });
      assert(response.status === 403, `POST ${path} with the CSRF token answered ${response.status}`);
    }
    const changed = await changesAfter(before);
    assert(changed.length === 0, `records appended: ${changed.map((r) => r.type).join(", ")}`);
    assert((await session.get("/console/users")).status === 200, "the session still works");
  });

  await t.step("a POST without the CSRF token gets 403", async () => {
    const session = await fetchSession(base, readerKey);
    const before = await head();
    const response = await session.post(`/console/users/${state.userId}/disable`, {});
    assert(response.status === 403, `answered ${response.status}`);
    const wrong = await session.post(`/console/users/${state.userId}/disable`, { csrf: "0".repeat(64) });
    assert(wrong.status === 403, `a wrong token answered ${wrong.status}`);
    assert((await changesAfter(before)).length === 0, "nothing changed");
    // The same POSTs from a full administrator's session without the token are refused too.
    const admin = await fetchSession(base, adminKey);
    const refused = await admin.post(`/console/users/${state.userId}/disable`, {});
    assert(refused.status === 403, `the administrator without a token: ${refused.status}`);
    const user = await api("GET", `/v1/users/${state.userId}`);
    assert(user.enabled === true, "the user is still enabled");
  });

  await t.step("no request left for another host", async () => assertNothingBlocked(blocked));
  ok = true;
} catch (error) {
  console.error(error);
  try {
    await take(page, "readonly-failure");
  } catch {}
} finally {
  await close();
}
const summary = t.summary();
process.exit(ok && summary ? 0 : 1);
