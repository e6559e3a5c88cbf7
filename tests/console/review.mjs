// The console's reviewer screens in headless Chromium, after admin.mjs on the same server
// (it reads the state admin.mjs wrote): a reviewer holding only security.audit.read signs
// in, filters the audit trail to the user admin.mjs created, opens a record's stored JSON,
// downloads the filtered set as CSV and JSON, verifies integrity, downloads the bundle and
// the checkpoint and runs the exact `keyledger verify` commands the screen shows (they must
// accept), looks at a point in time and a diff, and at the access review's findings and
// charts. Every request not to the keyledger server is aborted and fails the test.
// Screenshots of every screen at 1280 and 390 px.
//
// Usage: node review.mjs URL ADMIN_KEY (scripts/console-test.sh runs it after admin.mjs).
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  STATE_FILE, assert, assertEveryControlLabelled, assertFitsNarrowScreen, assertNothingBlocked, launch, runner, screenshots as take,
} from "./lib.mjs";

// Every screen: its controls labelled, no sideways scrolling at 390 px, screenshots.
async function screenshots(page, name) {
  await assertEveryControlLabelled(page);
  await assertFitsNarrowScreen(page);
  await take(page, name);
}

const [base, adminKey] = process.argv.slice(2);
if (!base || !adminKey) {
  console.error("usage: node review.mjs URL ADMIN_KEY");
  process.exit(2);
}
const state = JSON.parse(readFileSync(STATE_FILE, "utf8"));
const keyledger = process.env.KEYLEDGER_BIN || state.keyledger;
const downloads = resolve("target/console-test/review-downloads");
rmSync(downloads, { recursive: true, force: true });
mkdirSync(downloads, { recursive: true });

// The admin API, for the set-up only (the reviewer is made as an admin would make one).
async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert(response.ok, `${method} ${path} answered ${response.status}: ${await response.clone().text()}`);
  return response.json();
}

const t = runner("console review.mjs");
const { page, blocked, close } = await launch(base);
let ok = false;
try {
  const path = () => new URL(page.url()).pathname;
  const records = () => page.locator("ol.trail > li");

  // Clicks a download link and saves the file under its suggested name.
  async function download(link) {
    const [file] = await Promise.all([page.waitForEvent("download"), link.click()]);
    const saved = join(downloads, file.suggestedFilename());
    await file.saveAs(saved);
    return { name: file.suggestedFilename(), path: saved, text: readFileSync(saved, "utf8") };
  }

  await t.step("a reviewer holding only security.audit.read signs in and is shown the reviewer screens", async () => {
    const role = await api("POST", "/v1/roles", { description: "Auditors" });
    await api("POST", `/v1/roles/${role.id}/functions/activate`, { functions: ["security.audit.read"] });
    const user = await api("POST", "/v1/users", { name: "Compliance reviewer" });
    await api("PUT", `/v1/users/${user.id}/roles/${role.id}`);
    const { key } = await api("POST", `/v1/users/${user.id}/key`);
    await page.goto(`${base}/console/sign-in`);
    await page.getByLabel("API key").fill(key);
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in" }).click()]);
    const nav = await page.getByRole("navigation", { name: "Screens" }).innerText();
    for (const screen of ["Audit trail", "Integrity", "Point in time", "Access review"]) {
      assert(nav.includes(screen), `the navigation offers ${screen}: ${nav}`);
    }
    for (const screen of ["Roles", "Users", "Keys", "Event access"]) {
      assert(!nav.split("\n").includes(screen), `the navigation does not offer ${screen}: ${nav}`);
    }
    assert((await page.locator("form[method=post]:not(.sign-out)").count()) === 0, "no form that posts");
  });

  await t.step("the audit trail lists the newest record first, each expandable to its stored JSON", async () => {
    await page.goto(`${base}/console/audit`);
    await screenshots(page, "audit");
    const seqs = await page.locator("ol.trail .seq").allTextContents();
    const numbers = seqs.map((s) => Number(s.replace("#", "")));
    assert(numbers.length > 10, `records listed: ${numbers.length}`);
    assert(numbers.every((n, i) => i === 0 || n < numbers[i - 1]), `newest first: ${numbers.slice(0, 5)}`);
  });

  await t.step("a malformed filter is shown in words next to its field", async () => {
    await page.getByLabel("Actor").fill("nobody");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Filter" }).click()]);
    const error = await page.locator("#actor-error").textContent();
    assert(/“nobody” is not a user id/.test(error), error);
    assert((await page.getByLabel("Actor").getAttribute("aria-describedby")).includes("actor-error"), "described by it");
    await screenshots(page, "audit-error");
  });

  await t.step("filter the trail to the created user: every record about them, newest first", async () => {
    await page.goto(`${base}/console/audit`);
    await page.getByLabel("Subject").fill(state.userId);
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Filter" }).click()]);
    const summaries = await page.locator("ol.trail summary").allInnerTexts();
    assert(summaries.length >= 6, `records about the user: ${summaries.length}`);
    assert(summaries.every((s) => s.includes(state.userId)), `every record is about ${state.userId}`);
    const types = summaries.map((s) => s.split("·")[0].replace(/^#\d+\s*/, "").trim());
    for (const type of ["UserCreated", "RoleAssigned", "EventAccessSet", "KeyGenerated", "KeyRevoked"]) {
      assert(types.includes(type), `${type} is listed: ${types}`);
    }
    assert(types[0] === "KeyRevoked", `the newest first: ${types[0]}`);
    assert(types[types.length - 1] === "UserCreated", `the oldest last: ${types[types.length - 1]}`);
    assert(summaries.some((s) => s.includes(state.userName)), "the user is named");
    const first = records().first();
    await first.locator("summary").click();
    const json = JSON.parse(await first.locator("pre.record").innerText());
    assert(json.type === "KeyRevoked" && json.subject === state.userId && json.data.user_id === state.userId, JSON.stringify(json));
    assert(/^[0-9a-f]{64}$/.test(json.hash) && /^[0-9a-f]{64}$/.test(json.prev_hash), "the stored hashes");
    await screenshots(page, "audit-filtered");
  });

  await t.step("the filtered set downloads as CSV and as JSON, the records as stored", async () => {
    const listed = (await page.locator("ol.trail .seq").allTextContents()).map((s) => Number(s.replace("#", "")));
    const csv = await download(page.getByRole("link", { name: "Download CSV" }));
    assert(csv.name === "audit-trail.csv", csv.name);
    const lines = csv.text.trimEnd().split("\r\n");
    assert(lines[0] === "seq,at,type,actor,subject,id,data,prev_hash,hash", lines[0]);
    assert(lines.length - 1 === listed.length, `${lines.length - 1} rows for ${listed.length} records`);
    assert(lines.slice(1).every((line) => line.split(",")[4] === state.userId), "every row is about the user");
    const json = await download(page.getByRole("link", { name: "Download JSON" }));
    const parsed = JSON.parse(json.text);
    assert(parsed.map((r) => r.seq).join() === [...listed].reverse().join(), "the same records, oldest first");
    assert(parsed.every((r) => r.subject === state.userId), "every record is about the user");
  });

  await t.step("integrity: the latest signed checkpoint, and verify now says valid", async () => {
    await page.goto(`${base}/console/integrity`);
    const size = Number(await page.locator("#checkpoint-size").textContent());
    assert(size > 10, `size ${size}`);
    assert(/^[0-9a-f]{64}$/.test(await page.locator("#checkpoint-root").textContent()), "the root");
    assert(/^[0-9a-f]{16}$/.test(await page.locator("#key-fingerprint").textContent()), "the key's fingerprint");
    await screenshots(page, "integrity");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Verify now" }).click()]);
    const result = await page.locator("#verify-result").innerText();
    assert(/^Valid\. Every one of the \d+ records verified/.test(result), result);
    await screenshots(page, "integrity-verified");
  });

  await t.step("download the bundle and the checkpoint; keyledger verify accepts them as the screen says", async () => {
    const size = await page.locator("#checkpoint-size").textContent();
    const bundle = await download(page.getByRole("link", { name: "Download the audit bundle" }));
    const checkpoint = await download(page.getByRole("link", { name: "Download the checkpoint" }));
    assert(bundle.name.endsWith(`-${size}.jsonl`), `${bundle.name} is of ${size} records`);
    assert(checkpoint.name === `checkpoint-${size}.json`, checkpoint.name);
    assert(bundle.text.trimEnd().split("\n").length > Number(size), "a line per record, and more");
    for (const id of ["verify-command", "verify-checkpoint-command"]) {
      const command = (await page.locator(`#${id}`).textContent()).trim().split(/\s+/);
      assert(command[0] === "keyledger" && command[1] === "verify", command.join(" "));
      assert(command.includes(bundle.name), `${id} names the downloaded file ${bundle.name}`);
      const output = execFileSync(keyledger, command.slice(1), { cwd: downloads, encoding: "utf8" });
      console.log(`  ${command.join(" ").slice(0, 90)}… -> ${output.trim().split("\n")[0]}`);
    }
    // And a tampered copy is refused, so the acceptance above means something.
    const lines = bundle.text.split("\n");
    const index = lines.findIndex((line) => line.includes(state.userId));
    lines[index] = lines[index].replace(state.userName, "Someone else");
    const tampered = join(downloads, "tampered.jsonl");
    (await import("node:fs")).writeFileSync(tampered, lines.join("\n"));
    const key = (await page.locator("#public-key").textContent()).trim();
    let refused = false;
    try {
      execFileSync(keyledger, ["verify", tampered, "--public-key", key], { encoding: "utf8", stdio: "pipe" });
    } catch (error) {
      refused = error.status === 1;
    }
    assert(refused, "keyledger verify refuses a tampered bundle with status 1");
  });

  await t.step("point in time: the view now, then before the user existed", async () => {
    await page.goto(`${base}/console/point-in-time`);
    const now = await page.locator("#view-heading + form ~ div.table-wrap").first().innerText();
    assert(now.includes(state.userName), "the user is in the view now");
    await screenshots(page, "point-in-time");
    // The position just before the user was created: the trail's UserCreated record.
    await page.goto(`${base}/console/audit?type=UserCreated&subject=${state.userId}`);
    const created = Number((await page.locator("ol.trail .seq").first().textContent()).replace("#", ""));
    await page.goto(`${base}/console/point-in-time`);
    await page.getByLabel("Position", { exact: true }).fill(String(created - 1));
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Show permissions" }).click()]);
    const before = await page.locator("section").first().innerText();
    assert(before.includes(`After record ${created - 1}`), "the view is of that position");
    assert(!before.includes(state.userName), "the user is not in the view before it was created");
    await page.getByLabel("Position", { exact: true }).fill("99999999");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Show permissions" }).click()]);
    const error = await page.locator("#position-error").textContent();
    assert(/past the head of the log/.test(error), error);
  });

  await t.step("point in time: the diff lists grants and revocations with who caused each", async () => {
    await page.goto(`${base}/console/point-in-time`);
    await page.getByLabel("From position").fill("0");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Show changes" }).click()]);
    const changes = await page.locator("ol.changes > li").allInnerTexts();
    const about = changes.filter((c) => c.includes(state.userId));
    assert(about.some((c) => /^Granted function api\.events\.read to Attendance app/.test(c)), about.join("\n"));
    assert(about.some((c) => /^Granted key key_/.test(c)), "a key granted");
    assert(about.some((c) => /^Revoked key key_/.test(c)), "a key revoked");
    assert(about.every((c) => /by Administrator .* in record #\d+ \(\w+\) at /.test(c)), about.join("\n"));
    await screenshots(page, "point-in-time-diff");
  });

  await t.step("access review: findings with severity, and the charts as accessible inline SVG", async () => {
    // A user disabled while their key still works: the finding a reviewer must not miss.
    const legacy = await api("POST", "/v1/users", { name: "Legacy app" });
    await api("POST", `/v1/users/${legacy.id}/key`);
    await api("POST", `/v1/users/${legacy.id}/disable`);
    await page.goto(`${base}/console/access-review`);
    const findings = await page.locator("table.findings tbody tr").allInnerTexts();
    assert(findings.length >= 1, "at least one finding");
    assert(findings.every((f) => /\b(high|medium|low)\b/i.test(f)), findings.join("\n"));
    const first = findings[0];
    assert(/high/i.test(first) && first.includes("Legacy app") && first.includes("disabled_user_with_active_key"), first);
    const charts = page.locator("svg.chart[role=img]");
    assert((await charts.count()) === 3, "three charts");
    for (const title of ["Keys by age", "Keys by last use", "Checks per day"]) {
      assert((await page.locator("svg.chart title", { hasText: title }).count()) === 1, `a chart titled ${title}`);
    }
    // The usage recorded every second shows on today's row of the checks chart.
    const desc = await page.locator("#chart-checks-desc").textContent();
    const today = new Date().toISOString().slice(0, 10);
    const counted = desc.match(new RegExp(`${today}: (\\d+) allowed, (\\d+) refused`));
    assert(counted && Number(counted[1]) > 0, `today's checks: ${desc}`);
    await screenshots(page, "access-review");
    const csv = await download(page.getByRole("link", { name: "Download the report (CSV)" }));
    assert(csv.text.startsWith("user_id,name,enabled,"), csv.text.slice(0, 40));
  });

  await t.step("no request left for another host", async () => assertNothingBlocked(blocked));
  ok = true;
} catch (error) {
  console.error(error);
  try {
    await take(page, "review-failure");
  } catch {}
} finally {
  await close();
}
const summary = t.summary();
process.exit(ok && summary ? 0 : 1);
