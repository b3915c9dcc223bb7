/**
 * Human sizes in and out: `--min-split 4M`, `--limit-rate 10M`, progress lines.
 * Every suffix is a power of 1024, and `KB`/`MB` mean KiB/MiB, as in curl and wget:
 * someone typing `4MB` for a chunk size means 4 MiB, not 4,000,000 bytes.
 */
import { UsageError } from "./errors.js";

const UNIT_EXPONENTS: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

// A decimal number, then an optional K/M/G/T/P with an optional "iB"/"B", or just "B".
const SIZE = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+) *(?:([kmgtp])(?:i?b)?|b)?$/i;

/** Bytes in `text` (`4M`, `512k`, `1.5G`, `4MiB`, `1048576`), floored to an integer. */
export function parseSize(text: string, what = "size"): number {
  return parseSizeQuoting(text, what, text);
}

/** Bytes per second in `text`, like parseSize with an optional `/s`: `10M`, `512K/s`. */
export function parseRate(text: string): number {
  const bytesPerSecond = parseSizeQuoting(text.trim().replace(/ *\/s$/i, ""), "rate", text);
  if (bytesPerSecond <= 0) {
    throw new UsageError(`invalid rate ${JSON.stringify(text)}: must be at least 1 byte per second (e.g. 10M)`);
  }
  return bytesPerSecond;
}

/** parseSize, with errors quoting `original`: what the user typed, not what is left of it. */
function parseSizeQuoting(text: string, what: string, original: string): number {
  // JSON.stringify keeps the message on one line whatever the input holds.
  const quoted = JSON.stringify(original);
  const match = SIZE.exec(text.trim());
  if (!match) {
    throw new UsageError(`invalid ${what} ${quoted}: use a number with an optional K, M, G suffix (e.g. 4M)`);
  }
  const exponent = UNIT_EXPONENTS[(match[2] ?? "").toLowerCase()] ?? 0;
  const bytes = Math.floor(Number(match[1]) * 1024 ** exponent);
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(`invalid ${what} ${quoted}: at most ${Number.MAX_SAFE_INTEGER} bytes (8 PiB)`);
  }
  return bytes;
}

const BINARY_UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** Three significant digits, without switching to exponent notation. */
function threeDigits(value: number): string {
  if (value >= 99.95) return value.toFixed(0);
  if (value >= 9.995) return value.toFixed(1);
  return value.toFixed(2);
}

/** `"0 B"`, `"512 B"`, `"1.50 KiB"`, `"12.3 MiB"`, `"1.00 GiB"`; `"--"` when unknown. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "--";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes / 1024;
  let unit = 0;
  // Move up a unit before the number would need a fourth digit: "1000 KiB" reads
  // worse than "0.98 MiB".
  while (Number(threeDigits(value)) >= 1000 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${threeDigits(value)} ${BINARY_UNITS[unit] ?? ""}`;
}

/** `"5s"`, `"1m05s"`, `"2h03m"`; `"--"` when unknown (an ETA with no throughput yet). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours > 0) return `${hours}h${String(minutes).padStart(2, "0")}m`;
  if (minutes > 0) return `${minutes}m${String(secs).padStart(2, "0")}s`;
  return `${secs}s`;
}
