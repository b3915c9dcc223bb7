import { mkdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { claimOutput, etagSidecar, type Claim, type ClaimOptions } from "../src/claim.js";
import { FileError } from "../src/errors.js";
import { writeManifest, type Manifest } from "../src/manifest.js";
import { FakeClock } from "./support/fake-clock.js";
import { tempDir } from "./support/temp.js";

/** The clock the files' renames (and a lock's wait) sleep on: none of them waits here. */
const clock = new FakeClock();

const URL = "http://127.0.0.1:8080/file.bin";

function manifest(extra: Partial<Manifest> = {}): Manifest {
  return { version: 1, url: URL, finalUrl: URL, size: 1000, etag: '"v1"', lastModified: null, done: [[0, 499]], ...extra };
}

/** Claims `path`, releasing the lock after the test body has looked at the claim. */
async function claim(path: string, extra: Partial<ClaimOptions> = {}): Promise<Claim & { warnings: string[] }> {
  const warnings: string[] = [];
  const claimed = await claimOutput(path, { url: URL, force: false, ifChanged: false, warn: (message) => warnings.push(message), clock, ...extra });
  await claimed.lock.release();
  return { ...claimed, warnings };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe("claimOutput", () => {
  it("claims a new output with nothing to resume, creating its directory", async () => {
    const path = join(await tempDir(), "new", "dir", "file.bin");
    const claimed = await claim(path);
    expect(claimed).toMatchObject({ kind: "claimed", partial: undefined, conditional: undefined });
    expect(await exists(join(path, ".."))).toBe(true);
  });

  it("refuses an output another live process is downloading, until its lock is released", async () => {
    const path = join(await tempDir(), "file.bin");
    const held = await claimOutput(path, { url: URL, force: false, ifChanged: false, warn: () => {}, clock });
    const error = await claimOutput(path, { url: URL, force: true, ifChanged: false, warn: () => {}, clock }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileError);
    expect((error as FileError).code).toBe("ERR_LOCKED");
    await held.lock.release();
    expect((await claim(path)).kind).toBe("claimed");
  });

  it("refuses to clobber an existing output, and lets go of the lock", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, "someone's file");
    const error = await claim(path).catch((caught: unknown) => caught);
    expect((error as FileError).code).toBe("ERR_EXISTS");
    expect((error as FileError).exitCode).toBe(6);
    expect(await readFile(path, "utf8")).toBe("someone's file");
    expect(await exists(`${path}.part.lock`)).toBe(false);
  });

  it("says a directory that is a file is not a directory (-d afile), naming it", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "afile"), "");
    for (const path of [join(dir, "afile", "file.bin"), join(dir, "afile", "sub", "file.bin")]) {
      const error = await claim(path).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(FileError);
      expect(error).toMatchObject({ code: "ERR_FILE", exitCode: 6, message: expect.stringMatching(new RegExp(`^${join(dir, "afile")} is not a directory`)) });
      expect((error as FileError).message).not.toMatch(/EEXIST|ENOTDIR|mkdir/);
    }
  });

  it("with continue, says nothing of the adopted bytes before the server's answer allows them", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, "partial");
    const claimed = await claim(path, { continue: true });
    expect(claimed).toMatchObject({ kind: "claimed", adopted: 7 });
    expect(claimed.warnings).toEqual([]);
  });

  it("a partial of another URL (another port): the warning names it and says how it would resume", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeManifest(`${path}.part.json`, manifest({ url: "http://127.0.0.1:8081/file.bin" }), clock);
    await writeFile(`${path}.part`, Buffer.alloc(1000));
    const claimed = await claim(path);
    expect(claimed.warnings).toEqual([
      expect.stringContaining("it belongs to another URL (http://127.0.0.1:8081/file.bin), and a partial download resumes only from its own (give that URL, with this one as a mirror); starting over"),
    ]);
  });

  it("refuses an output that is a directory", async () => {
    const path = join(await tempDir(), "file.bin");
    await mkdir(path);
    const error = await claim(path, { force: true }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileError);
    expect((error as FileError).message).toContain("is a directory");
  });

  it("with force, claims an existing output and throws away the partial state", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, "old");
    await writeFile(`${path}.part`, Buffer.alloc(1000));
    await writeManifest(`${path}.part.json`, manifest(), clock);
    const claimed = await claim(path, { force: true });
    expect(claimed).toMatchObject({ kind: "claimed", partial: undefined, conditional: undefined });
    expect(await exists(`${path}.part`)).toBe(false);
    expect(await exists(`${path}.part.json`)).toBe(false);
  });

  it("with ifChanged, asks with the sidecar's ETag and the output's mtime", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, "the old copy");
    const modified = new Date("2024-03-04T05:06:07Z");
    await utimes(path, modified, modified);
    await writeFile(etagSidecar(path), '"v1"\n');
    const claimed = await claim(path, { ifChanged: true });
    expect(claimed).toMatchObject({
      kind: "claimed",
      conditional: { ifNoneMatch: '"v1"', ifModifiedSince: "Mon, 04 Mar 2024 05:06:07 GMT" },
    });
  });

  it("with ifChanged and no sidecar, asks with the mtime alone", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, "the old copy");
    const claimed = await claim(path, { ifChanged: true });
    expect(claimed.kind === "claimed" && claimed.conditional).toEqual({ ifModifiedSince: (await stat(path)).mtime.toUTCString() });
  });

  it("trusts the manifest of an earlier run and hands back the bytes it holds", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, Buffer.alloc(1000));
    await writeManifest(`${path}.part.json`, manifest({ done: [[0, 99], [500, 599]] }), clock);
    const claimed = await claim(path);
    expect(claimed.kind).toBe("claimed");
    if (claimed.kind !== "claimed") return;
    expect(claimed.partial?.manifest).toEqual(manifest({ done: [[0, 99], [500, 599]] }));
    expect(claimed.partial?.done.toArray()).toEqual([
      [0, 99],
      [500, 599],
    ]);
    expect(claimed.warnings).toEqual([]);
  });

  it.each<[string, string]>([
    ["a torn manifest", JSON.stringify(manifest()).slice(0, 30)],
    ["another URL's manifest", JSON.stringify(manifest({ url: "http://127.0.0.1:8080/other.bin" }))],
    ["a manifest claiming bytes past the end", JSON.stringify(manifest({ done: [[0, 1000]] }))],
  ])("discards %s with a warning, and the .part with it: never guess", async (_name, text) => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, Buffer.alloc(1000));
    await writeFile(`${path}.part.json`, text);
    const claimed = await claim(path);
    expect(claimed).toMatchObject({ kind: "claimed", partial: undefined });
    expect(claimed.warnings).toEqual([expect.stringMatching(/^ignoring .*file\.bin\.part\.json: .+; starting over$/)]);
    expect(await exists(`${path}.part`)).toBe(false);
    expect(await exists(`${path}.part.json`)).toBe(false);
  });

  it("recognises a run that finished but died before removing its manifest, and tidies up", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, Buffer.alloc(1000, 7));
    await writeManifest(`${path}.part.json`, manifest({ done: [[0, 999]] }), clock);
    const claimed = await claim(path);
    expect(claimed).toMatchObject({ kind: "finished-earlier", size: 1000 });
    expect(await exists(`${path}.part.json`)).toBe(false);
    expect(await readFile(path)).toEqual(Buffer.alloc(1000, 7));
  });

  it.each<[string, Partial<Manifest>, boolean, number]>([
    ["its manifest has gaps", { done: [[0, 998]] }, false, 1000],
    ["the .part is still there", { done: [[0, 999]] }, true, 1000],
    ["the output has another length", { done: [[0, 999]] }, false, 999],
  ])("does not take an output for finished when %s", async (_name, changes, withPart, outputLength) => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, Buffer.alloc(outputLength));
    if (withPart) await writeFile(`${path}.part`, Buffer.alloc(1000));
    await writeManifest(`${path}.part.json`, manifest(changes), clock);
    const claimed = await claim(path);
    expect(claimed.kind).toBe("claimed");
    expect(await exists(`${path}.part.json`)).toBe(true);
  });
});
