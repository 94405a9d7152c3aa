// A small ACP agent built on the official TypeScript SDK, so that openclaw's ACP client is
// tested against protocol code nobody on the project wrote. What it does is chosen by the
// first word of the prompt (see README.md); everything it reports is plain text in its reply,
// so a test can check what the client answered.
//
// Options: --ignore-term   ignore SIGTERM and stdin EOF (like a real agent seen here), so
//                          only SIGKILL stops it.
//          --no-load       do not advertise loadSession.

import { Readable, Writable } from "node:stream";
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import * as acp from "@agentclientprotocol/sdk";

const IGNORE_TERM = process.argv.includes("--ignore-term");
const NO_LOAD = process.argv.includes("--no-load");
// Real agents keep their sessions in their own home, so any workspace can load any of them;
// ACP_TEST_AGENT_STORE names such a shared file (the default is per working directory).
const STORE = process.env.ACP_TEST_AGENT_STORE || join(process.cwd(), ".acp-test-agent-sessions.json");

if (IGNORE_TERM) {
  process.on("SIGTERM", () => console.error("test agent: ignoring SIGTERM"));
  // Keeps the event loop alive after stdin closes.
  setInterval(() => {}, 1 << 30);
}

/** Sessions by id: { cwd, mcpServers, history: [{ role, text }] }. */
function loadStore() {
  try {
    return JSON.parse(readFileSync(STORE, "utf8"));
  } catch {
    return {};
  }
}

function saveStore(sessions) {
  // Merged with what other processes saved meanwhile: the store may be shared.
  const merged = { ...loadStore(), ...sessions };
  const tmp = `${STORE}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(merged));
  renameSync(tmp, STORE);
}

const sessions = loadStore();
/** Cancellation of the prompt running in each session. */
const running = new Map();

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

function promptText(prompt) {
  return prompt
    .filter((block) => block.type === "text")
    .map((block) => block.text)
    .join("");
}

function errorText(e) {
  return `${e.code ?? "?"} ${e.message ?? e}`;
}

async function handlePrompt({ params, client }) {
  const sessionId = params.sessionId;
  const session = sessions[sessionId];
  if (!session) throw acp.RequestError.sessionNotFound(sessionId);
  const text = promptText(params.prompt);
  const [word = "", ...rest] = text.trim().split(/\s+/);
  const args = rest;
  const cancel = new AbortController();
  running.set(sessionId, cancel);

  const update = (u) => client.notify("session/update", { sessionId, update: u });
  let reply = "";
  const say = async (chunk) => {
    reply += chunk;
    await update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: chunk } });
  };

  // Like real agents, echo the prompt back first: the client must not take it as reply.
  await update({ sessionUpdate: "user_message_chunk", content: { type: "text", text } });

  let stopReason = "end_turn";
  try {
    switch (word.toLowerCase()) {
      case "chunks": {
        const n = Number(args[0] ?? 3);
        for (let i = 1; i <= n; i++) await say(`c${i} `);
        break;
      }
      case "think":
        await update({
          sessionUpdate: "agent_thought_chunk",
          content: { type: "text", text: "pondering the request" },
        });
        await say("thought about it");
        break;
      case "plan":
        await update({
          sessionUpdate: "plan",
          entries: [
            { content: "read the code", priority: "high", status: "completed" },
            { content: "write the change", priority: "medium", status: "pending" },
          ],
        });
        await say("planned");
        break;
      case "work":
      case "tool": {
        // `work`: text before and after the tool call, all in one turn.
        if (word.toLowerCase() === "work") await say("looking ");
        const kind = args[0] ?? "read";
        const toolCallId = `call-${kind}`;
        const title = `${kind} something`;
        await update({
          sessionUpdate: "tool_call",
          toolCallId,
          title,
          kind,
          status: "pending",
          locations: [{ path: join(session.cwd, "notes.txt"), line: 3 }],
          rawInput: { what: kind },
        });
        const answer = await client.request("session/request_permission", {
          sessionId,
          toolCall: { toolCallId, title, kind },
          options: [
            { optionId: "allow-once", name: "Allow", kind: "allow_once" },
            { optionId: "allow-always", name: "Always allow", kind: "allow_always" },
            { optionId: "reject-once", name: "Reject", kind: "reject_once" },
          ],
        });
        const outcome = answer.outcome.outcome === "selected" ? answer.outcome.optionId : "cancelled";
        if (outcome.startsWith("allow")) {
          await update({ sessionUpdate: "tool_call_update", toolCallId, status: "in_progress" });
          await update({
            sessionUpdate: "tool_call_update",
            toolCallId,
            status: "completed",
            content: [{ type: "content", content: { type: "text", text: `${kind} done` } }],
            rawOutput: { ok: true },
          });
        } else {
          await update({
            sessionUpdate: "tool_call_update",
            toolCallId,
            status: "failed",
            content: [{ type: "content", content: { type: "text", text: `not allowed: ${outcome}` } }],
          });
        }
        await say(`permission: ${outcome}`);
        if (word.toLowerCase() === "work") await say(" then done");
        if (outcome === "cancelled") stopReason = "cancelled";
        break;
      }
      case "read": {
        try {
          const got = await client.request("fs/read_text_file", {
            sessionId,
            path: args[0] ?? "",
            ...(args[1] ? { line: Number(args[1]) } : {}),
            ...(args[2] ? { limit: Number(args[2]) } : {}),
          });
          await say(`read: ${got.content}`);
        } catch (e) {
          await say(`read error: ${errorText(e)}`);
        }
        break;
      }
      case "write": {
        try {
          await client.request("fs/write_text_file", {
            sessionId,
            path: args[0] ?? "",
            content: args.slice(1).join(" "),
          });
          await say("write: ok");
        } catch (e) {
          await say(`write error: ${errorText(e)}`);
        }
        break;
      }
      case "slow":
      case "slow-endturn": {
        // Streams until cancelled; a cancelled turn ends `cancelled`, or `end_turn` for
        // slow-endturn (as opencode answers a cancel).
        for (let i = 1; i <= 6000 && !cancel.signal.aborted; i++) {
          await say(`tick${i} `);
          await sleep(20, cancel.signal);
        }
        if (cancel.signal.aborted) {
          await say("[cancel received]");
          stopReason = word === "slow" ? "cancelled" : "end_turn";
        }
        break;
      }
      case "usage":
        await update({
          sessionUpdate: "usage_update",
          used: 1234,
          size: 200000,
          cost: { amount: 0.25, currency: "USD" },
        });
        await say("counted");
        break;
      case "stop":
        await say(`stopping with ${args[0]}`);
        stopReason = args[0];
        break;
      case "mcp":
        await say(JSON.stringify(session.mcpServers));
        break;
      case "history":
        await say(`history: ${session.history.map((h) => `${h.role}=${h.text}`).join(" | ")}`);
        break;
      case "pid":
        await say(`pid ${process.pid}`);
        break;
      case "env":
        await say(`${args[0]}=${process.env[args[0]] ?? ""}`);
        break;
      case "die":
        await say("about to die");
        console.error("test agent: dying on purpose");
        process.exit(7);
        break;
      case "auth":
        // Refuses the prompt as an agent that wants a login does; the process lives on.
        throw acp.RequestError.authRequired(undefined, "log in first");
      case "late":
        await say("early");
        // After the reply to session/prompt: the client must still take this in.
        setTimeout(() => update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: " late" } }), 50);
        break;
      case "retrying": {
        // What mistral-vibe sends while its model server is unreachable.
        for (let i = 0; i < 3; i++) {
          await client.notify("_session/retrying", { sessionId, category: "connection", detail: "ConnectError" });
        }
        await say("answered at last");
        break;
      }
      case "ext": {
        await client.notify("_openclaw/ext_notice", { hello: true });
        let seen;
        try {
          await client.request("_openclaw/ext_request", {});
          seen = "answered";
        } catch (e) {
          seen = errorText(e);
        }
        let term;
        try {
          await client.request("terminal/create", { sessionId, command: "true" });
          term = "answered";
        } catch (e) {
          term = errorText(e);
        }
        await say(`ext: ${seen}; terminal: ${term}`);
        break;
      }
      default:
        await say("echo: ");
        await say(text);
    }
  } finally {
    running.delete(sessionId);
  }
  session.history.push({ role: "user", text }, { role: "agent", text: reply });
  saveStore(sessions);
  return { stopReason };
}

const app = acp
  .agent({ name: "openclaw-acp-test-agent" })
  .onRequest("initialize", () => ({
    protocolVersion: acp.PROTOCOL_VERSION,
    agentCapabilities: { loadSession: !NO_LOAD },
    authMethods: [],
    agentInfo: { name: "openclaw-acp-test-agent", version: "0.0.0" },
  }))
  .onRequest("session/new", async ({ params, client }) => {
    const sessionId = `test-${process.pid}-${Object.keys(sessions).length + 1}-${Date.now()}`;
    sessions[sessionId] = { cwd: params.cwd, mcpServers: params.mcpServers, history: [] };
    saveStore(sessions);
    // Before the result, like mistral-vibe: the client must accept it.
    await client.notify("session/update", {
      sessionId,
      update: { sessionUpdate: "usage_update", used: 0, size: 200000 },
    });
    return { sessionId };
  })
  .onRequest("session/load", async ({ params, client }) => {
    Object.assign(sessions, { ...loadStore(), ...sessions });
    const session = sessions[params.sessionId];
    if (!session) throw acp.RequestError.sessionNotFound(params.sessionId);
    session.mcpServers = params.mcpServers;
    for (const h of session.history) {
      await client.notify("session/update", {
        sessionId: params.sessionId,
        update: {
          sessionUpdate: h.role === "user" ? "user_message_chunk" : "agent_message_chunk",
          content: { type: "text", text: h.text },
        },
      });
    }
    saveStore(sessions);
    return {};
  })
  .onRequest("session/prompt", handlePrompt)
  .onNotification("session/cancel", ({ params }) => {
    running.get(params.sessionId)?.abort();
  });

const stream = acp.ndJsonStream(Writable.toWeb(process.stdout), Readable.toWeb(process.stdin));
const connection = app.connect(stream);
connection.closed.then(() => {
  if (!IGNORE_TERM) process.exit(0);
});
