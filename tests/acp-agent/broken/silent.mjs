// A broken ACP agent: it reads requests and never answers, ignoring SIGTERM and stdin EOF,
// so only a deadline and SIGKILL get rid of it.
import { writeFileSync } from "node:fs";

process.on("SIGTERM", () => console.error("silent: ignoring SIGTERM"));
process.stdin.on("data", () => {});
process.stdin.on("end", () => console.error("silent: stdin closed, staying"));
setInterval(() => {}, 1 << 30);
// Where a test can see it is up: its pid in its working directory.
writeFileSync("silent.pid", `${process.pid}\n`);
console.error(`silent: up (pid ${process.pid})`);
