/**
 * The headers of every request, built in one place: who we are, the user's own headers
 * (to their origin only), credentials by one order of precedence, cookies, what is
 * asked (Range, If-Range, the conditions of `ifChanged`) and `Accept-Encoding:
 * identity`. Pure: no I/O.
 */
import { addCredentialHeaders, type CredentialSource } from "./credentials.js";
import { formatRange } from "./http-headers.js";
import type { OriginCredentials } from "./url-credentials.js";
import { VERSION } from "./version.js";
import type { ByteSpan } from "./verdict.js";

/** The User-Agent when the caller names none. */
export const USER_AGENT = `rangeget/${VERSION}`;

/** Whose headers a request carries: the parts of a request context this module reads. */
export interface HeaderSources {
  /** The origin the user's headers (and the URL's own `user:password@`) belong to. */
  userOrigin: string;
  /** The user's `-H` headers, with the URL's Basic auth as `authorization` unless `-H` set one. */
  userHeaders: Record<string, string>;
  /** Default `rangeget/<version>`; a `User-Agent` among the user's headers wins. */
  userAgent?: string | undefined;
  /** Basic auth per mirror origin, from the mirrors' `user:password@`. */
  originCredentials?: ReadonlyMap<string, OriginCredentials> | undefined;
  /** A netrc and a cookie jar, asked per request URL. */
  credentials?: CredentialSource | undefined;
}

/** What one request asks of the file, beside its URL. */
export interface AskedHeaders {
  /** `Range: bytes=start-end` (RFC 9110 14.2); none for a plain GET. */
  range?: ByteSpan | undefined;
  /** `If-Range` (RFC 9110 13.1.5): a strong ETag or a date, never a weak tag. */
  ifRange?: string | undefined;
  /** `If-None-Match` / `If-Modified-Since` for `ifChanged` (RFC 9110 13.1.2, 13.1.4). */
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
}

/**
 * Every header of a request to `target`. Authorization, first that applies wins: an
 * `Authorization` the user set with `-H`, then the URL's own `user:password@` (both in
 * `userHeaders`, for `userOrigin` only), then a mirror's `user:password@` (its origin
 * only), then a netrc entry for the host. Cookies: the user's `Cookie` joined with the
 * jar's (RFC 6265 5.4). `Accept-Encoding: identity` always: a range of an encoded
 * representation is what we ask for only if it is what is stored.
 */
export function requestHeaders(sources: HeaderSources, target: URL, asked: AskedHeaders): Record<string, string> {
  const headers: Record<string, string> = { "user-agent": sources.userAgent ?? USER_AGENT };
  if (target.origin === sources.userOrigin) {
    for (const [name, value] of Object.entries(sources.userHeaders)) headers[name.toLowerCase()] = value;
  }
  const mirror = sources.originCredentials?.get(target.origin);
  if (mirror && headers["authorization"] === undefined) headers["authorization"] = mirror.authorization;
  // Asked per request URL, so every redirect hop gets what belongs to its own host.
  if (sources.credentials) addCredentialHeaders(headers, sources.credentials.headersFor(target));
  if (asked.range !== undefined) headers["range"] = formatRange(asked.range.start, asked.range.end);
  if (asked.ifRange !== undefined) headers["if-range"] = asked.ifRange;
  if (asked.ifNoneMatch !== undefined) headers["if-none-match"] = asked.ifNoneMatch;
  if (asked.ifModifiedSince !== undefined) headers["if-modified-since"] = asked.ifModifiedSince;
  headers["accept-encoding"] = "identity";
  return headers;
}
