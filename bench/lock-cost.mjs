#!/usr/bin/env node
// What one acquire + release of the lock costs (src/lock.ts), by how it is made: a hard
// link to the process's owner file (where the volume has hard links) or an exclusive
// create with the owner written inside (the fallback: exFAT, FAT32). Run after
// `npm run build`; bench/volumes.sh runs it on every volume at hand.
//
//   node bench/lock-cost.mjs [dir...]   (default: tmpfs and the host disk under /tmp,
//                                        plus the volumes of .cache/test-volumes.env)
//   LOCKS=2000                          acquire + release pairs per row
//
// Each row is timed twice: "alone" (one lock at a time in the directory, as for a single
// download: the link path also writes and removes its owner file each time) and "in a
// list" (another lock held in the same directory all along, as while a list runs with
// -j > 1: the owner file stays). Microseconds per pair, median of 5 batches. The link
// path is forced onto the fallback by a link(2) that fails as exFAT's does (EPERM); on a
// volume without hard links both rows are the fallback.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { systemClock } from "../dist/clock.js";
import { acquireLock } from "../dist/lock.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const locks = Number(process.env.LOCKS ?? 2000);

function directories() {
  if (process.argv.length > 2) return process.argv.slice(2).map((dir) => ({ name: dir, dir }));
  const list = [
    { name: "tmpfs", dir: "/dev/shm" },
    { name: "host disk", dir: tmpdir() },
  ];
  const file = process.env.RANGEGET_VOLUMES_FILE ?? join(root, ".cache/test-volumes.env");
  const mounted = existsSync(file) ? readFileSync(file, "utf8") : "";
  for (const [variable, name] of [
    ["RANGEGET_TEST_EXFAT", "exFAT (FUSE)"],
    ["RANGEGET_TEST_NTFS", "NTFS (ntfs-3g)"],
    ["RANGEGET_TEST_XFS", "XFS (loop)"],
    ["RANGEGET_TEST_BTRFS", "btrfs (loop)"],
  ]) {
    const point = new RegExp(`^${variable}=(.+)$`, "m").exec(mounted)?.[1];
    if (point !== undefined && existsSync(point)) list.push({ name, dir: point });
  }
  return list;
}

const noHardLinks = async () => {
  throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
};

/** Microseconds per acquire + release for one batch of `locks` in `dir`. */
async function batch(dir, environment) {
  const began = process.hrtime.bigint();
  for (let i = 0; i < locks; i++) {
    const lock = await acquireLock(join(dir, `f${i % 16}.part.lock`), join(dir, `f${i % 16}`), environment);
    await lock.release();
  }
  return Number(process.hrtime.bigint() - began) / 1000 / locks;
}

const MODES = [
  { environment: { clock: systemClock }, beside: false },
  { environment: { clock: systemClock }, beside: true },
  { environment: { clock: systemClock, link: noHardLinks }, beside: false },
  { environment: { clock: systemClock, link: noHardLinks }, beside: true },
];

console.log(`Lock acquire + release, µs per pair (median of 5 × ${locks}), Node ${process.versions.node}, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC\n`);
console.log("| volume | hard link, alone | hard link, in a list | exclusive create, alone | exclusive create, in a list |");
console.log("| --- | --- | --- | --- | --- |");
for (const { name, dir } of directories()) {
  mkdirSync(dir, { recursive: true });
  // A fresh directory per mode: lock.ts remembers, per directory, that links failed there.
  const works = [];
  try {
    for (const mode of MODES) {
      const work = mkdtempSync(join(dir, "lock-cost-"));
      works.push(work);
      mode.held = mode.beside ? await acquireLock(join(work, "held.part.lock"), join(work, "held"), mode.environment) : undefined;
      mode.batches = [];
    }
    // The modes take turns, batch by batch, so a noisy moment of the machine hits them alike.
    for (let round = 0; round < 5; round++) {
      for (const [index, mode] of MODES.entries()) mode.batches.push(await batch(works[index], mode.environment));
    }
    for (const mode of MODES) await mode.held?.release();
  } finally {
    for (const work of works) rmSync(work, { recursive: true, force: true });
  }
  console.log(`| ${name} | ${MODES.map((mode) => mode.batches.sort((a, b) => a - b)[2].toFixed(0)).join(" | ")} |`);
}
