/**
 * Redirects, followed by our own rules for every request (the probe's, every range's,
 * the single stream's, a refresh's): at most 10 hops, http and https only, no loops,
 * and credentials left behind when the origin changes. Some CDNs send every ranged
 * request to a node with a `302` of its own (issue "Real servers, round 2"), so a
 * worker's range follows redirects exactly as the probe does. A layer around one hop
 * (`streamGet`), as undici's own RedirectHandler is around its dispatch.
 */
import { HttpStatusError } from "./errors.js";
import { STOP, type BodyHandler } from "./http.js";

/** The statuses followed (RFC 9110 15.4): 301, 302, 303, 307, 308. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Hops followed before giving up (curl's default is 50, browsers about 20; 10 is fetch's spirit and enough for CDNs). */
export const MAX_REDIRECTS = 10;
/** A redirect's body is read up to this many bytes so its socket can be reused, else cut. */
const REDIRECT_BODY_LIMIT = 64 * 1024;

/**
 * The next URL of a redirect chain. Pure. `visited` holds every URL asked so far, the
 * first (`startUrl`) included; `hop` counts the redirects already followed.
 * @throws HttpStatusError ERR_BAD_REDIRECT (no Location, not a URL, not http/https),
 *   ERR_REDIRECT_LOOP, ERR_TOO_MANY_REDIRECTS
 */
export function nextHop(
  redirect: { status: number; location: string | undefined },
  current: string,
  startUrl: string,
  visited: ReadonlySet<string>,
  hop: number,
): string {
  const { status, location } = redirect;
  if (location === undefined || !URL.canParse(location, current)) {
    const what = location === undefined ? "without a Location header" : `to ${JSON.stringify(location)}, which is not a URL,`;
    throw new HttpStatusError(`${status} redirect ${what} from ${current}`, { status, url: current, code: "ERR_BAD_REDIRECT" });
  }
  const next = new URL(location, current);
  if (next.protocol !== "http:" && next.protocol !== "https:") {
    throw new HttpStatusError(`redirect from ${current} to unsupported scheme ${next.protocol} refused`, {
      status,
      url: current,
      code: "ERR_BAD_REDIRECT",
    });
  }
  next.hash = "";
  if (visited.has(next.href)) {
    throw new HttpStatusError(`redirect loop: ${current} leads back to ${next.href}`, { status, url: startUrl, code: "ERR_REDIRECT_LOOP" });
  }
  if (hop >= MAX_REDIRECTS) {
    throw new HttpStatusError(`more than ${MAX_REDIRECTS} redirects starting at ${startUrl}`, {
      status,
      url: startUrl,
      code: "ERR_TOO_MANY_REDIRECTS",
    });
  }
  return next.href;
}

/**
 * One hop on the wire: a GET of `url` with the headers that belong to its origin (the
 * user's and the URL's credentials go to the user's origin only, a mirror's to its
 * own, a netrc's to its host: RFC 9110 15.4, as curl and fetch), its statuses gated by
 * `accepts`, its body pushed to `handler`.
 */
export type SendHop = (url: string, accepts: (status: number) => boolean, handler: BodyHandler) => Promise<void>;

/**
 * Sends `url` through `sendHop`, following redirects until an answer that is not one;
 * `handler` sees only that final answer (with its URL).
 * @throws as `nextHop`, and whatever a hop throws
 */
export async function followRedirects(
  url: string,
  accepts: (status: number) => boolean,
  handler: BodyHandler,
  sendHop: SendHop,
): Promise<void> {
  const visited = new Set<string>();
  const acceptsOrRedirect = (status: number) => REDIRECT_STATUSES.has(status) || accepts(status);
  let current = url;
  for (let hop = 0; ; hop++) {
    visited.add(current);
    let redirect: { status: number; location: string | undefined } | undefined;
    let drained = 0;
    await sendHop(current, acceptsOrRedirect, {
      onHeaders(status, headers, answeredBy) {
        if (REDIRECT_STATUSES.has(status)) redirect = { status, location: headers["location"] };
        else return handler.onHeaders(status, headers, answeredBy);
        return undefined;
      },
      onData(chunk) {
        if (redirect === undefined) return handler.onData(chunk);
        drained += chunk.length;
        return drained > REDIRECT_BODY_LIMIT ? STOP : undefined;
      },
    });
    if (redirect === undefined) return;
    current = nextHop(redirect, current, url, visited, hop);
  }
}
