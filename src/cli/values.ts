/**
 * The one-value flags' parsers (sizes, rates, counts, checksums, the proxy), with bounds
 * from option-bounds.ts, the table the library checks too.
 */
import { parseChecksum } from "../checksum.js";
import { UsageError } from "../errors.js";
import { MIN_WINDOW_BYTES } from "../ordered-sink.js";
import { parseProxyUrl } from "../proxy.js";
import { checkBound, OPTION_BOUNDS, type NumberBound } from "../option-bounds.js";
import { parseRate, parseSize } from "../size.js";

/**
 * The options whose one value is parsed without I/O, by long name. Each parser throws
 * `UsageError` naming the flag as typed (`-c/--connections`) and the text it was given.
 */
export const VALUE_PARSERS = {
  dir: (text: string) => requireNonEmpty(text, "-d/--dir"),
  connections: (text: string) => parseInteger(text, OPTION_BOUNDS.connections),
  jobs: (text: string) => parseInteger(text, OPTION_BOUNDS.jobs),
  "min-split": (text: string) => checkBound(OPTION_BOUNDS.minSplit, parseSize(text, "--min-split"), "flag", text),
  retries: (text: string) => parseInteger(text, OPTION_BOUNDS.retries),
  timeout: (text: string) => parseSeconds(text),
  "limit-rate": (text: string) => withFlag("--limit-rate", () => parseRate(text)),
  checksum: (text: string) => withFlag("--checksum", () => parseChecksum(text)),
  "user-agent": (text: string) => parseUserAgent(text),
  "max-connections-per-host": (text: string) => parseInteger(text, OPTION_BOUNDS.maxConnectionsPerHost),
  "stream-window": (text: string) => checkBound(OPTION_BOUNDS.streamWindow, parseSize(text, "--stream-window"), "flag", text),
  proxy: (text: string) => parseProxy(text),
  progress: (text: string) => parseProgressKind(text),
  "progress-fd": (text: string) => parseInteger(text, OPTION_BOUNDS.progressFd),
} satisfies Record<string, (text: string) => unknown>;

/** `text` itself; throws `UsageError` naming `flag` when it is blank. */
export function requireNonEmpty(text: string, flag: string): string {
  if (text.trim() === "") throw new UsageError(`${flag} must not be empty`);
  return text;
}

/** A whole number typed in digits only (no `1e3`, no `0x10`), within the option's bounds (option-bounds.ts). */
function parseInteger(text: string, bound: NumberBound): number {
  const value = /^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  return checkBound(bound, value, "flag", text);
}

function parseSeconds(text: string): number {
  const value = /^[0-9]*\.?[0-9]+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  return checkBound(OPTION_BOUNDS.timeout, value, "flag", text);
}

/** The URL as given, once it is one rangeget can use; `""` (no proxy at all) as it is. */
function parseProxy(text: string): string {
  if (text.trim() !== "") parseProxyUrl(text, "--proxy");
  return text;
}

function parseUserAgent(text: string): string {
  if (/[\r\n\0]/.test(text)) throw new UsageError("-U/--user-agent must not contain line breaks");
  return requireNonEmpty(text, "-U/--user-agent");
}

/** What `--progress` shows: bars, plain lines, JSON events, or nothing. */
export type ProgressKind = "bar" | "plain" | "json" | "none";
const PROGRESS_KINDS: readonly ProgressKind[] = ["bar", "plain", "json", "none"];

function parseProgressKind(text: string): ProgressKind {
  const kind = PROGRESS_KINDS.find((known) => known === text.trim().toLowerCase());
  if (kind === undefined) throw new UsageError(`--progress must be one of ${PROGRESS_KINDS.join(", ")}, got "${text}"`);
  return kind;
}

/** The shared parsers do not know which flag they parse; the user needs to. */
function withFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${flag}: ${error.message}`);
    throw error;
  }
}
