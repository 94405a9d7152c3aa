// A broken ACP agent: it reads requests and never answers, ignoring SIGTERM and stdin EOF,
// so only a deadline and SIGKILL get rid of it.
process.on("SIGTERM", () => console.error("silent: ignoring SIGTERM"));
process.stdin.on("data", () => {});
process.stdin.on("end", () => console.error("silent: stdin closed, staying"));
setInterval(() => {}, 1 << 30);
console.error(`silent: up (pid ${process.pid})`);
