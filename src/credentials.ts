/**
 * Where credentials that belong to a host (not to the user's first URL) come from: a
 * netrc, a cookie jar. The HTTP layer asks for every request URL, redirect hops
 * included, and tells of every final response, so what a host sets (a session
 * cookie) reaches that host, and only that host, for the rest of the run.
 */
export interface CredentialSource {
  /**
   * Headers for a request to `url`: `authorization` (Basic from a netrc), `cookie`
   * (the jar's cookies for this URL). Names are lower-case; `{}` when nothing applies.
   */
  headersFor(url: URL): Record<string, string>;
  /** The response headers of a request to `url` (`set-cookie` as undici gives it: a string or a list). Never throws. */
  onResponse(url: URL, headers: Record<string, string | string[] | undefined>): void;
}

/**
 * Adds a source's headers to a request's, under the precedence the command line
 * documents: credentials in the URL or an `Authorization` the user set (`-H`) win
 * over a netrc's, and the jar's cookies join a user's `Cookie` header (RFC 6265 5.4:
 * one header, pairs joined with "; ").
 */
export function addCredentialHeaders(request: Record<string, string>, extra: Record<string, string>): void {
  const authorization = extra["authorization"];
  if (authorization !== undefined && request["authorization"] === undefined) request["authorization"] = authorization;
  const cookie = extra["cookie"];
  if (cookie !== undefined && cookie !== "") {
    const own = request["cookie"];
    request["cookie"] = own === undefined || own === "" ? cookie : `${own}; ${cookie}`;
  }
}

/** One source out of several: their headers merged in order (the first `authorization` wins), every one told of responses. */
export function combineCredentialSources(sources: readonly CredentialSource[]): CredentialSource {
  return {
    headersFor(url) {
      const headers: Record<string, string> = {};
      for (const source of sources) addCredentialHeaders(headers, source.headersFor(url));
      return headers;
    },
    onResponse(url, headers) {
      for (const source of sources) source.onResponse(url, headers);
    },
  };
}
