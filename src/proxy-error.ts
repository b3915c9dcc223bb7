/**
 * What undici says when a proxy fails, as our errors naming the proxy (`user:***@`,
 * never the password): refused credentials are `HttpStatusError` `ERR_PROXY_AUTH`
 * (exit 3, not retried), a refused tunnel the proxy's status, a proxy that does not
 * answer a `NetworkError` (exit 4). Pure: the failure is passed in.
 */
import { HttpStatusError, NetworkError, RangegetError } from "./errors.js";
import type { ProxyEndpoint } from "./proxy.js";

/** Codes of a connection to the proxy that never came up (Node's and undici's names). */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);
const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "ETIMEDOUT"]);
/** undici's Socks5Client: the proxy refused our user and password, or wants some we did not give. */
const SOCKS_AUTH_CODES = new Set(["UND_ERR_SOCKS5_AUTH_FAILED", "UND_ERR_SOCKS5_AUTH_REJECTED"]);

/**
 * `error`, from a request to `url` sent through `proxy`, as one of our errors when it
 * is the proxy's failure; anything else is returned as it is (toNetworkError judges it).
 * - 407 (RFC 9110 15.5.8), from a CONNECT (undici: "Proxy response (407) !== 200 when
 *   HTTP Tunneling") or a forwarded request ("Proxy Authentication Required (407)"), and
 *   a SOCKS5 user/password refused (RFC 1929: status not 0) or asked for and not given
 *   (RFC 1928: no acceptable method): `ERR_PROXY_AUTH`, status 407 for SOCKS too.
 * - Any other answer than 200 to a CONNECT: `ERR_HTTP_STATUS` with that status
 *   (retried when it is 502, 503...).
 * - A SOCKS5 reply other than success (RFC 1928 section 6: host unreachable, refused...):
 *   `ERR_NETWORK`, naming the target the proxy could not reach.
 * - No connection to the proxy (refused, reset, unknown name, timeout) before any
 *   answer (`answered` false): `ERR_NETWORK` or `ERR_TIMEOUT` naming the proxy. After an
 *   answer began, a reset is the transfer's, judged like any other.
 */
export function proxyError(error: Error, proxy: ProxyEndpoint, url: string, answered: boolean): Error {
  if (error instanceof RangegetError) return error;
  const code = codeOf(error);
  const target = URL.canParse(url) ? new URL(url).host : url;
  const tunnelStatus = /Proxy response \(([0-9]{3})\) !== 200/.exec(error.message)?.[1];
  const forwarded407 = /Proxy Authentication Required \(407\)/.test(error.message);
  if (tunnelStatus === "407" || forwarded407 || (code !== undefined && SOCKS_AUTH_CODES.has(code))) {
    return new HttpStatusError(authMessage(proxy), { status: 407, url, code: "ERR_PROXY_AUTH", cause: error });
  }
  if (tunnelStatus !== undefined) {
    return new HttpStatusError(`proxy ${proxy.shown} answered ${tunnelStatus} to CONNECT ${target}: check the proxy (${proxy.source})`, {
      status: Number(tunnelStatus),
      url,
      cause: error,
    });
  }
  if (code !== undefined && /^UND_ERR_SOCKS5_REPLY_/.test(code)) {
    const reason = error.message.replace(/^SOCKS5 connection failed: /, "");
    return new NetworkError(`proxy ${proxy.shown} could not connect to ${target}: ${reason} (${code})`, { url, cause: error });
  }
  if (code !== undefined && code.startsWith("UND_ERR_SOCKS5_")) {
    return new NetworkError(`proxy ${proxy.shown} broke off the SOCKS5 exchange: ${error.message} (${code}); is it a SOCKS5 proxy?`, {
      url,
      cause: error,
    });
  }
  if (answered || code === undefined) return error;
  if (TIMEOUT_CODES.has(code)) {
    return new NetworkError(`timed out connecting through proxy ${proxy.shown} to ${target} (${code})`, { url, code: "ERR_TIMEOUT", cause: error });
  }
  if (UNREACHABLE_CODES.has(code)) {
    return new NetworkError(`proxy ${proxy.shown} does not answer (${code}): check it is running, or fix ${proxy.source}`, { url, cause: error });
  }
  return error;
}

function authMessage(proxy: ProxyEndpoint): string {
  return proxy.hasCredentials
    ? `proxy ${proxy.shown} refused the credentials (407 Proxy Authentication Required): check the user and password in ${proxy.source}`
    : `proxy ${proxy.shown} asks for credentials (407 Proxy Authentication Required): give them in ${proxy.source} as user:password@`;
}

/** The first `code` in the cause chain: undici wraps a socket's error in its own. */
function codeOf(error: Error): string | undefined {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 4; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code !== "UND_ERR_SOCKET" && code !== "UND_ERR_PRX_CONN") return code;
    current = current.cause;
  }
  return undefined;
}
