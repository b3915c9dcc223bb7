/**
 * The undici dispatcher every request of a download (or a batch) goes through:
 * keep-alive sockets, the proxy each origin goes through (proxy.ts decides), and the
 * TLS trust settings.
 */
import nodeTls from "node:tls";
import { Agent, buildConnector, Client, Pool, ProxyAgent, type Dispatcher } from "undici";
import { skipInterimAnswers } from "./interim-answers.js";
import { proxyFor, type ProxyEndpoint, type ProxyRoutes } from "./proxy.js";
import { proxyError } from "./proxy-error.js";
import { socksDispatcher, type TlsSettings } from "./socks-dispatcher.js";

export interface DispatcherOptions {
  connections: number;
  timeoutMs: number;
  ca?: string | Buffer;
  insecure?: boolean;
  /** Which proxy each URL goes through (see `proxyRoutes`). Default: every request direct. */
  proxies?: ProxyRoutes;
}

const DIRECT: ProxyRoutes = { http: undefined, https: undefined, bypass: [] };

/**
 * One keep-alive dispatcher per download: `connections` sockets per origin, no
 * pipelining (a stalled range must not block the next one on the same socket),
 * HTTP/1.1 only, and each origin direct or through its proxy: an HTTP(S) proxy with
 * undici's ProxyAgent (CONNECT for https:// targets), a SOCKS5 one with its
 * Socks5ProxyAgent (socks-dispatcher.ts). The connect timeout and `--ca` / `--insecure`
 * apply through every proxy, and to the TLS of an https:// proxy itself. A proxy's
 * failures become errors that name it (proxy-error.ts).
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const tls: TlsSettings = {
    ...(options.ca === undefined ? {} : { ca: [...defaultCaCertificates(), options.ca] }),
    ...(options.insecure ? { rejectUnauthorized: false } : {}),
  };
  const routes = options.proxies ?? DIRECT;
  // Every direct socket drops interim answers before undici reads them: undici refuses an
  // unasked 100 (interim-answers.ts). Not inside a proxy's tunnel.
  const connector = buildConnector({ timeout: options.timeoutMs, allowH2: false, ...tls });
  const connect: buildConnector.connector = (connectOptions, callback) =>
    connector(connectOptions, (...result) => (result[0] === null ? callback(null, skipInterimAnswers(result[1])) : callback(...result)));
  const agent = new Agent({
    // undici 8 negotiates HTTP/2 by default and then multiplexes every range over one
    // TCP connection: 8 ranges at 50 ms round trip measured 4.9 MiB/s that way against
    // 150.8 MiB/s on separate HTTP/1.1 connections. Parallel ranges need separate sockets.
    allowH2: false,
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect,
    // The Agent keeps one dispatcher per origin; an origin's route never changes.
    factory: (origin, agentOptions) => {
      const proxy = proxyFor(routes, new URL(String(origin)));
      const settings = agentOptions as Pool.Options;
      if (proxy === undefined) return settings.connections === 1 ? new Client(origin, settings) : new Pool(origin, settings);
      if (proxy.scheme === "socks5" || proxy.scheme === "socks5h") {
        return socksDispatcher({
          proxy,
          origin: String(origin),
          connections: options.connections,
          pipelining: 1,
          timeoutMs: options.timeoutMs,
          tls,
        });
      }
      return new ProxyAgent({
        ...settings,
        connect: { timeout: options.timeoutMs, ...tls },
        uri: proxy.agentUrl,
        connectTimeout: options.timeoutMs,
        requestTls: tls,
        proxyTls: tls,
      });
    },
  });
  return routes.http === undefined && routes.https === undefined ? agent : agent.compose(namingProxyFailures(routes));
}

/** Requests through a proxy fail with errors that name it (`proxyError`); others pass untouched. */
function namingProxyFailures(routes: ProxyRoutes): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const origin = String(opts.origin);
    const proxy = proxyFor(routes, new URL(origin));
    if (proxy === undefined) return dispatch(opts, handler);
    return dispatch(opts, translatingErrors(handler, proxy, `${origin}${opts.path}`));
  };
}

/**
 * `handler` with its failures translated. A plain delegate, not undici's
 * DecoratorHandler, whose assertions throw when an agent reports an error and then
 * still delivers the answer's data (undici's forwarding proxy does, on a 407).
 */
function translatingErrors(handler: Dispatcher.DispatchHandler, proxy: ProxyEndpoint, url: string): Dispatcher.DispatchHandler {
  let answered = false;
  return {
    onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
    onRequestUpgrade: (controller, status, headers, socket) => handler.onRequestUpgrade?.(controller, status, headers, socket),
    onResponseStart: (controller, status, headers, message) => {
      answered = true;
      handler.onResponseStart?.(controller, status, headers, message);
    },
    onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
    onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
    onResponseError: (controller, error) => handler.onResponseError?.(controller, proxyError(error, proxy, url, answered)),
  };
}

/**
 * What Node trusts without `--ca`: Mozilla's roots plus NODE_EXTRA_CA_CERTS
 * (`tls.getCACertificates`, Node 22.15+). A `ca` option replaces that set, and `--ca`
 * means "also trust", so it is added to this.
 */
function defaultCaCertificates(): string[] {
  return nodeTls.getCACertificates("default");
}
