/**
 * The options' names on the command line and in the library, and the bounds of those
 * that take a number: one table, so the CLI and the library agree on what is allowed
 * and each names the option its user typed (`--retries` on the command line, `retries`
 * in the library). Pure.
 *
 * Library messages name an option in backquotes (`` `force` ``, `` `connections: 1` ``);
 * `withFlagNames` turns those into the flags (`--force`, `-c 1`) for the command line.
 */
import { UsageError } from "./errors.js";
import { MIN_WINDOW_BYTES } from "./ordered-sink.js";

/** How an option is named: its library name, the flag as a bounds message names it, and as advice names it. */
export interface OptionName {
  /** The library's option (`DownloadOptions`, `DownloadAllOptions`). */
  option: string;
  /** The flag as a message about its value names it: `-c/--connections`. */
  flag: string;
  /** The flag as advice names it (`-c`, `--netrc-file, --load-cookies`); default `flag`. */
  mention?: string;
}

/** A numeric option's allowed values, inclusive; `max` is `Number.MAX_SAFE_INTEGER` for "no upper bound". */
export interface NumberBound extends OptionName {
  min: number;
  max: number;
  /** Whole numbers only. */
  whole: boolean;
  /** What the number counts, for messages ("bytes", "seconds"); absent for a count. */
  unit?: string;
  /** `min` as a person reads it ("1MiB"), when plainer than the number. */
  minText?: string;
}

const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** Every numeric option with bounds, by library name. */
export const OPTION_BOUNDS = {
  connections: { option: "connections", flag: "-c/--connections", mention: "-c", min: 1, max: 64, whole: true },
  jobs: { option: "jobs", flag: "-j/--jobs", mention: "-j", min: 1, max: UNBOUNDED, whole: true },
  retries: { option: "retries", flag: "--retries", min: 0, max: 1000, whole: true },
  maxConnectionsPerHost: { option: "maxConnectionsPerHost", flag: "--max-connections-per-host", min: 1, max: UNBOUNDED, whole: true },
  minSplit: { option: "minSplit", flag: "--min-split", min: 1, max: UNBOUNDED, whole: true, unit: "bytes", minText: "1 byte" },
  streamWindow: { option: "streamWindow", flag: "--stream-window", min: MIN_WINDOW_BYTES, max: UNBOUNDED, whole: true, unit: "bytes", minText: "1MiB" },
  timeout: { option: "timeout", flag: "--timeout", min: Number.MIN_VALUE, max: Number.MAX_VALUE, whole: false, unit: "seconds" },
  limitRate: { option: "limitRate", flag: "--limit-rate", min: Number.MIN_VALUE, max: Number.MAX_VALUE, whole: false, unit: "bytes per second" },
  progressFd: { option: "progressFd", flag: "--progress-fd", min: 1, max: 2 ** 31 - 1, whole: true },
} as const satisfies Record<string, NumberBound>;

/** Options that advice names without a bound, by library name. */
const OTHER_NAMES: readonly OptionName[] = [
  { option: "output", flag: "-o" },
  { option: "dir", flag: "--dir" },
  { option: "force", flag: "--force" },
  { option: "ifChanged", flag: "--if-changed" },
  { option: "continue", flag: "--continue" },
  { option: "checksum", flag: "--checksum" },
  { option: "extract", flag: "--extract" },
  { option: "mirror", flag: "--mirror" },
  { option: "headers", flag: "-H" },
  { option: "credentials", flag: "--netrc-file, --load-cookies" },
  { option: "ca", flag: "--ca <file>" },
  { option: "insecure", flag: "--insecure" },
  { option: "proxy", flag: "--proxy" },
];

const MENTIONS = new Map<string, string>(
  [...Object.values(OPTION_BOUNDS), ...OTHER_NAMES].map((name: OptionName) => [name.option, name.mention ?? name.flag]),
);

/** Who reads the message: a library caller (option names) or a command-line user (flags). */
export type Naming = "option" | "flag";

/** What `bound` allows, as a sentence's end: "a whole number from 1 to 64", "at least 1MiB", "a number of seconds greater than 0". */
export function allowedValues(bound: NumberBound): string {
  if (!bound.whole) return `a number${bound.unit ? ` of ${bound.unit}` : ""} greater than 0`;
  if (bound.minText !== undefined && bound.max === UNBOUNDED) return `at least ${bound.minText}`;
  const what = `a whole number${bound.unit ? ` of ${bound.unit}` : ""}`;
  return bound.max === UNBOUNDED ? `${what} ${bound.min} or more` : `${what} from ${bound.min} to ${bound.max}`;
}

/**
 * `value` when `bound` allows it.
 * @throws UsageError naming the option or the flag (`naming`), what is allowed, and
 *   what was given: `shown` (the text typed on the command line) or the value.
 */
export function checkBound(bound: NumberBound, value: number, naming: Naming, shown?: string): number {
  const allowed = Number.isFinite(value) && value >= bound.min && value <= bound.max && (!bound.whole || Number.isSafeInteger(value));
  if (allowed) return value;
  const name = naming === "flag" ? bound.flag : bound.option;
  const given = shown === undefined ? `not ${value}` : `got "${shown}"`;
  throw new UsageError(`${name} must be ${allowedValues(bound)}, ${given}`);
}

/**
 * A library message for the command line: each backquoted option becomes its flag
 * (`` `force` `` → `--force`, `` `connections: 1` `` → `-c 1`, `` `insecure: true` `` →
 * `--insecure`). Backquoted words that are not options are left as they are.
 */
export function withFlagNames(message: string): string {
  return message.replace(/`([A-Za-z]+)(?:: ([^`]+))?`/g, (whole, option: string, value: string | undefined) => {
    const flag = MENTIONS.get(option);
    if (flag === undefined) return whole;
    return value === undefined || value === "true" ? flag : `${flag} ${value}`;
  });
}
