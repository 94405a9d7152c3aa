// Drives `openclaw mcp` with the official TypeScript SDK's client, as an editor or agent
// would, and prints one JSON line per step for the Rust test to check (tests/mcp.rs).
//
//   node client.mjs OPENCLAW_BIN TICKER_AGENT TALKER_AGENT
//
// The environment (OPENCLAW_HOME, OPENCLAW_NO_AUTOSTART) is passed on to `openclaw mcp`.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createInterface } from "node:readline";

const [openclaw, ticker, talker] = process.argv.slice(2);
const out = (step, value) => console.log(JSON.stringify({ step, ...value }));
const input = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => input.once("line", resolve));

const transport = new StdioClientTransport({
  command: openclaw,
  args: ["mcp"],
  env: { ...process.env },
  stderr: "inherit",
});
const client = new Client({ name: "openclaw-test-client", version: "0.0.0" });
await client.connect(transport);
out("initialized", { server: client.getServerVersion() });

const { tools } = await client.listTools();
out("tools", { tools });

const spawned = await client.callTool({
  name: "sessions_spawn",
  arguments: { task: "hello from an MCP client", notAField: 1 },
});
out("spawn", { result: spawned });
const { sessionKey, runId } = spawned.structuredContent;

const waited = await client.callTool({
  name: "sessions_wait",
  arguments: { runId, timeoutSeconds: 30 },
});
out("wait", { result: waited });

const history = await client.callTool({ name: "sessions_history", arguments: { sessionKey } });
out("history", { result: history });

const missing = await client.callTool({
  name: "sessions_history",
  arguments: { sessionKey: "agent:main:subagent:no-such-session" },
});
out("missing", { result: missing });

try {
  await client.callTool({ name: "sessions_frobnicate", arguments: {} });
  out("unknown", { threw: false });
} catch (e) {
  out("unknown", { threw: true, code: e.code, message: e.message });
}

// A send that waits for the reply, its run's output reported as progress.
const talking = await client.callTool({
  name: "sessions_spawn",
  arguments: { task: "first", agentId: talker, mode: "session" },
});
await client.callTool({
  name: "sessions_wait",
  arguments: { runId: talking.structuredContent.runId, timeoutSeconds: 30 },
});
const told = [];
const sent = await client.callTool(
  {
    name: "sessions_send",
    arguments: { sessionKey: talking.structuredContent.sessionKey, message: "again" },
  },
  undefined,
  { onprogress: (p) => told.push(p) },
);
out("send", { result: sent, progress: told });

// A wait on a run that goes on: cancelled by the client once the run's progress shows.
const slow = await client.callTool({
  name: "sessions_spawn",
  arguments: { task: "tick", agentId: ticker },
});
const slowRun = slow.structuredContent.runId;
out("slow", { result: slow });
const abort = new AbortController();
const progress = [];
const waiting = client.callTool(
  { name: "sessions_wait", arguments: { runId: slowRun, timeoutSeconds: 120 } },
  undefined,
  {
    signal: abort.signal,
    timeout: 180000,
    onprogress: (p) => {
      progress.push(p);
      if (progress.length === 1) {
        out("progress", { progress: p });
        abort.abort("the test cancels the wait");
      }
    },
  },
);
// The test looks at the daemon, then says to go on.
const goOn = nextLine();
try {
  const r = await waiting;
  out("cancelled", { resolved: true, result: r });
} catch (e) {
  out("cancelled", { resolved: false, name: e.name, message: String(e.message ?? e) });
}
await goOn;

// Still serving after all of that.
const listed = await client.callTool({ name: "sessions_list", arguments: {} });
out("list", { result: listed });
await client.close();
out("closed", {});
input.close();
