import { UsageError } from "../errors.js";

// RFC 9110 5.1: field-name = token; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" /
// "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Headers the engine sets itself (ranges, validators, identity encoding) or that undici
 * refuses: a user value would silently corrupt ranged requests or fail every request.
 */
const RESERVED_HEADERS = new Set([
  "range",
  "if-range",
  "accept-encoding",
  "if-none-match",
  "if-modified-since",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

/**
 * `-H "Name: value"` lines as one header record, keeping the first spelling of a name.
 * Throws `UsageError` for a line that is not `Name: value` (RFC 9110 5.1 token), a
 * value with a line break, or a header rangeget manages itself.
 */
export function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const names = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon).trim();
    const value = colon < 0 ? "" : line.slice(colon + 1).trim();
    if (!HEADER_NAME.test(name)) {
      throw new UsageError(`-H/--header "${line}" is not "Name: value"`);
    }
    if (/[\r\n\0]/.test(value)) {
      throw new UsageError(`-H/--header ${name}: the value must not contain line breaks`);
    }
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) {
      throw new UsageError(`-H/--header ${name} is managed by rangeget and cannot be set`);
    }
    // RFC 9110 5.3: repeated fields combine with commas, except Cookie (RFC 6265 5.4: "; ").
    const key = names.get(lower) ?? name;
    const previous = headers[key];
    headers[key] = previous === undefined ? value : `${previous}${lower === "cookie" ? "; " : ", "}${value}`;
    names.set(lower, key);
  }
  return headers;
}

/** The lower-cased name of a `-H` line (`""` without a colon), to match it across layers. */
export function headerName(line: string): string {
  return line.slice(0, Math.max(0, line.indexOf(":"))).trim().toLowerCase();
}
