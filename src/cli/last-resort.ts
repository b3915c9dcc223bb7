/**
 * The last line of defence: an exception that escapes every handler (from rangeget or
 * from a library it runs, as undici 7's `assert(!this.paused)` once did, nodejs/undici
 * #5360) ends the run with one line instead of Node's stack trace.
 *
 * Exiting at once is safe by design: the manifest never claims a byte that is not
 * durable and the output name only ever holds a finished file, so the state on disk is
 * as trustworthy as after a SIGKILL, and running the same command again resumes.
 */
import { INTERNAL_ERROR_EXIT_CODE } from "../errors.js";
import { redactText } from "../redact.js";
import { debugEnabled } from "./debug.js";

export interface LastResortHost {
  on(event: "uncaughtException" | "unhandledRejection", listener: (error: unknown) => void): unknown;
  readonly env: NodeJS.ProcessEnv;
  readonly stderr: { write(text: string): unknown };
  exit(code: number): void;
}

/** Where the README tells a user to send a report. */
export const REPORT_HINT = "please report it with the command and this line (README: Reporting a bug)";

/**
 * Installs handlers for `uncaughtException` and `unhandledRejection` on `host` (the
 * process) that print `rangeget: internal error …` once, with the stack only under
 * `DEBUG=rangeget`, and exit with code 1.
 */
export function installLastResort(host: LastResortHost): void {
  const onEscaped = (error: unknown): void => {
    host.stderr.write(`${lastResortLine(error)}\n`);
    if (debugEnabled(host.env) && error instanceof Error && error.stack !== undefined) host.stderr.write(`${redactText(error.stack)}\n`);
    host.exit(INTERNAL_ERROR_EXIT_CODE);
  };
  host.on("uncaughtException", onEscaped);
  host.on("unhandledRejection", onEscaped);
}

/** The one line for an exception nothing caught; secrets in its message are redacted. */
export function lastResortLine(error: unknown): string {
  const name = error instanceof Error ? error.name : typeof error;
  const message = error instanceof Error ? error.message : String(error);
  const text = redactText(`${name}: ${message}`).replace(/\s*\n\s*/g, " ");
  return (
    `rangeget: internal error (${text}); this is a bug in rangeget or a library it uses, not in your command or the server. ` +
    `What was saved is intact: run the same command again to resume; ${REPORT_HINT}, DEBUG=rangeget shows the stack`
  );
}
