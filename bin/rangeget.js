#!/usr/bin/env node
// Every connection keeps a write in flight, and the checkpoint fsyncs: libuv's default
// pool of 4 threads would queue writes behind an fsync. Set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= "16";
const { main } = await import("../dist/cli/main.js");
process.exitCode = await main(process.argv.slice(2));
