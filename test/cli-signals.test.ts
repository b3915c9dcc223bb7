// End to end, the built CLI in a child process: what a signal and a failure leave
// behind and say (sections 10 and 11 of cli.test.ts, split so the two run side by side).
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { checkpointedBytes } from "./support/checkpoint.js";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, jsonLines, lines, runCli, runCliWhile, type CliOptions, type CliRun, type RunningCli } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { tarArchive } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;

let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
});

/** The CLI in the test's work directory (empty stdin, 20 s); `whileRunning` gets the running child, to signal it. */
function rangeget(args: string[], options: Partial<CliOptions> & { whileRunning?: (running: RunningCli) => Promise<void> } = {}): Promise<CliRun> {
  const { whileRunning, ...rest } = options;
  const cliOptions = { cwd: workDir, stdin: "", timeoutMs: 20_000, ...rest };
  return whileRunning === undefined ? runCli(args, cliOptions) : runCliWhile(args, cliOptions, whileRunning);
}

// The state-saving signals reach a download the server holds mid-answer (holdAfterBytes),
// after a checkpoint with bytes: it cannot have finished before them, however fast or
// loaded the machine. The two "nothing was saved" cases keep a throttle: their message
// depends on the stream having begun in the client, which a burst up to a hold does not
// promise when the server has sent it.
describe("10. SIGINT and SIGTERM", () => {
  async function interruptedRun(signal: NodeJS.Signals, times = 1) {
    const content = makeContent(4 * MiB, 22);
    const source = await rangeServer({ content, holdAfterBytes: 256 * KiB });
    const output = join(workDir, "big.bin");
    const run = await rangeget(["-c", "4", "--min-split", "256K", "-o", output, source.url()], {
      whileRunning: async ({ child }) => {
        await until(async () => (await checkpointedBytes(output)) > 0 && source.bytesServed() > 512 * KiB, "a checkpoint with bytes");
        for (let i = 0; i < times; i++) child.kill(signal);
      },
    });
    return { run, source, content, output };
  }

  it("SIGINT saves state, says how to resume, exits 130; the same command resumes", async () => {
    const { run, source, content, output } = await interruptedRun("SIGINT");
    expect(run.code).toBe(130);
    expect(run.stderr).toContain("rangeget: interrupted: state saved; run the same command again to resume\n");
    expect(existsSync(output)).toBe(false);
    expect(existsSync(`${output}.part.json`)).toBe(true);

    source.release();
    const servedBefore = source.bytesServed();
    const again = await rangeget(["-q", "--json", "-c", "4", "--min-split", "256K", "-o", output, source.url()]);
    expect(again.code).toBe(0);
    expect(jsonLines(again)[0]).toMatchObject({ status: "resumed", resumed: true });
    expect(source.bytesServed() - servedBefore).toBeLessThan(content.length);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("SIGTERM exits 143 with state saved", async () => {
    const { run, output } = await interruptedRun("SIGTERM");
    expect(run.code).toBe(143);
    expect(run.stderr).toContain("interrupted: state saved");
    expect(existsSync(`${output}.part.json`)).toBe(true);
  });

  it("a server without ranges interrupted says nothing was saved, not \"state saved\"", async () => {
    const content = makeContent(4 * MiB, 221);
    const source = await rangeServer({ content, bytesPerSecond: 256 * KiB, acceptRanges: false });
    const output = join(workDir, "plain.bin");
    const run = await rangeget(["-o", output, source.url()], {
      whileRunning: async ({ child }) => {
        await until(() => source.bytesServed() > 256 * KiB, "bytes of the plain stream");
        child.kill("SIGINT");
      },
    });
    expect(run.code).toBe(130);
    expect(run.stderr).not.toContain("state saved");
    expect(run.stderr).toContain("rangeget: interrupted; nothing was saved (this server does not serve ranges): run again to start over\n");
    expect(existsSync(`${output}.part.json`) || existsSync(`${output}.part`)).toBe(false);
  });

  it("--extract interrupted says nothing was saved", async () => {
    const archive = tarArchive([{ path: "big.bin", body: makeContent(4 * MiB, 222) }]);
    const source = await rangeServer({ content: archive, bytesPerSecond: 256 * KiB });
    const run = await rangeget(["-c", "2", "--min-split", "256K", "--extract", join(workDir, "out"), source.url("/a.tar")], {
      whileRunning: async ({ child }) => {
        await until(() => source.bytesServed() > 256 * KiB, "bytes of the archive");
        child.kill("SIGINT");
      },
    });
    expect(run.code).toBe(130);
    expect(run.stderr).not.toContain("state saved");
    expect(run.stderr).toContain("rangeget: interrupted; nothing was saved (an archive unpacked while it arrives cannot be resumed): run again to start over\n");
  });

  it("a restart after a remote change, interrupted, says what is left: state only where a manifest is", async () => {
    const first = makeContent(4 * MiB, 223);
    const source = await rangeServer({ content: first, bytesPerSecond: 256 * KiB });
    const output = join(workDir, "changing.bin");
    const args = ["-c", "2", "--min-split", "256K", "-o", output, source.url()];
    const interruptAfter = (bytes: number) => async ({ child }: RunningCli) => {
      const served = source.bytesServed();
      await until(() => existsSync(`${output}.part.json`) || source.bytesServed() - served > bytes, "some bytes");
      await until(() => source.bytesServed() - served > bytes, "more bytes");
      child.kill("SIGINT");
    };
    expect((await rangeget(args, { whileRunning: interruptAfter(512 * KiB) })).code).toBe(130);
    expect(existsSync(`${output}.part.json`)).toBe(true);
    source.setContent(makeContent(4 * MiB, 224));
    const run = await rangeget(args, { whileRunning: interruptAfter(1 * MiB) });
    expect(run.code).toBe(130);
    expect(run.stderr).toContain("changed on the server");
    // The restart keeps state only if it checkpoints; whatever it did, the message says what is on disk.
    if (existsSync(`${output}.part.json`)) {
      expect(run.stderr).toContain("rangeget: interrupted: state saved; run the same command again to resume\n");
    } else {
      expect(run.stderr).not.toContain("state saved");
      expect(run.stderr).toMatch(/rangeget: interrupted; nothing was saved \(.+\): run again to start over\n/);
    }
  });

  it("a second Ctrl-C exits 130 at once", async () => {
    const { run, output } = await interruptedRun("SIGINT", 2);
    expect(run.code).toBe(130);
    expect(existsSync(output)).toBe(false);
  });
});

describe("11. errors are one line", () => {
  it("an HTTP error shows the reason phrase, not the server's HTML page; S3's XML <Message> is quoted", async () => {
    const page = '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">\n<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n';
    const source = await rangeServer({
      content: makeContent(1000, 231),
      onRequest: (request) =>
        request.path === "/page.bin"
          ? { status: 404, text: page, headers: { "content-type": "text/html" } }
          : { status: 403, text: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>', headers: { "content-type": "application/xml" } },
    });
    const run = await rangeget(["-q", source.url("/page.bin")]);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([`rangeget: HTTP 404 from ${source.url("/page.bin")} (Not Found): check the URL`]);
    const s3 = await rangeget(["-q", source.url("/signed.bin")]);
    expect(s3.code).toBe(3);
    expect(lines(s3.stderr)).toEqual([expect.stringContaining(`HTTP 403 from ${source.url("/signed.bin")} (Forbidden: AccessDenied: Request has expired): check the credentials`)]);
  });

  it("an HTTP error names the status and URL on one line, exit 3, no stack", async () => {
    const source = await rangeServer({ content: makeContent(1000, 23), onRequest: () => ({ status: 404 }) });
    const run = await rangeget(["-q", source.url("/gone.bin")]);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: .*404.*\/gone\.bin/)]);
  });

  it("a network error exits 4", async () => {
    const closed = await rangeServer({ content: Buffer.alloc(0) });
    const url = closed.url("/x.bin");
    // Closed here so nothing listens on its port; servers.ts closing it again after the test is harmless.
    await closed.close();
    const run = await rangeget(["-q", "--retries", "1", "--timeout", "2", url]);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toHaveLength(1);
  });

  it("DEBUG=rangeget adds the stack trace", async () => {
    const run = await rangeget(["-c", "0", "http://127.0.0.1:9/"], { env: { DEBUG: "rangeget" } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^rangeget: -c\/--connections/);
    expect(run.stderr).toMatch(/\n {4}at /);
  });
});
