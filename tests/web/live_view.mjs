#!/usr/bin/env node
// Drives the daemon's live web view in headless Chromium against a running daemon:
//
//   node tests/web/live_view.mjs BASE_URL TOKEN
//
// BASE_URL is where the daemon serves HTTP (e.g. http://127.0.0.1:7788), TOKEN its bearer token.
// The daemon must be able to run a session to a reply on its default agent (or LIVE_VIEW_AGENT).
// Environment, all optional:
//   LIVE_VIEW_SCREENSHOTS     directory to write desktop.png, phone.png, phone-list.png into
//                             (and failure.png when a step fails)
//   LIVE_VIEW_AGENT           agentId for the session the test spawns (default: the daemon's)
//   LIVE_VIEW_TIMEOUT_MS      deadline for each wait, default 20000
//   LIVE_VIEW_EXPECT_STREAMING=1  also require that the reply was seen streaming before it landed
//                             (only meaningful with an agent that streams in several deltas)
//   CHROMIUM                  browser binary, default /usr/bin/chromium
// Exit status 0 when every check held; 1 with "live view: FAILED ..." on stderr otherwise;
// 2 for bad usage.
import { chromium } from "playwright-core";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node live_view.mjs BASE_URL TOKEN");
  process.exit(2);
}
const shots = process.env.LIVE_VIEW_SCREENSHOTS || "";
const agentId = process.env.LIVE_VIEW_AGENT || "";
const timeout = Number(process.env.LIVE_VIEW_TIMEOUT_MS || 20000);
const expectStreaming = process.env.LIVE_VIEW_EXPECT_STREAMING === "1";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const nonce = randomBytes(4).toString("hex");

class Failure extends Error {}
const check = (ok, message) => { if (!ok) throw new Failure(message); };

async function callApi(method, route, body) {
  const res = await fetch(new URL(route, base), {
    method,
    headers: { Authorization: "Bearer " + token, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* reported below */ }
  check(res.ok && json, `${method} ${route} answered ${res.status}: ${text.slice(0, 300)}`);
  return json;
}

const textOf = (content) => typeof content === "string" ? content
  : Array.isArray(content) ? content.map((b) => (b && typeof b.text === "string" ? b.text : JSON.stringify(b, null, 2))).join("\n")
  : JSON.stringify(content, null, 2);

/** Waits for `fn`; on timeout fails with `what` and what the page shows instead. */
async function expect(what, fn) {
  try {
    return await fn();
  } catch (e) {
    if (!(e && e.name === "TimeoutError")) throw e;
    const seen = page ? await page.evaluate(() => ({
      dialog: document.getElementById("token-dialog").open ? document.getElementById("token-error").textContent : null,
      conn: document.getElementById("conn").dataset.state,
      toast: document.getElementById("toast").hidden ? null : document.getElementById("toast").textContent,
      list: [...document.querySelectorAll("#session-list li")].map((li) => li.dataset.key).slice(0, 10),
      messages: [...document.querySelectorAll("#messages li")].map((li) => `${li.dataset.seq || "live"}:${li.dataset.role || li.className}`),
    })).catch(() => null) : null;
    throw new Failure(`${what} within ${timeout} ms; the page shows ${JSON.stringify(seen)}`);
  }
}

let step = "start";
const steps = [];
async function run(name, fn) {
  step = name;
  const t0 = Date.now();
  const out = await fn();
  steps.push(`${name} (${Date.now() - t0} ms)`);
  return out;
}

const userDataDir = await mkdtemp(path.join(tmpdir(), "live-view-chromium-"));
let context = null;
let page = null;
const pageErrors = [];
const consoleErrors = [];

try {
  if (shots) await mkdir(shots, { recursive: true });
  context = await run("launch chromium", () => chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout,
  }));
  context.setDefaultTimeout(timeout);
  page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e && e.stack || e)));
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });

  await run("open the page", () => page.goto(new URL("/", base).href, { waitUntil: "load" }));

  // Records, for each run, the longest text the page showed while it was still streaming.
  await page.evaluate(() => {
    window.__liveViewMark = "not reloaded";
    window.__streamed = {};
    new MutationObserver(() => {
      for (const li of document.querySelectorAll("#messages li.live")) {
        const len = (li.querySelector(".body") || li).textContent.length;
        window.__streamed[li.dataset.liveRun] = Math.max(window.__streamed[li.dataset.liveRun] || 0, len);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });

  const refusal = await run("a wrong token is refused with the server's message", async () => {
    await page.waitForSelector("#token-dialog[open]", { state: "visible" });
    await page.fill("#token-input", "wrong-" + nonce);
    await page.click("#token-submit");
    await page.waitForFunction(() => document.getElementById("token-error").textContent.trim() !== "");
    check(await page.$eval("#token-dialog", (d) => d.open), "the token dialog closed although the token was wrong");
    return page.$eval("#token-error", (e) => e.textContent.trim());
  });

  await run("the right token shows the list with live events", async () => {
    await page.fill("#token-input", token);
    await page.click("#token-submit");
    await expect("the page did not accept the token", () => page.waitForSelector("#token-dialog", { state: "hidden" }));
    await expect("the events stream did not open and the list was not read",
      () => page.waitForSelector('#app[data-list="ready"] #list-pane', { state: "visible" }));
    await expect("the events stream is not live", () => page.waitForSelector('#conn[data-state="live"]', { state: "attached" }));
    check(await page.evaluate(() => sessionStorage.getItem("openclaw.token")) === token,
      "the token was not kept in sessionStorage");
  });

  const task = `live view task ${nonce}`;
  const spawned = await run("spawn a session through the API after load", () =>
    callApi("POST", "/api/sessions/spawn", agentId ? { task, agentId } : { task }));
  check(spawned.sessionKey && spawned.runId, `spawn answered without sessionKey/runId: ${JSON.stringify(spawned)}`);

  await run("the new session appears in the list without reload", () => expect(
    `session ${spawned.sessionKey} did not appear in the list`, () => page.waitForFunction(
      (key) => [...document.querySelectorAll("#session-list li")].some((li) => li.dataset.key === key), spawned.sessionKey)));

  // The text of the stored assistant message of `runId`, once the page shows it.
  const replyOnPage = async (runId) => {
    const handle = await expect(`the stored reply of run ${runId} did not appear`, () => page.waitForFunction((id) => {
      const li = [...document.querySelectorAll('#messages li[data-role="assistant"]')].find((el) => el.dataset.runId === id);
      return li ? li.querySelector(".body").textContent : null;
    }, runId));
    return handle.jsonValue();
  };
  const userMessageShown = (text) => expect(`the user message ${JSON.stringify(text)} did not appear`,
    () => page.waitForFunction((t) => [...document.querySelectorAll('#messages li[data-role="user"] .body')]
      .some((b) => b.textContent === t), text));
  const storedReply = async (runId) => {
    const h = await callApi("GET", `/api/sessions/${encodeURIComponent(spawned.sessionKey)}/history?limit=200&includeTools=1`);
    const m = h.messages.find((x) => x.role === "assistant" && x.runId === runId);
    check(m, `history has no assistant message for run ${runId}`);
    return { text: textOf(m.content), history: h };
  };

  const firstReply = await run("open it and see the task and its reply arrive", async () => {
    await page.click(`#session-list li[data-key="${spawned.sessionKey.replace(/["\\]/g, "\\$&")}"] a`);
    await userMessageShown(task);
    const shown = await replyOnPage(spawned.runId);
    const { text } = await storedReply(spawned.runId);
    check(text !== "", "the stored reply is empty, so the page could not be checked against it");
    check(shown === text, `the page shows the reply ${JSON.stringify(shown)}, the store has ${JSON.stringify(text)}`);
    return shown;
  });

  const message = `second message ${nonce}`;
  const secondReply = await run("send through the page's box and see the reply", async () => {
    await page.fill("#send-text", message);
    await page.click("#send");
    await expect("the send box was not cleared (the send failed?)",
      () => page.waitForFunction(() => document.getElementById("send-text").value === ""));
    const runId = await page.$eval("#send-form", (f) => f.dataset.lastRunId || "");
    check(runId && runId !== spawned.runId, `the page did not record a new run id for its send (got ${JSON.stringify(runId)})`);
    await userMessageShown(message);
    const shown = await replyOnPage(runId);
    const { text, history } = await storedReply(runId);
    check(shown === text, `the page shows the reply ${JSON.stringify(shown)}, the store has ${JSON.stringify(text)}`);
    return { runId, shown, history };
  });

  await run("every stored message is shown once, in order, and the page never reloaded", async () => {
    const seqs = await page.$$eval("#messages li[data-seq]", (els) => els.map((el) => Number(el.dataset.seq)));
    check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `messages are not shown once each in seq order: ${seqs.join(",")}`);
    const want = secondReply.history.messages.filter((m) => m.role !== "tool_result").map((m) => m.seq);
    const missing = want.filter((s) => !seqs.includes(s));
    check(missing.length === 0, `stored messages missing from the page: seq ${missing.join(",")}`);
    check(await page.evaluate(() => window.__liveViewMark) === "not reloaded", "the page was reloaded");
    check(pageErrors.length === 0, `the page threw: ${pageErrors.join("\n")}`);
    if (expectStreaming) {
      const streamed = await page.evaluate(() => window.__streamed);
      check((streamed[secondReply.runId] || 0) > 0, "the reply was never shown streaming before it landed");
    }
  });

  await run("screenshots and the phone layout", async () => {
    if (shots) await page.screenshot({ path: path.join(shots, "desktop.png") });
    await page.setViewportSize({ width: 390, height: 844 });
    await expect("at phone size the transcript is not shown alone", async () => {
      await page.waitForSelector("#list-pane", { state: "hidden" });
      await page.waitForSelector("#transcript", { state: "visible" });
    });
    if (shots) await page.screenshot({ path: path.join(shots, "phone.png") });
    await page.click("#back");
    await expect("at phone size the back button does not show the list alone", async () => {
      await page.waitForSelector("#list-pane", { state: "visible" });
      await page.waitForSelector("#chat-pane", { state: "hidden" });
    });
    if (shots) await page.screenshot({ path: path.join(shots, "phone-list.png") });
  });

  const streamed = await page.evaluate(() => window.__streamed);
  console.log(`live view: ok against ${base}`);
  for (const s of steps) console.log(`  ok  ${s}`);
  console.log(`  wrong token message: ${JSON.stringify(refusal)}`);
  console.log(`  session ${spawned.sessionKey}: replies ${JSON.stringify(firstReply)}, ${JSON.stringify(secondReply.shown)}`);
  console.log(`  longest streaming text seen before the second reply landed: ${streamed[secondReply.runId] || 0} chars`);
  if (shots) console.log(`  screenshots in ${shots}`);
} catch (e) {
  console.error(`live view: FAILED at step "${step}": ${e instanceof Failure ? e.message : (e && e.stack) || e}`);
  if (pageErrors.length) console.error("page errors:\n  " + pageErrors.join("\n  "));
  if (consoleErrors.length) console.error("console errors:\n  " + consoleErrors.join("\n  "));
  if (page && shots) await page.screenshot({ path: path.join(shots, "failure.png") }).catch(() => {});
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}
