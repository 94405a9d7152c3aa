// A broken ACP agent: it answers initialize with a banner instead of JSON-RPC.
import { createInterface } from "node:readline";

console.error("garbage: starting up");
createInterface({ input: process.stdin }).once("line", () => {
  process.stdout.write("Welcome to BrokenAgent 1.0! Type /help for help.\n");
});
