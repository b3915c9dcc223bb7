import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

// Children run what users run: the built CLI or the built library (`npm test` builds first).
const cli = fileURLToPath(new URL("../../bin/rangeget.js", import.meta.url));
const library = fileURLToPath(new URL("../../dist/index.js", import.meta.url));

export type ChildKind = "cli" | "library";

export interface ChildDownload {
  readonly child: ChildProcess;
  readonly exited: Promise<ChildExit>;
  /** Whether it has exited already. */
  readonly done: boolean;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface ChildDownloadOptions {
  kind: ChildKind;
  url: string;
  output: string;
  connections: number;
  minSplit: number;
  timeoutSeconds: number;
}

/** A download in a child process; resolves `exited` however it ends. */
export function spawnDownload(options: ChildDownloadOptions): ChildDownload {
  const { kind, url, output, connections, minSplit, timeoutSeconds } = options;
  const args =
    kind === "cli"
      ? [cli, "-q", "-c", String(connections), "--min-split", String(minSplit), "--timeout", String(timeoutSeconds), "-o", output, url]
      : [
          "--input-type=module",
          "-e",
          // Exit codes as the CLI would give them, so both kinds read the same.
          `const { download } = await import(${JSON.stringify(library)});
           try {
             await download(process.argv[1], { output: process.argv[2], connections: ${connections}, minSplit: ${minSplit}, timeout: ${timeoutSeconds}, onWarning() {} });
           } catch (error) {
             process.stderr.write(String(error?.stack ?? error) + "\\n");
             process.exitCode = typeof error?.exitCode === "number" ? error.exitCode : 1;
           }`,
          url,
          output,
        ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  let done = false;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once("close", (code, signal) => {
      done = true;
      resolve({ code, signal, stderr: stderr.trim() });
    });
  });
  return {
    child,
    exited,
    get done() {
      return done;
    },
  };
}
