#!/usr/bin/env node
import module from "node:module";
import { setFlagsFromString } from "node:v8";

// Every connection keeps a write in flight, and the checkpoint fsyncs: libuv's default
// pool of 4 threads would queue writes behind an fsync. Set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= "16";
// undici parses HTTP with llhttp in WebAssembly; optimising it in the background costs
// ~35 MB of peak memory and buys nothing for a body-heavy download.
setFlagsFromString("--liftoff-only");
// Node 22.1+ can cache compiled code between runs (about 30 ms of a 0.2 s start on
// Node 24); older Nodes have no such API and start as before.
module.enableCompileCache?.();
// The bundle (scripts/bundle-cli.mjs): one file to load instead of a hundred modules.
const { main } = await import("../dist/bin/rangeget.js");
process.exitCode = await main(process.argv.slice(2));
