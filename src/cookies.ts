/**
 * Cookies for one run: a tough-cookie jar loaded from a cookies.txt (`--load-cookies`),
 * offered to the request path as a credential source, so each request URL (redirect hops
 * included) gets the cookies that match it and each answer's Set-Cookie reaches the jar.
 */
import { Cookie, CookieJar, MemoryCookieStore } from "tough-cookie";
import type { CookieLine } from "./cookies-txt.js";
import type { CredentialSource } from "./credentials.js";

/**
 * A cookie jar for one run, holding `lines` (from a cookies.txt). Matching by domain,
 * path, secure flag and expiry is tough-cookie's (RFC 6265 5.4), with one stricter
 * choice: a Secure cookie goes over HTTPS only, loopback included (tough-cookie would
 * treat http://localhost as secure), because the file said "secure".
 */
export async function createCookieJar(lines: readonly CookieLine[]): Promise<CookieJar> {
  const store = new MemoryCookieStore();
  const jar = new CookieJar(store, { allowSecureOnLocal: false });
  for (const line of lines) {
    await store.putCookie(
      new Cookie({
        key: line.name,
        value: line.value,
        domain: line.domain,
        path: line.path,
        secure: line.secure,
        httpOnly: line.httpOnly,
        hostOnly: !line.includeSubdomains,
        expires: line.expires === undefined ? "Infinity" : new Date(line.expires * 1000),
      }),
    );
  }
  return jar;
}

/**
 * The jar as a credential source: the `Cookie` header for each request URL, and every
 * `Set-Cookie` of a response kept (what a sign-in redirect sets is sent on the next
 * hop and to later requests). Cookies a server may not set, for a public suffix or
 * another domain, are dropped as RFC 6265 5.3 says.
 */
export function cookieJarCredentials(jar: CookieJar): CredentialSource {
  return {
    headersFor(url): Record<string, string> {
      const cookie = jar.getCookieStringSync(url);
      return cookie === "" ? {} : { cookie };
    },
    onResponse(url, headers) {
      const setCookie = headers["set-cookie"];
      if (setCookie === undefined) return;
      for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
        jar.setCookieSync(line, url, { ignoreError: true });
      }
    },
  };
}
