// Replays frames a real agent wrote (one JSON-RPC message per line, in order): for each
// request the client sends, it writes the recorded frames up to and including the response
// with that request's id. Needs no packages.
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";

const frames = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.trim());
let next = 0;
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    return;
  }
  if (message.method === undefined || message.id === undefined) return;
  while (next < frames.length) {
    const frame = frames[next++];
    process.stdout.write(`${frame}\n`);
    const parsed = JSON.parse(frame);
    if (parsed.method === undefined && parsed.id === message.id) break;
  }
});
input.on("close", () => process.exit(0));
