import { parseChecksum } from "../checksum.js";
import { UsageError } from "../errors.js";
import { MIN_WINDOW_BYTES } from "../ordered-sink.js";
import { parseProxyUrl } from "../proxy.js";
import { parseRate, parseSize } from "../size.js";

/**
 * The options whose one value is parsed without I/O, by long name. Each parser throws
 * `UsageError` naming the flag as typed (`-c/--connections`) and the text it was given.
 */
export const VALUE_PARSERS = {
  dir: (text: string) => requireNonEmpty(text, "-d/--dir"),
  connections: (text: string) => parseInteger(text, "-c/--connections", 1, 64),
  jobs: (text: string) => parseInteger(text, "-j/--jobs", 1, Number.MAX_SAFE_INTEGER),
  "min-split": (text: string) => parseMinSplit(text),
  retries: (text: string) => parseInteger(text, "--retries", 0, Number.MAX_SAFE_INTEGER),
  timeout: (text: string) => parseSeconds(text, "--timeout"),
  "limit-rate": (text: string) => withFlag("--limit-rate", () => parseRate(text)),
  checksum: (text: string) => withFlag("--checksum", () => parseChecksum(text)),
  "user-agent": (text: string) => parseUserAgent(text),
  "max-connections-per-host": (text: string) => parseInteger(text, "--max-connections-per-host", 1, Number.MAX_SAFE_INTEGER),
  "stream-window": (text: string) => parseStreamWindow(text),
  proxy: (text: string) => parseProxy(text),
  progress: (text: string) => parseProgressKind(text),
  "progress-fd": (text: string) => parseInteger(text, "--progress-fd", 1, 2 ** 31 - 1),
} satisfies Record<string, (text: string) => unknown>;

/** `text` itself; throws `UsageError` naming `flag` when it is blank. */
export function requireNonEmpty(text: string, flag: string): string {
  if (text.trim() === "") throw new UsageError(`${flag} must not be empty`);
  return text;
}

function parseInteger(text: string, flag: string, min: number, max: number): number {
  const value = /^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
    throw new UsageError(`${flag} must be a whole number ${range}, got "${text}"`);
  }
  return value;
}

function parseSeconds(text: string, flag: string): number {
  const value = /^[0-9]*\.?[0-9]+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${flag} must be a number of seconds greater than 0, got "${text}"`);
  }
  return value;
}

function parseMinSplit(text: string): number {
  const bytes = parseSize(text, "--min-split");
  if (bytes < 1) throw new UsageError(`--min-split must be at least 1 byte, got "${text}"`);
  return bytes;
}

function parseStreamWindow(text: string): number {
  const bytes = parseSize(text, "--stream-window");
  if (bytes < MIN_WINDOW_BYTES) throw new UsageError(`--stream-window must be at least 1MiB, got "${text}"`);
  return bytes;
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
