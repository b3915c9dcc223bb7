// End to end: netrc, cookies, -U, config defaults, --shard, completion and the terminal,
// against servers on 127.0.0.1. The CLI's `main` runs in this process (run-main.ts) with
// HOME as its home directory; completion and the terminal run the built
// `bin/rangeget.js` as a child (see each test for why). A redirect to `localhost` reaches
// the same loopback address under another host name: another host for a netrc or a
// cookie, another origin for -H.
import { spawnSync } from "node:child_process";
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { VERSION } from "../src/version.js";
import { makeContent } from "./support/content.js";
import type { RangeServer, RangeServerOptions } from "./support/range-server.js";
import { assertBuilt, BIN, cliEnv, lines, runCli, type CliRun } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { runOnPty } from "./support/pty.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString("base64")}`;

let home: string;
let work: string;

/** A range server of 256 KiB unless told otherwise, closed after the test. */
function server(options: Partial<RangeServerOptions> = {}): Promise<RangeServer> {
  return rangeServer({ content: makeContent(256 * KiB, 41), ...options });
}

/** HOME (so ~/.netrc and ~/.config) in a temp directory and no RANGEGET_* from the caller. */
function testEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const clean = Object.fromEntries(Object.keys(process.env).filter((name) => name.startsWith("RANGEGET_")).map((name) => [name, undefined]));
  return { ...clean, HOME: home, XDG_CONFIG_HOME: undefined, ...env };
}

/** The CLI's main in this process, in `work`, with testEnv's environment and HOME as its home directory. */
function rangeget(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return runMain(args, { cwd: work, env: testEnv(env) });
}

async function writeNetrc(text: string, mode = 0o600): Promise<string> {
  const path = join(home, ".netrc");
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

beforeAll(assertBuilt);

beforeEach(async () => {
  home = await tempDir();
  work = await tempDir();
});

describe("netrc", () => {
  it("logs in with ~/.netrc, as Basic auth to the host it names, on every request", async () => {
    const source = await server({ onRequest: (request) => (request.headers.authorization === basic("alice", "s3cret") ? undefined : { status: 401 }) });
    await writeNetrc("machine 127.0.0.1\n  login alice\n  password s3cret\n");
    const run = await rangeget(["-c", "4", "--min-split", "32K", "-o", "a.bin", source.url("/a.bin")]);
    expect(run.stderr).not.toContain("s3cret");
    expect(run.code).toBe(0);
    expect(source.requests.length).toBeGreaterThan(1);
    expect(await readFile(join(work, "a.bin"))).toEqual(source.content);
  });

  it("never sends a host's login to another host a redirect leads to", async () => {
    const target = await server();
    const origin = await server({ onRequest: () => ({ redirectTo: target.url("/a.bin").replace("127.0.0.1", "localhost") }) });
    await writeNetrc("machine 127.0.0.1 login alice password s3cret\n");
    const run = await rangeget(["-q", "-o", "a.bin", origin.url("/a.bin")]);
    expect(run.code).toBe(0);
    expect(origin.requests[0]?.headers.authorization).toBe(basic("alice", "s3cret"));
    expect(target.requests.length).toBeGreaterThan(0);
    for (const request of target.requests) expect(request.headers.authorization).toBeUndefined();
  });

  it("sends the other host its own login when the netrc names it too", async () => {
    const target = await server();
    const origin = await server({ onRequest: () => ({ redirectTo: target.url("/a.bin").replace("127.0.0.1", "localhost") }) });
    await writeNetrc('machine 127.0.0.1 login alice password s3cret\nmachine localhost login bob password "other secret"\n');
    const run = await rangeget(["-q", "-o", "a.bin", origin.url("/a.bin")]);
    expect(run.code).toBe(0);
    for (const request of target.requests) expect(request.headers.authorization).toBe(basic("bob", "other secret"));
  });

  it("gives way to an Authorization header from -H; --no-netrc and another --netrc-file skip ~/.netrc", async () => {
    const source = await server();
    await writeNetrc("machine 127.0.0.1 login alice password s3cret\n");
    expect((await rangeget(["-q", "-H", "Authorization: Bearer token", "-o", "h.bin", source.url()])).code).toBe(0);
    expect(source.requests.at(-1)?.headers.authorization).toBe("Bearer token");
    expect((await rangeget(["-q", "--no-netrc", "-o", "n.bin", source.url()])).code).toBe(0);
    expect(source.requests.at(-1)?.headers.authorization).toBeUndefined();
    const other = join(home, "work.netrc");
    await writeFile(other, "default login carol password c4rol\n", { mode: 0o600 });
    expect((await rangeget(["-q", "--netrc-file", other, "-o", "w.bin", source.url()])).code).toBe(0);
    expect(source.requests.at(-1)?.headers.authorization).toBe(basic("carol", "c4rol"));
  });

  it("warns about a netrc others can read and still uses it; a refused login never shows the password", async () => {
    const source = await server({ onRequest: () => ({ status: 401 }) });
    const path = await writeNetrc("machine 127.0.0.1 login alice password s3cret\n", 0o644);
    const run = await rangeget(["-o", "a.bin", source.url()]);
    expect(run.code).toBe(3);
    expect(source.requests[0]?.headers.authorization).toBe(basic("alice", "s3cret"));
    expect(lines(run.stderr)[0]).toBe(`rangeget: warning: netrc ${path} is open to other users (mode 0644); run chmod 600 ${path}`);
    expect(run.stderr).not.toContain("s3cret");
    expect(run.stderr).not.toContain(basic("alice", "s3cret").slice(6));
  });

  it("refuses a missing --netrc-file with exit 2", async () => {
    const run = await rangeget(["--netrc-file", join(home, "nope"), "http://127.0.0.1:9/x"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`rangeget: cannot read netrc file ${join(home, "nope")}: no such file (see rangeget --help)\n`);
  });
});

describe("--load-cookies", () => {
  const FUTURE = Math.floor(Date.now() / 1000) + 86_400;

  it("sends only the cookies whose domain, path, secure flag and expiry allow", async () => {
    const source = await server();
    const cookies = join(home, "cookies.txt");
    await writeFile(
      cookies,
      [
        "# Netscape HTTP Cookie File",
        `127.0.0.1\tFALSE\t/files\tFALSE\t${FUTURE}\tsid\tabc`,
        `#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\ttoken\txyz`,
        `127.0.0.1\tFALSE\t/other\tFALSE\t${FUTURE}\twrongpath\t1`,
        `127.0.0.1\tFALSE\t/\tTRUE\t${FUTURE}\tsecureonly\t1`,
        `127.0.0.1\tFALSE\t/\tFALSE\t1000000000\texpired\t1`,
        `localhost\tFALSE\t/\tFALSE\t${FUTURE}\totherhost\t1`,
      ].join("\n"),
    );
    const run = await rangeget(["-c", "4", "--min-split", "32K", "--load-cookies", cookies, "-o", "a.bin", source.url("/files/a.bin")]);
    expect(run.code).toBe(0);
    for (const request of source.requests) expect(request.headers.cookie).toBe("sid=abc; token=xyz");
    expect(run.stderr).not.toContain("abc");
  });

  it("keeps a cookie set during a sign-in redirect and sends it on every later request", async () => {
    const content = makeContent(512 * KiB, 42);
    const source = await server({
      content,
      onRequest: (request) => {
        if (request.path === "/signin") return { redirectTo: "/files/a.bin", headers: { "set-cookie": "session=fresh; Path=/; HttpOnly" } };
        return request.headers.cookie === "session=fresh" ? undefined : { status: 403 };
      },
    });
    const empty = join(home, "empty-cookies.txt");
    await writeFile(empty, "# Netscape HTTP Cookie File\n");
    const run = await rangeget(["-q", "-c", "4", "--min-split", "64K", "--load-cookies", empty, "-o", "a.bin", source.url("/signin")]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(source.requests.filter((request) => request.path === "/files/a.bin").length).toBeGreaterThan(2);
    expect(await readFile(join(work, "a.bin"))).toEqual(content);
    // Without a jar (no --load-cookies) nothing is kept, as with curl without -b.
    expect((await rangeget(["-q", "-o", "b.bin", source.url("/signin")])).code).toBe(3);
  });

  it("never sends a host's cookies to another host a redirect leads to", async () => {
    const target = await server();
    const origin = await server({ onRequest: () => ({ redirectTo: target.url("/a.bin").replace("127.0.0.1", "localhost") }) });
    const cookies = join(home, "cookies.txt");
    await writeFile(cookies, `127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tabc\n`);
    const run = await rangeget(["-q", "--load-cookies", cookies, "-o", "a.bin", origin.url("/a.bin")]);
    expect(run.code).toBe(0);
    expect(origin.requests[0]?.headers.cookie).toBe("sid=abc");
    for (const request of target.requests) expect(request.headers.cookie).toBeUndefined();
  });
});

describe("-U and defaults from the config file and the environment", () => {
  it("sends rangeget/<version> by default, and -U's text instead", async () => {
    const source = await server();
    expect((await rangeget(["-q", "-o", "a.bin", source.url()])).code).toBe(0);
    expect(source.requests[0]?.headers["user-agent"]).toBe(`rangeget/${VERSION}`);
    expect(VERSION).toBe(JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")).version);
    expect((await rangeget(["-q", "-U", "mirror-sync/2.0", "-o", "b.bin", source.url()])).code).toBe(0);
    expect(source.requests.at(-1)?.headers["user-agent"]).toBe("mirror-sync/2.0");
  });

  it("takes the config file's defaults, the environment's over them, and flags over both", async () => {
    const source = await server();
    await mkdir(join(home, ".config", "rangeget"), { recursive: true });
    await writeFile(join(home, ".config", "rangeget", "config"), "# mine\nuser-agent = from-config\nquiet\n");
    const agent = () => source.requests.at(-1)?.headers["user-agent"];
    const fromFile = await rangeget(["-o", "1.bin", source.url()]);
    expect([fromFile.code, fromFile.stderr, agent()]).toEqual([0, "", "from-config"]);
    expect((await rangeget(["-o", "2.bin", source.url()], { RANGEGET_USER_AGENT: "from-env" })).code).toBe(0);
    expect(agent()).toBe("from-env");
    expect((await rangeget(["-U", "from-flag", "-o", "3.bin", source.url()], { RANGEGET_USER_AGENT: "from-env" })).code).toBe(0);
    expect(agent()).toBe("from-flag");
    expect((await rangeget(["--no-config", "-o", "4.bin", source.url()], { RANGEGET_USER_AGENT: "from-env" })).code).toBe(0);
    expect(agent()).toBe(`rangeget/${VERSION}`);
  });

  it("exits 2 on a bad config line, naming the file and the line", async () => {
    const config = join(home, "rg.conf");
    await writeFile(config, "connections = 16\nconections = 8\n");
    const run = await rangeget(["--config", config, "http://127.0.0.1:9/x"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`rangeget: config file ${config} line 2: unknown option "conections" (see rangeget --help)\n`);
  });
});

describe("--shard", () => {
  it("splits one list over three machines: every file downloaded once, each run saying its share, then a summary", async () => {
    const source = await server({ content: makeContent(16 * KiB, 43) });
    const names = Array.from({ length: 12 }, (_, index) => `part-${index}.bin`);
    await writeFile(join(work, "list.txt"), names.map((name) => source.url(`/${name}`)).join("\n"));
    // The three machines run one after another in this process: each shard depends on the list alone.
    const runs = [];
    for (const index of [0, 1, 2]) {
      await mkdir(join(work, `m${index}`));
      runs.push(await rangeget(["-i", "list.txt", "--shard", `${index}/3`, "-d", `m${index}`]));
    }
    const shares = await Promise.all([0, 1, 2].map((index) => readdir(join(work, `m${index}`))));
    // A share follows from the URLs, whose port is the server's: now and then one is empty,
    // and its summary says so ("0 files; 0 B in 0s").
    const summary = (count: number, what: string): RegExp =>
      count === 0 ? /^rangeget: 0 files; 0 B in 0s$/ : new RegExp(`^rangeget: ${count} files?: ${count} ${what} in \\d+s`);
    expect(shares.flat().sort()).toEqual([...names].sort());
    runs.forEach((run, index) => {
      expect(run.code).toBe(0);
      const stderr = lines(run.stderr);
      expect(stderr[0]).toBe(`rangeget: shard ${index}/3: ${shares[index]!.length} of 12 files`);
      expect(stderr.at(-1)).toMatch(summary(shares[index]!.length, "downloaded; \\d.*"));
    });
    // The same shard of the same list, run again, finds the same files: nothing else is fetched.
    const again = await rangeget(["-i", "list.txt", "--shard", "1/3", "-d", "m1", "--if-changed"]);
    expect(lines(again.stderr).at(-1)).toMatch(summary(shares[1]!.length, "up to date.*"));
  });
});

describe("rangeget completion", () => {
  // A child: bash completes by running the built command, so the script it sources is the built one's.
  it("prints a bash script that completes options by asking rangeget", async () => {
    const run = await runCli(["completion"], { cwd: work, env: testEnv({}) });
    expect(run.code).toBe(0);
    const script = join(home, "rangeget.bash");
    await writeFile(script, run.stdout);
    const complete = (word: string) =>
      spawnSync(
        "bash",
        ["-c", `rangeget() { "${process.execPath}" "${BIN}" "$@"; }; source "${script}"; COMP_WORDS=(rangeget ${word}); COMP_CWORD=1; _rangeget_yargs_completions; printf '%s\\n' "\${COMPREPLY[@]}"`],
        { encoding: "utf8", env: cliEnv({ HOME: home }), timeout: 15_000 },
      ).stdout;
    expect(complete("--netrc")).toBe("--netrc-file\n");
    expect(complete("--sh")).toBe("--shard\n");
    expect(lines(complete("--lo")).sort()).toEqual(["--load-cookies"]);
  });

  // A child: yargs picks the shell from the process's own SHELL, not from main's env (src/cli/flags.ts:224).
  it("prints the zsh script when the shell is zsh", async () => {
    const run = await runCli(["completion"], { cwd: work, env: testEnv({ SHELL: "/bin/zsh" }) });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^#compdef rangeget\n/);
    expect(run.stdout).toContain("compdef _rangeget_yargs_completions rangeget");
  });
});

describe("on a terminal (a pseudo-terminal from script(1))", () => {
  // A child: a terminal (script(1)'s pty) is what only a process has.
  it("keeps the total below the files' bars while they run, then leaves each file's line and the summary", async () => {
    const source = await server({ content: makeContent(192 * KiB, 44), bytesPerSecond: 128 * KiB });
    await writeFile(join(work, "list.txt"), ["one.bin", "two.bin", "three.bin"].map((name) => source.url(`/${name}`)).join("\n"));
    const violations: string[][] = [];
    let sawTotal = false;
    const run = await runOnPty(["-i", "list.txt", "-j", "3", "-c", "1"], {
      cwd: work,
      columns: 120,
      env: { HOME: home },
      onFrame: (shown) => {
        const total = shown.findIndex((line) => line.startsWith("total "));
        if (total >= 0) sawTotal = true;
        if (total >= 0 && shown.slice(total + 1).some((line) => /^\S+\.bin +\S+ +[0-9?]+%/.test(line))) violations.push(shown);
      },
    });
    expect(run.code).toBe(0);
    expect(sawTotal).toBe(true);
    expect(violations).toEqual([]);
    const shown = run.screen.lines();
    expect(shown.filter((line) => / downloaded 192 KiB in /.test(line)).map((line) => line.split(":")[0]).sort()).toEqual(["one.bin", "three.bin", "two.bin"]);
    expect(shown.at(-1)).toMatch(/^rangeget: 3 files: 3 downloaded; 576 KiB in \d+s, /);
    expect(shown.some((line) => line.startsWith("total "))).toBe(false);
  });
});
