// The console's admin workflow in headless Chromium, the platform's seed workflow in its
// words: sign in with the bootstrap key, create "API Access", activate the five read
// functions, create a standalone user, assign the role, create a group with an event, give
// the user access, generate a key and read it once, check the key works through checkKey,
// rotate with grace, revoke. Also: an error shown next to its field, a POST without the
// CSRF token refused, a session ended at once by revoking its key, sign-out, and
// screenshots of every screen at 1280 and 390 px. Every request not to the keyledger
// server is aborted and fails the test.
//
// Usage: node admin.mjs URL ADMIN_KEY (scripts/console-test.sh runs it).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  STATE_FILE, assert, assertEveryControlLabelled, assertFitsNarrowScreen, assertNothingBlocked, checkKey,
  fetchSession, launch, runner, screenshots as take,
} from "./lib.mjs";

// Every screen: its controls labelled, no sideways scrolling at 390 px, screenshots.
async function screenshots(page, name) {
  await assertEveryControlLabelled(page);
  await assertFitsNarrowScreen(page);
  await take(page, name);
}

const [base, adminKey] = process.argv.slice(2);
if (!base || !adminKey) {
  console.error("usage: node admin.mjs URL ADMIN_KEY");
  process.exit(2);
}
const READ_FUNCTIONS = [
  "API Resource: Attendees - Read",
  "API Resource: Events - Read",
  "API Resource: Invoices - Read",
  "API Resource: People - Read",
  "API Resource: Sessions - Read",
];
const EVENT = "summit-2027-nyc";
const t = runner("console admin.mjs");
const { page, blocked, close } = await launch(base);
const state = { url: base, adminKey, keyledger: process.env.KEYLEDGER_BIN, dataDir: process.env.KEYLEDGER_DATA };
let ok = false;
try {
  const path = () => new URL(page.url()).pathname;
  const errorNextTo = (id) => page.locator(`#${id}-error`);

  await t.step("an anonymous visit is sent to the sign-in page", async () => {
    await page.goto(`${base}/console/`);
    assert(path() === "/console/sign-in", `at ${page.url()}`);
    await screenshots(page, "sign-in");
  });

  await t.step("a wrong key is refused next to the key field", async () => {
    await page.getByLabel("API key").fill("kl_not_a_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    const error = await errorNextTo("key").textContent();
    assert(/not a keyledger key/.test(error), error);
  });

  await t.step("sign in with the bootstrap key", async () => {
    await page.goto(`${base}/console/sign-in`);
    await page.getByLabel("API key").fill(adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    assert(path() === "/console/roles", `at ${page.url()}`);
    assert((await page.getByText("Signed in as").textContent()).includes("Administrator"), "who is signed in");
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "kl_console");
    assert(session && session.httpOnly && session.sameSite === "Strict" && session.path === "/console", JSON.stringify(cookies));
    assert(!cookies.some((c) => c.value.includes(adminKey)), "the key is in no cookie");
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert(!stored.includes(adminKey), "the key is in no browser storage");
  });

  await t.step('create the role "API Access"', async () => {
    await page.getByLabel("Description").fill("API Access");
    await page.getByRole("button", { name: "Create role" }).click();
    assert(/^\/console\/roles\/role_[0-9a-f]{16}$/.test(path()), `at ${page.url()}`);
    state.roleId = path().split("/").pop();
  });

  await t.step("activate the five read functions", async () => {
    for (const name of READ_FUNCTIONS) await page.getByLabel(name, { exact: true }).check();
    await page.getByRole("button", { name: "Activate", exact: true }).click();
    for (const name of READ_FUNCTIONS) {
      const row = page.locator("tr", { has: page.getByLabel(name, { exact: true }) });
      assert((await row.textContent()).includes("Active"), `${name} is active`);
    }
    const writeRow = page.locator("tr", { has: page.getByLabel("API Resource: People - Write", { exact: true }) });
    assert((await writeRow.textContent()).includes("Inactive"), "a write function stays inactive");
    await screenshots(page, "role");
  });

  await t.step("a refusal is shown in words next to the field that caused it", async () => {
    await page.goto(`${base}/console/roles`);
    await page.getByLabel("Description").fill("api access");
    await page.getByRole("button", { name: "Create role" }).click();
    const error = await errorNextTo("description").textContent();
    assert(/api access/i.test(error) && /role|description/i.test(error), error);
    assert((await page.getByLabel("Description").getAttribute("aria-describedby")) === "description-error", "described by");
    await page.goto(`${base}/console/roles?q=api`);
    assert((await page.locator("table").textContent()).includes("API Access"), "search finds the role");
    await screenshots(page, "roles");
  });

  await t.step("create a standalone API user and assign the role", async () => {
    await page.goto(`${base}/console/users`);
    await page.getByLabel("Name", { exact: true }).fill("Attendance app");
    await page.getByLabel("Email (optional)").fill("attendance@example.com");
    await page.getByRole("button", { name: "Create user" }).click();
    assert(/^\/console\/users\/usr_[0-9a-f]{16}$/.test(path()), `at ${page.url()}`);
    state.userId = path().split("/").pop();
    state.userName = "Attendance app";
    await page.getByLabel("Role to assign").selectOption({ label: "API Access" });
    await page.getByRole("button", { name: "Assign role" }).click();
    assert((await page.locator("section", { hasText: "Roles" }).first().textContent()).includes("API Access"), "role held");
  });

  await t.step("create a group with an event", async () => {
    await page.goto(`${base}/console/event-access`);
    await page.getByLabel("Group name").fill("USA");
    await page.getByRole("button", { name: "Create group" }).click();
    assert(/^\/console\/event-access\/grp_[0-9a-f]{16}$/.test(path()), `at ${page.url()}`);
    state.groupId = path().split("/").pop();
    await page.getByLabel("Event id").fill("not an event id!");
    await page.getByRole("button", { name: "Add event" }).click();
    assert((await errorNextTo("event").count()) === 1, "a malformed event id is refused next to its field");
    await page.getByLabel("Event id").fill(EVENT);
    await page.getByRole("button", { name: "Add event" }).click();
    assert((await page.locator("main").textContent()).includes(EVENT), "event listed");
    await screenshots(page, "group");
    // A nested group, so that the tree has depth.
    await page.goto(`${base}/console/event-access`);
    await page.getByLabel("Group name").fill("New York");
    await page.getByLabel("Inside group").selectOption({ label: "USA" });
    await page.getByRole("button", { name: "Create group" }).click();
    await page.goto(`${base}/console/event-access`);
    assert((await page.locator(".tree").textContent()).includes("New York"), "tree shows the subgroup");
    await screenshots(page, "event-access");
  });

  await t.step("give the user access to the group", async () => {
    await page.goto(`${base}/console/users/${state.userId}`);
    await page.getByLabel("Only the events of the groups ticked below").check();
    await page.getByLabel("USA", { exact: true }).check();
    await page.getByRole("button", { name: "Set event access" }).click();
    assert(path() === `/console/users/${state.userId}`, `at ${page.url()}`);
    const access = await page.locator("section", { hasText: "Event access" }).first().textContent();
    assert(access.includes("USA"), access);
  });

  await t.step("generate a key and read it once", async () => {
    await page.goto(`${base}/console/users/${state.userId}/key`);
    await screenshots(page, "key-none");
    await page.getByRole("button", { name: "Generate key" }).click();
    assert((await page.getByText("you will not see this again").count()) === 1, "warned");
    state.apiKey = await page.getByLabel(/New key/).inputValue();
    assert(/^kl_[0-9A-Za-z]{36}$/.test(state.apiKey), state.apiKey);
    assert(await page.getByRole("button", { name: "Copy key" }).isVisible(), "copy button offered");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download key" }).click(),
    ]);
    const saved = readFileSync(await download.path(), "utf8").trim();
    assert(saved === state.apiKey, "the download holds the key");
    assert(!page.url().includes(state.apiKey), "the key is in no URL");
    await screenshots(page, "key-generated");
  });

  await t.step("the key works through checkKey, on the group's event only", async () => {
    const allowed = await checkKey(base, state.apiKey, "api.attendees.read", EVENT);
    assert(allowed.allowed === true, JSON.stringify(allowed));
    state.apiKeyId = allowed.key_id;
    const elsewhere = await checkKey(base, state.apiKey, "api.attendees.read", "another-event");
    assert(elsewhere.allowed === false && elsewhere.reason === "event_not_accessible", JSON.stringify(elsewhere));
    const write = await checkKey(base, state.apiKey, "api.attendees.write", EVENT);
    assert(write.allowed === false && write.reason === "function_not_granted", JSON.stringify(write));
  });

  await t.step("who can read attendees of the event: the user, its key, the role and the group", async () => {
    await page.goto(`${base}/console/who-can`);
    await page.getByLabel("Function").selectOption("api.attendees.read");
    await page.getByLabel("Event (optional)").fill(EVENT);
    await page.getByRole("button", { name: "Who can?" }).click();
    const answer = await page.locator("section").last().textContent();
    for (const part of ["Attendance app", state.apiKeyId, "API Access", "USA"]) assert(answer.includes(part), `${part} in ${answer}`);
    await screenshots(page, "who-can");
  });

  await t.step("rotate with a 5 minute grace, shown the old key's last use", async () => {
    // Usage is recorded every second in this test (--key-usage-interval-secs 1).
    let text = "";
    for (let i = 0; i < 20; i += 1) {
      await page.goto(`${base}/console/users/${state.userId}/key`);
      text = await page.locator("section", { hasText: "Rotate key" }).textContent();
      if (!text.includes("last used: never")) break;
      await page.waitForTimeout(500);
    }
    assert(/last used: \d{4}-/.test(text), text);
    await screenshots(page, "key");
    await page.getByLabel("5 minutes").check();
    await page.getByRole("button", { name: "Rotate key" }).click();
    state.firstKey = state.apiKey;
    state.firstKeyId = state.apiKeyId;
    state.apiKey = await page.getByLabel(/New key/).inputValue();
    assert((await page.locator("main").textContent()).includes("keeps working until"), "grace shown");
    const old = await checkKey(base, state.firstKey, "api.events.read");
    assert(old.allowed === true, `old key works in its grace period: ${JSON.stringify(old)}`);
    const fresh = await checkKey(base, state.apiKey, "api.events.read");
    assert(fresh.allowed === true, JSON.stringify(fresh));
    state.apiKeyId = fresh.key_id;
    await page.goto(`${base}/console/keys`);
    assert((await page.locator("table").textContent()).includes(state.firstKeyId), "keys list shows the key in grace");
    await screenshots(page, "keys");
  });

  await t.step("users: search and filters", async () => {
    await page.goto(`${base}/console/users?q=attend&kind=api`);
    const rows = await page.locator("tbody tr").count();
    assert(rows === 1 && (await page.locator("tbody").textContent()).includes("Attendance app"), "API users filter");
    await page.goto(`${base}/console/users?kind=admins`);
    assert(!(await page.locator("tbody").textContent()).includes("Attendance app"), "admins filter");
    await page.goto(`${base}/console/users`);
    await screenshots(page, "users");
    await page.goto(`${base}/console/users/${state.userId}`);
    await screenshots(page, "user");
  });

  await t.step("a POST without the CSRF token gets 403 and changes nothing", async () => {
    const response = await page.request.post(`${base}/console/roles`, { form: { description: "Forged" } });
    assert(response.status() === 403, `status ${response.status()}`);
    await page.goto(`${base}/console/roles?q=forged`);
    assert((await page.getByText("No role matches.").count()) === 1, "no role was created");
  });

  await t.step("revoking a key ends its console session at once", async () => {
    // A second admin, made in the console, signs in with fetch.
    await page.goto(`${base}/console/roles`);
    await page.getByLabel("Description").fill("Helpdesk");
    await page.getByRole("button", { name: "Create role" }).click();
    await page.getByLabel("Security: Users - Read", { exact: true }).check();
    await page.getByRole("button", { name: "Activate", exact: true }).click();
    await page.goto(`${base}/console/users`);
    await page.getByLabel("Name", { exact: true }).fill("Helpdesk admin");
    await page.getByRole("button", { name: "Create user" }).click();
    const helpdeskId = path().split("/").pop();
    await page.getByLabel("Role to assign").selectOption({ label: "Helpdesk" });
    await page.getByRole("button", { name: "Assign role" }).click();
    await page.goto(`${base}/console/users/${helpdeskId}/key`);
    await page.getByRole("button", { name: "Generate key" }).click();
    const helpdeskKey = await page.getByLabel(/New key/).inputValue();
    const other = await fetchSession(base, helpdeskKey);
    assert(other.answer.status === 303, `sign-in answered ${other.answer.status}`);
    assert((await other.get("/console/users")).status === 200, "the second admin sees users");
    assert((await other.get("/console/roles")).status === 403, "but not roles");
    await page.goto(`${base}/console/users/${helpdeskId}/key`);
    await page.getByLabel(/Yes, revoke/).check();
    await page.getByRole("button", { name: "Revoke key" }).click();
    const after = await other.get("/console/users");
    assert(after.status === 303 && after.headers.get("location").includes("ended=key-stopped"), `${after.status} ${after.headers.get("location")}`);
  });

  await t.step("revoke the user's key, with confirmation", async () => {
    await page.goto(`${base}/console/users/${state.userId}/key`);
    await page.getByLabel(/Yes, revoke/).check();
    await page.getByRole("button", { name: "Revoke key" }).click();
    const revoked = await checkKey(base, state.apiKey, "api.events.read");
    assert(revoked.allowed === false && revoked.reason === "revoked_key", JSON.stringify(revoked));
    assert((await page.getByText("Key revoked").count()) === 1, "the page says the key was revoked");
    assert((await page.getByRole("button", { name: "Generate key" }).count()) === 1, "a new key may be generated");
    await screenshots(page, "key-revoked");
  });

  await t.step("sign out", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    assert(path() === "/console/sign-in", `at ${page.url()}`);
    assert((await page.getByText("You signed out.").count()) === 1, "told");
    await page.goto(`${base}/console/users`);
    assert(path() === "/console/sign-in", "the session is over");
  });

  await t.step("no request left for another host", async () => assertNothingBlocked(blocked));
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + "\n");
  ok = true;
} catch (error) {
  console.error(error);
  try {
    await take(page, "failure");
  } catch {}
} finally {
  await close();
}
const summary = t.summary();
process.exit(ok && summary ? 0 : 1);
