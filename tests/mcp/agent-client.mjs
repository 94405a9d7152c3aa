// An `exec` agent's own MCP client: it reads the file $OPENCLAW_MCP_CONFIG points to, starts
// the `openclaw` server it names the way agent CLIs do (the SDK's default environment plus
// the server's `env`), and uses the session tools as its run. The message on stdin is the
// key of a session outside its tree. Prints one JSON object: its reply (tests/mcp.rs).
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  StdioClientTransport,
  getDefaultEnvironment,
} from "@modelcontextprotocol/sdk/client/stdio.js";

const outsider = readFileSync(0, "utf8").trim();
const path = process.env.OPENCLAW_MCP_CONFIG;
const mode = statSync(path).mode & 0o777;
const server = JSON.parse(readFileSync(path, "utf8")).mcpServers.openclaw;

const transport = new StdioClientTransport({
  command: server.command,
  args: server.args,
  env: { ...getDefaultEnvironment(), ...server.env },
  stderr: "inherit",
});
const client = new Client({ name: "openclaw-test-agent", version: "0.0.0" });
await client.connect(transport);

const spawned = await client.callTool({
  name: "sessions_spawn",
  arguments: { task: "child of the exec agent", agentId: "helper" },
});
const outside = await client.callTool({
  name: "sessions_history",
  arguments: { sessionKey: outsider },
});
await client.close();

// The same read over the CLI, acting as the same run (its token is in this environment).
const cli = spawnSync(server.command, ["sessions", "history", outsider], { encoding: "utf8" });

console.log(
  JSON.stringify({
    path,
    mode,
    spawned: spawned.structuredContent,
    outside: { isError: outside.isError, error: outside.structuredContent?.error },
    cli: { status: cli.status, stderr: cli.stderr },
  }),
);
