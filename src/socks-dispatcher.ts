/**
 * Requests to one origin through a SOCKS5 proxy (RFC 1928): undici's
 * `Socks5ProxyAgent`, given the pool settings every other connection of rangeget has,
 * and for `socks5://` (not `socks5h://`) the target's name resolved here first.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { buildConnector, Socks5ProxyAgent, type Dispatcher } from "undici";
import { NetworkError } from "./errors.js";
import type { ProxyEndpoint } from "./proxy.js";

/** The TLS settings rangeget's dispatcher uses (`--ca`, `--insecure`). */
export interface TlsSettings {
  ca?: (string | Buffer)[];
  rejectUnauthorized?: boolean;
}

export interface SocksOriginOptions {
  proxy: ProxyEndpoint;
  /** The target origin, `https://host:port`, as requests name it. */
  origin: string;
  /** Sockets to the origin (through the proxy); `null` for no limit. */
  connections: number | null;
  pipelining: number;
  /** For the connection to the proxy, the SOCKS5 exchange and the target's TLS handshake. */
  timeoutMs: number;
  tls: TlsSettings;
}

/**
 * A dispatcher for `origin` through `proxy` (socks5 or socks5h). What undici's agent
 * does not take from its options is added here:
 * - the pool's `connections` and `pipelining`: undici 8.13 builds the pool behind the
 *   tunnel from the first request's dispatch options, not from its own;
 * - TLS through the tunnel verified for the origin's name (`servername`), also when a
 *   socks5:// request is sent to the address the name resolved to;
 * - HTTP/1.1: the agent's TLS offers no ALPN, so no server can choose HTTP/2 (which
 *   would carry every range over one connection).
 * Its connection and handshake timeouts are `timeoutMs`, as for a direct connection.
 */
export function socksDispatcher(options: SocksOriginOptions): Dispatcher {
  const { proxy, timeoutMs } = options;
  const hostname = bareHost(new URL(options.origin).hostname);
  const agent = withoutExperimentalWarning(
    () =>
      new Socks5ProxyAgent(proxy.agentUrl, {
        connectTimeout: timeoutMs,
        connect: proxyConnector(timeoutMs),
        requestTls: { ...options.tls, ...(isIP(hostname) === 0 ? { servername: hostname } : {}) },
      }),
  );
  const poolSettings: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) =>
    dispatch({ ...opts, connections: options.connections, pipelining: options.pipelining } as Dispatcher.DispatchOptions, handler);
  if (new URL(options.origin).protocol === "https:" && isIP(hostname) !== 0 && refusesIpServername()) {
    return agent.compose(refusedTlsToAddress());
  }
  return proxy.scheme === "socks5" ? agent.compose(poolSettings, resolvedHere()) : agent.compose(poolSettings);
}

/**
 * Whether this Node refuses an IP address as a TLS server name: Node 26 throws
 * ERR_INVALID_ARG_VALUE where 22 and 24 warned (DEP0123). undici's SOCKS5 agent (8.13, 8.14)
 * passes the target's host, address or not, as the server name, and when `tls.connect`
 * throws it leaves the tunnel's socket open, so the process never exits.
 */
function refusesIpServername(): boolean {
  return Number(process.versions.node.split(".")[0]) >= 26;
}

/**
 * Every request to an https:// address through the tunnel fails at once, before any
 * socket is opened, with `ERR_TLS` (not retried: every attempt would be refused alike).
 */
function refusedTlsToAddress(): Dispatcher.DispatcherComposeInterceptor {
  return () => (opts, handler) => {
    const origin = new URL(String(opts.origin));
    const failure = new NetworkError(
      `cannot open TLS to ${origin.host} through a SOCKS5 proxy on Node ${process.versions.node}: it refuses an IP address as the TLS server name, which undici's SOCKS5 agent sends; use the host's name instead of its address`,
      { url: `${origin.origin}${opts.path}`, code: "ERR_TLS" },
    );
    queueMicrotask(() => handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, failure));
    return true;
  };
}

/**
 * For socks5:// (curl's meaning): the origin's name is resolved here, and the proxy is
 * asked for the address, with the request's `Host` header still naming the host. One
 * address per name for the dispatcher's life, IPv4 first (what a proxy reaches most
 * surely), so every range of a file goes to the same server and shares one pool.
 * A name that does not resolve fails the request with a `NetworkError` saying so.
 */
function resolvedHere(): Dispatcher.DispatcherComposeInterceptor {
  const addresses = new Map<string, Promise<string>>();
  return (dispatch) => (opts, handler) => {
    const origin = new URL(String(opts.origin));
    const name = bareHost(origin.hostname);
    if (isIP(name) !== 0) return dispatch(opts, handler);
    let address = addresses.get(name);
    if (address === undefined) {
      address = lookup(name, { order: "ipv4first" }).then(({ address: found, family }) => (family === 6 ? `[${found}]` : found));
      // A failure is not kept: the retry after it asks again.
      address.catch(() => addresses.delete(name));
      addresses.set(name, address);
    }
    address.then(
      (host) => {
        const headers = { host: origin.host, ...(opts.headers as Record<string, string> | undefined) };
        dispatch({ ...opts, origin: `${origin.protocol}//${host}${origin.port === "" ? "" : `:${origin.port}`}`, headers }, handler);
      },
      (error: unknown) => {
        const code = (error as NodeJS.ErrnoException).code ?? "lookup failed";
        const url = `${origin.origin}${opts.path}`;
        const failure = new NetworkError(`cannot resolve ${name} (${code}); with socks5:// names are resolved here, socks5h:// lets the proxy resolve them`, {
          url,
          cause: error,
        });
        // No request was started, so there is no controller yet (undici's own dns
        // interceptor reports its lookup failures the same way).
        handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, failure);
      },
    );
    return true;
  };
}

/** The TCP connection to the proxy itself, with rangeget's connect timeout; `[::1]` as `::1`. */
function proxyConnector(timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  return (options, callback) => connect({ ...options, hostname: bareHost(options.hostname), host: bareHost(options.host ?? options.hostname) }, callback);
}

/** A URL's host name without the brackets of an IPv6 literal. */
function bareHost(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, "$1");
}

/**
 * undici emits "SOCKS5 proxy support is experimental" once per process when the first
 * agent is made: a line on stderr before every SOCKS run, which the CLI promises
 * not to print (errors and warnings are rangeget's own lines). The agent is tested here
 * through a real SOCKS5 server, so the warning is kept from the terminal while the
 * constructor runs, and only then.
 */
function withoutExperimentalWarning<T>(make: () => T): T {
  const emitWarning = process.emitWarning;
  process.emitWarning = (() => {}) as typeof process.emitWarning;
  try {
    return make();
  } finally {
    process.emitWarning = emitWarning;
  }
}
