// The built CLI (`bin/rangeget.js`, reading dist/) as a child process, bounded by a
// deadline so a hang fails its test instead of the suite. `npm test` builds first.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../bin/rangeget.js", import.meta.url));
const DIST_MAIN = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** What the child wrote to fd 3 (`--progress-fd 3`) when `fd3` was asked for, else "". */
  fd3: string;
  elapsedMs: number;
  /** The child outlived its deadline and was killed: a hang. */
  timedOut: boolean;
}

export interface CliOptions {
  cwd: string;
  /** Merged over a clean copy of this process's environment (no proxies, no DEBUG). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Runs the child under another identity (see `unprivileged`). */
  as?: Identity;
  /** A command the node invocation is wrapped in, e.g. `prlimit --fsize=N --`. */
  wrapper?: string[];
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /**
   * "collect" (default): stdout is gathered as UTF-8 text into `CliRun.stdout`. "caller":
   * nothing reads it here, the caller reads `child.stdout` (bytes, at its own pace, e.g.
   * a slow reader of `-o -`), and `CliRun.stdout` is "".
   */
  stdout?: "collect" | "caller";
  /** Opens fd 3 in the child as a pipe, gathered as text into `CliRun.fd3` (for `--progress-fd 3`). */
  fd3?: boolean;
}

export interface RunningCli {
  readonly child: ChildProcess;
  stderr(): string;
  readonly done: Promise<CliRun>;
}

const PROXY_VARIABLES = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"];

/** The environment the child gets: the caller's, minus what would change its behaviour behind the test's back. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [...PROXY_VARIABLES, "DEBUG"]) delete env[name];
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

export function assertBuilt(): void {
  if (!existsSync(DIST_MAIN)) throw new Error("dist/cli/main.js is missing: run `npm run build` (npm test does it)");
}

/** Starts the CLI; `done` resolves when it exits or is killed at its deadline. */
export function startCli(args: string[], options: CliOptions): RunningCli {
  const started = performance.now();
  const identity = options.as ?? { spawn: {}, prefix: [] };
  const command = [...(options.wrapper ?? []), ...identity.prefix, process.execPath, BIN, ...args];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: options.cwd,
    env: cliEnv(options.env),
    stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe", ...(options.fd3 === true ? ["pipe" as const] : [])],
    ...identity.spawn,
  });
  let stdout = "";
  let stderr = "";
  let fd3 = "";
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  if (options.stdout !== "caller") child.stdout!.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr!.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  if (options.fd3 === true) (child.stdio[3] as NodeJS.ReadableStream).setEncoding("utf8").on("data", (text: string) => (fd3 += text));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 15_000);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, fd3, elapsedMs: performance.now() - started, timedOut });
    });
  });
  return { child, stderr: () => stderr, done };
}

export function runCli(args: string[], options: CliOptions): Promise<CliRun> {
  return startCli(args, options).done;
}

/**
 * Starts the CLI, awaits `whileRunning` with it (to signal it once some state is
 * reached), then resolves when it exits. If `whileRunning` throws, the child is killed
 * at once and the error thrown, so the test fails now and not at the child's deadline.
 */
export async function runCliWhile(args: string[], options: CliOptions, whileRunning: (running: RunningCli) => Promise<void>): Promise<CliRun> {
  const running = startCli(args, options);
  try {
    await whileRunning(running);
  } catch (error) {
    running.child.kill("SIGKILL");
    throw error;
  }
  return running.done;
}

/** The non-empty lines of `text`. */
export function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** Each line of the run's stdout as JSON (`--json` prints one object a line). */
export function jsonLines(run: Pick<CliRun, "stdout">): Array<Record<string, unknown>> {
  return lines(run.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
}


/** How to run a child so file permissions apply to it. */
export interface Identity {
  spawn: { uid?: number; gid?: number };
  prefix: string[];
  describe: string;
}

const NOBODY = 65534;

/**
 * An identity the kernel checks permissions for. Root bypasses them (CAP_DAC_OVERRIDE),
 * so as root: uid 65534 when it can run this node binary (a node under /root/.cache, as
 * CI's second Node is, it cannot), else root without the capabilities that bypass
 * permission checks (`setpriv`). Not root: ourselves. `undefined` when none works.
 */
export function unprivileged(): Identity | undefined {
  if (process.getuid?.() !== 0) return { spawn: {}, prefix: [], describe: "the current user" };
  const canRun = (spawnOptions: Identity["spawn"], prefix: string[]): boolean => {
    const command = [...prefix, process.execPath, "-e", `require("node:fs").accessSync(${JSON.stringify(BIN)})`];
    return spawnSync(command[0]!, command.slice(1), { ...spawnOptions, stdio: "ignore", timeout: 10_000 }).status === 0;
  };
  if (canRun({ uid: NOBODY, gid: NOBODY }, [])) return { spawn: { uid: NOBODY, gid: NOBODY }, prefix: [], describe: "uid 65534" };
  const setpriv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"];
  if (canRun({}, setpriv)) return { spawn: {}, prefix: setpriv, describe: "root without CAP_DAC_OVERRIDE" };
  return undefined;
}
