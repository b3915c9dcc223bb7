import { UsageError } from "./errors.js";

/** One line of a cookies.txt file. */
export interface CookieLine {
  /** Lower-case, without the leading dot. */
  domain: string;
  /** The second field: TRUE lets subdomains have the cookie, FALSE keeps it to `domain` itself. */
  includeSubdomains: boolean;
  path: string;
  /** Sent over HTTPS only. */
  secure: boolean;
  /** Unix time in seconds; `undefined` for a session cookie (0 in the file), kept for the run. */
  expires: number | undefined;
  name: string;
  value: string;
  /** The line carried the `#HttpOnly_` prefix (curl's and browsers' exports). */
  httpOnly: boolean;
}

const HTTP_ONLY_PREFIX = "#HttpOnly_";

/**
 * Parses the Netscape cookies.txt format (what browser extensions export and wget,
 * curl and aria2 read and write): one cookie a line, seven tab-separated fields
 * `domain  include-subdomains  path  secure  expires  name  value`; `#` starts a
 * comment line, except `#HttpOnly_` before a domain. A line of six fields is a cookie
 * with an empty value (curl writes those). Throws `UsageError` naming `source` and the
 * line for anything else; the message never quotes a cookie value.
 */
export function parseCookiesTxt(text: string, source: string): CookieLine[] {
  const cookies: CookieLine[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split("\n")
    .forEach((rawLine, index) => {
      let line = rawLine.replace(/\r$/, "");
      const httpOnly = line.startsWith(HTTP_ONLY_PREFIX);
      if (httpOnly) line = line.slice(HTTP_ONLY_PREFIX.length);
      else if (line.trim() === "" || line.startsWith("#")) return;
      const where = `cookies file ${source} line ${index + 1}`;
      const fields = line.split("\t");
      if (fields.length === 6) fields.push("");
      if (fields.length !== 7) {
        throw new UsageError(`${where}: expected 7 tab-separated fields (domain, subdomains, path, secure, expires, name, value), found ${fields.length}`);
      }
      const [domain, subdomains, path, secure, expires, name, value] = fields as [string, string, string, string, string, string, string];
      if (domain === "" || domain === ".") throw new UsageError(`${where}: the domain is empty`);
      if (!path.startsWith("/")) throw new UsageError(`${where}: the path must start with "/"`);
      if (name === "") throw new UsageError(`${where}: the cookie has no name`);
      cookies.push({
        domain: domain.replace(/^\./, "").toLowerCase(),
        // A leading dot is the older spelling of "subdomains too" (RFC 2109).
        includeSubdomains: parseFlag(subdomains, `${where}: the subdomains field`) || domain.startsWith("."),
        path,
        secure: parseFlag(secure, `${where}: the secure field`),
        expires: parseExpiry(expires, where),
        name,
        value,
        httpOnly,
      });
    });
  return cookies;
}

function parseFlag(text: string, what: string): boolean {
  const upper = text.toUpperCase();
  if (upper === "TRUE") return true;
  if (upper === "FALSE") return false;
  throw new UsageError(`${what} must be TRUE or FALSE, found "${text}"`);
}

function parseExpiry(text: string, where: string): number | undefined {
  // Some exporters write fractional seconds or -1 for a session cookie.
  if (!/^-?[0-9]+(\.[0-9]+)?$/.test(text)) throw new UsageError(`${where}: the expiry must be a Unix time in seconds, found "${text}"`);
  const seconds = Math.floor(Number(text));
  return seconds <= 0 ? undefined : seconds;
}
