// The built CLI on a real pseudo-terminal (script(1)), its screen read through Screen:
// what a user at a terminal of that size would see, captured after every write.
import { spawn } from "node:child_process";
import { BIN, cliEnv } from "./run-cli.js";
import { Screen } from "./screen.js";

export interface PtyRun {
  code: number | null;
  /** The screen after the run. */
  screen: Screen;
  /** The screen's lines after every chunk the terminal received. */
  frames: string[][];
}

export interface PtyOptions {
  cwd: string;
  columns: number;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Called with the screen after each chunk; `type("\x03")` is a Ctrl-C at the keyboard. */
  onFrame?: (lines: string[], keyboard: { type(text: string): void }) => void;
}

/** Runs `rangeget args…` on a pseudo-terminal `columns` wide; resolves when it exits (killed at the deadline). */
export function runOnPty(args: string[], options: PtyOptions): Promise<PtyRun> {
  const quoted = args.map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(" ");
  const command = `stty cols ${options.columns} rows 40; exec "${process.execPath}" "${BIN}" ${quoted}`;
  // script copies its stdin to the terminal: a ^C there is the terminal's SIGINT to rangeget.
  const child = spawn("script", ["-qefc", command, "/dev/null"], { cwd: options.cwd, env: cliEnv(options.env), stdio: ["pipe", "pipe", "inherit"] });
  const screen = new Screen();
  const frames: string[][] = [];
  const keyboard = { type: (text: string) => void child.stdin!.write(text) };
  return new Promise<PtyRun>((resolve, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      screen.write(text);
      const lines = screen.lines();
      frames.push(lines);
      options.onFrame?.(lines, keyboard);
    });
    const deadline = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(deadline);
      child.stdin!.destroy();
      resolve({ code, screen, frames });
    });
  });
}
