// A broken ACP agent: it dies before reading anything, saying why on stderr.
console.error("exit-at-once: cannot start: no configuration found");
process.exit(2);
