import { redactUrl, withoutCredentials } from "./redact.js";

/** A URL given as `scheme://user:password@host/...`, split for sending. */
export interface UrlCredentials {
  /** The URL without user name and password: what is requested and recorded. */
  url: string;
  /** The origin the credentials belong to; they are sent nowhere else. */
  origin: string;
  /** `Basic <base64>` for that origin, or `undefined` when the URL has no user name. */
  authorization: string | undefined;
  /** The URL as it may be shown: `user:***@`. */
  shown: string;
  /** `user:***` (or `user` without a password) as messages show it, or `undefined` when the URL has no user name. */
  shownUserinfo: string | undefined;
}

/** A Basic `Authorization` for one origin, from a URL's `user:password@`, and how messages show that user. */
export interface OriginCredentials {
  authorization: string;
  /** `user:***`, or `user` when there was no password. */
  shownUserinfo: string;
}

/**
 * Reads `user:password@` from an http(s) URL into a Basic `Authorization` value
 * (RFC 7617: user-id ":" password, UTF-8, base64), as curl and wget do. The parts are
 * percent-decoded first (`p%40ss` is the password `p@ss`, RFC 3986 3.2.1). Throws
 * `TypeError` for a string that is not a URL (callers validate URLs before this).
 */
export function splitUrlCredentials(url: string): UrlCredentials {
  const parsed = new URL(url);
  const user = decodeUserinfo(parsed.username);
  const password = decodeUserinfo(parsed.password);
  const authorization =
    parsed.username === "" && parsed.password === ""
      ? undefined
      : `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
  const shownUserinfo = authorization === undefined ? undefined : parsed.password === "" ? parsed.username : `${parsed.username}:***`;
  return { url: withoutCredentials(parsed.href), origin: parsed.origin, authorization, shown: redactUrl(parsed.href), shownUserinfo };
}

/** A malformed escape (`%zz`) is kept as typed: the user meant those characters. */
function decodeUserinfo(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
