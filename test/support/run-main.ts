// The CLI's `main(argv, io)` run inside the test's process: the same arguments, the same
// environment (cliEnv) and the same CliRun as run-cli.ts's child, at a fraction of its CPU
// (no Node to start, no bundle to load). What only a process has stays with run-cli.ts:
// signals from outside, exit codes set by a crash, fd 3, other users, prlimit, a TTY,
// two processes at once, SIGKILL. Each file that uses this keeps those cases as children.
import { EventEmitter } from "node:events";
import { Readable, Writable } from "node:stream";
import { onTestFinished, type TestContext } from "vitest";
import { main, type CliIo } from "../../src/cli/main.js";
import { cliEnv, type CliOptions, type CliRun } from "./run-cli.js";

/** What `runMain` takes: run-cli's options without those only a child process has. */
export type MainOptions = Omit<CliOptions, "as" | "wrapper" | "fd3" | "stdout"> &
  Pick<Partial<CliIo>, "clock" | "intervals"> & {
    /** The test the run belongs to; needed in a concurrent test, whose end vitest's global hook does not track. */
    owner?: TestContext;
  };

/** After the deadline's SIGTERM, how long the run has to save its state and return. */
const DEADLINE_GRACE_MS = 5_000;

/** The text written to a stream, gathered; `isTTY` and `columns` unset, as a pipe's. */
class TextSink extends Writable {
  text = "";
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.text += chunk.toString();
    done();
  }
}

// process.chdir is process-wide: runs in one file may overlap only in one directory.
let active = 0;
let activeCwd = "";
let cwdBefore = "";

function enter(cwd: string): void {
  if (active > 0 && cwd !== activeCwd) throw new Error(`runMain: a run in ${activeCwd} is still going; overlapping runs must share a cwd`);
  if (active === 0) {
    cwdBefore = process.cwd();
    process.chdir(cwd);
    activeCwd = cwd;
  }
  active += 1;
}

function leave(): void {
  active -= 1;
  if (active === 0) process.chdir(cwdBefore);
}

/**
 * Runs `rangeget ARGS` in this process, in `options.cwd`, and resolves with what a
 * child would have given: the exit code main returns (or the one `exit` was called
 * with), stdout and stderr as text. At `timeoutMs` (default 15 s) the run gets SIGTERM
 * and `timedOut` is set; a run that still has not returned DEADLINE_GRACE_MS later
 * resolves with code `null`.
 */
export async function runMain(args: string[], options: MainOptions): Promise<CliRun> {
  const started = performance.now();
  const stdout = new TextSink();
  const stderr = new TextSink();
  const signals = new EventEmitter();
  const env = cliEnv(options.env);
  let exitCode: number | undefined;
  let exited!: () => void;
  const exitCalled = new Promise<void>((resolve) => (exited = resolve));
  const io: Partial<CliIo> = {
    stdout,
    stderr,
    stdin: Readable.from(options.stdin === undefined || options.stdin === "" ? [] : [options.stdin]),
    env,
    ...(env.HOME === undefined ? {} : { homeDir: env.HOME }),
    signals,
    exit: (code) => {
      exitCode ??= code;
      exited();
    },
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.intervals === undefined ? {} : { intervals: options.intervals }),
  };

  let timedOut = false;
  let gaveUp!: () => void;
  const givenUp = new Promise<void>((resolve) => (gaveUp = resolve));
  let grace: NodeJS.Timeout | undefined;
  const deadline = setTimeout(() => {
    timedOut = true;
    signals.emit("SIGTERM", "SIGTERM");
    grace = setTimeout(gaveUp, DEADLINE_GRACE_MS);
  }, options.timeoutMs ?? 15_000);

  enter(options.cwd);
  let left = false;
  const leaveOnce = () => {
    if (left) return;
    left = true;
    leave();
  };
  // A test that fails before its run returns must not leave the run holding the working
  // directory: every later run of the worker (files share one, isolate: false) would fail
  // as "overlapping". The run is told to stop, and its directory is given back.
  try {
    (options.owner?.onTestFinished ?? onTestFinished)(() => {
      if (left) return;
      signals.emit("SIGTERM", "SIGTERM");
      leaveOnce();
    });
  } catch {
    // Called outside a test (a beforeAll): the hook's own end is its bound.
  }
  let code: number | null;
  try {
    const returned = main(args, io);
    code = await Promise.race([returned, exitCalled.then(() => exitCode!), givenUp.then(() => null)]);
  } finally {
    clearTimeout(deadline);
    clearTimeout(grace);
    leaveOnce();
  }
  return { code, signal: null, stdout: stdout.text, stderr: stderr.text, fd3: "", elapsedMs: performance.now() - started, timedOut };
}
