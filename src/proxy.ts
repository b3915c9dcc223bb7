/**
 * Which proxy a request goes through, if any: the `proxy` option (`--proxy`) or the
 * proxy variables of the environment, and the hosts that bypass every proxy (`noProxy`,
 * `--noproxy`, `NO_PROXY`), by curl's rules. Pure: the environment is passed in, and
 * nothing is resolved (a bypass entry matches the name or address the URL says).
 */
import { BlockList, isIP } from "node:net";
import { UsageError } from "./errors.js";
import { redactText } from "./redact.js";

/**
 * How rangeget talks to a proxy: `http` and `https` (a forward proxy, CONNECT for
 * https:// targets; `https` is TLS to the proxy itself), `socks5` (RFC 1928; the
 * target's name is resolved here and sent as an address) and `socks5h` (the name goes
 * to the proxy, which resolves it: curl's spelling).
 */
export type ProxyScheme = "http" | "https" | "socks5" | "socks5h";

/** One proxy, checked. */
export interface ProxyEndpoint {
  scheme: ProxyScheme;
  /**
   * The URL undici is given, credentials included (percent-encoded, as typed);
   * `socks5h://` is spelled `socks5://` here, as undici knows only that name.
   */
  agentUrl: string;
  /** How messages name it: `socks5://user:***@127.0.0.1:1080`; never the password. */
  shown: string;
  /** Where it was set, for messages: `--proxy`, `environment variable HTTPS_PROXY`. */
  source: string;
  /** Whether the URL carried a user name (then a refusal means wrong credentials, not missing ones). */
  hasCredentials: boolean;
}

/** What `noProxy` / `NO_PROXY` lists, parsed: see `parseNoProxy`. */
export type NoProxyList = readonly NoProxyEntry[];

type NoProxyEntry =
  | { kind: "all"; port: number | undefined }
  | { kind: "name"; name: string; subdomainsOnly: boolean; port: number | undefined }
  | { kind: "address"; addresses: BlockList; port: number | undefined };

/** The proxy for each scheme of target, and the hosts that go direct. */
export interface ProxyRoutes {
  /** For http:// URLs. */
  http: ProxyEndpoint | undefined;
  /** For https:// URLs. */
  https: ProxyEndpoint | undefined;
  /** Hosts that bypass both. */
  bypass: NoProxyList;
}

/** The options a caller sets proxies with (`DownloadOptions.proxy`, `.noProxy`). */
export interface ProxyOptions {
  /** A proxy for every URL; `""` means none, whatever the environment says. */
  proxy?: string | undefined;
  /** Hosts that bypass any proxy, replacing `NO_PROXY`; `""` or `[]` means none. */
  noProxy?: string | readonly string[] | undefined;
}

const SCHEMES: Readonly<Record<string, ProxyScheme>> = {
  "http:": "http",
  "https:": "https",
  "socks5:": "socks5",
  "socks5h:": "socks5h",
};

/**
 * Checks a proxy URL. A URL without a scheme is an http:// proxy, as in curl
 * (`--proxy 10.0.0.1:3128`). Its path, if any, is ignored. `source` starts every
 * message (`--proxy`, `environment variable ALL_PROXY`); the text is shown redacted.
 * @throws UsageError for what is not a URL, a scheme other than http, https, socks5,
 *   socks5h (SOCKS4 is refused by name), or a URL without a host.
 */
export function parseProxyUrl(text: string, source: string): ProxyEndpoint {
  const trimmed = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  const shownText = redactText(withScheme);
  if (!URL.canParse(withScheme)) throw new UsageError(`${source}: "${shownText}" is not a proxy URL`);
  const url = new URL(withScheme);
  const scheme = SCHEMES[url.protocol];
  if (scheme === undefined) {
    const socks4 = /^socks4a?:$/.test(url.protocol) ? " (SOCKS4 is not supported; SOCKS5 proxies speak socks5:// too)" : "";
    throw new UsageError(`${source}: "${shownText}" is not a proxy URL rangeget speaks: use http://, https://, socks5:// or socks5h://${socks4}`);
  }
  if (url.hostname === "") throw new UsageError(`${source}: "${shownText}" names no proxy host`);
  const userinfo = url.username === "" && url.password === "" ? "" : `${url.username}${url.password === "" ? "" : `:${url.password}`}@`;
  const agentProtocol = scheme === "socks5h" ? "socks5:" : url.protocol;
  const user = url.username === "" ? "" : `${url.username}${url.password === "" ? "" : ":***"}@`;
  return {
    scheme,
    agentUrl: `${agentProtocol}//${userinfo}${url.host}`,
    shown: `${url.protocol}//${user}${url.host}`,
    source,
    hasCredentials: url.username !== "",
  };
}

/**
 * Parses a bypass list as curl reads `NO_PROXY` and `--noproxy`: entries separated by
 * commas or white space; `*` alone bypasses every host; a name bypasses itself and its
 * subdomains (`example.com` and `.example.com` both cover `www.example.com`, and
 * `*.example.com` only the subdomains, as undici reads it); an IP address or a CIDR
 * block (`10.0.0.0/8`, `fd00::/8`) covers URLs that give an address in it; `host:port`
 * and `[v6]:port` bypass that port only (undici's extension; curl ignores ports).
 * Matching is by what the URL says: no name is resolved, so `localhost` does not cover
 * `127.0.0.1`. Entries it cannot read match nothing, as in curl: a list another tool
 * wrote never stops a download.
 */
export function parseNoProxy(list: string | readonly string[]): NoProxyList {
  const texts = typeof list === "string" ? [list] : list;
  const entries: NoProxyEntry[] = [];
  for (const raw of texts.flatMap((text) => text.split(/[\s,]+/))) {
    const entry = raw.trim();
    if (entry === "") continue;
    const { host, port } = splitPort(entry);
    if (host === "*") {
      entries.push({ kind: "all", port });
      continue;
    }
    const cidr = /^(.+)\/([0-9]{1,3})$/.exec(host);
    if (cidr) {
      const [, address = "", bits = ""] = cidr;
      const family = isIP(address);
      const prefix = Number(bits);
      if (family === 0 || prefix > (family === 4 ? 32 : 128)) continue;
      const addresses = new BlockList();
      addresses.addSubnet(address, prefix, family === 4 ? "ipv4" : "ipv6");
      entries.push({ kind: "address", addresses, port });
      continue;
    }
    const family = isIP(host);
    if (family !== 0) {
      const addresses = new BlockList();
      addresses.addAddress(host, family === 4 ? "ipv4" : "ipv6");
      entries.push({ kind: "address", addresses, port });
      continue;
    }
    const subdomainsOnly = host.startsWith("*.");
    const name = normalizeName(host.replace(/^\*?\./, ""));
    if (name !== "") entries.push({ kind: "name", name, subdomainsOnly, port });
  }
  return entries;
}

/**
 * The proxies for a download. The `proxy` option wins over the environment and serves
 * every URL (`""`: no proxy at all). Otherwise, from the environment (lower-case names
 * first, as curl and undici read them; an empty variable counts as unset): http:// URLs
 * use `http_proxy`, else `all_proxy`; https:// URLs use `https_proxy`, else
 * `all_proxy`, else `http_proxy` (undici's rule, which rangeget has always followed).
 * `noProxy` replaces `NO_PROXY` / `no_proxy`, which otherwise applies to every proxy,
 * the `proxy` option's included (curl's rule).
 * @throws UsageError naming the option or variable whose URL is not a proxy URL.
 */
export function proxyRoutes(options: ProxyOptions, env: NodeJS.ProcessEnv): ProxyRoutes {
  const bypass = parseNoProxy(options.noProxy ?? variable(env, "no_proxy")?.text ?? "");
  if (options.proxy !== undefined) {
    const proxy = options.proxy.trim() === "" ? undefined : parseProxyUrl(options.proxy, "`proxy`");
    return { http: proxy, https: proxy, bypass };
  }
  const fromEnv = (name: string): ProxyEndpoint | undefined => {
    const found = variable(env, name);
    return found === undefined ? undefined : parseProxyUrl(found.text, `environment variable ${found.name}`);
  };
  const httpOnly = fromEnv("http_proxy");
  const all = fromEnv("all_proxy");
  return { http: httpOnly ?? all, https: fromEnv("https_proxy") ?? all ?? httpOnly, bypass };
}

/** The proxy `url` goes through, or `undefined` for a direct connection. */
export function proxyFor(routes: ProxyRoutes, url: URL): ProxyEndpoint | undefined {
  const proxy = url.protocol === "https:" ? routes.https : routes.http;
  if (proxy === undefined || bypasses(routes.bypass, url)) return undefined;
  return proxy;
}

/** Whether `url`'s host (and port) is on the bypass list. */
export function bypasses(list: NoProxyList, url: URL): boolean {
  const host = normalizeName(url.hostname.replace(/^\[(.*)\]$/, "$1"));
  const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  const family = isIP(host);
  return list.some((entry) => {
    if (entry.port !== undefined && entry.port !== port) return false;
    if (entry.kind === "all") return true;
    if (entry.kind === "address") return family !== 0 && entry.addresses.check(host, family === 4 ? "ipv4" : "ipv6");
    if (family !== 0) return false;
    return (!entry.subdomainsOnly && host === entry.name) || host.endsWith(`.${entry.name}`);
  });
}

/** `host:port`, `[v6]:port`, `[v6]`, or a bare host or address (an IPv6 address has several colons). */
function splitPort(entry: string): { host: string; port: number | undefined } {
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(entry);
  if (bracketed) return { host: bracketed[1] ?? "", port: bracketed[2] === undefined ? undefined : Number(bracketed[2]) };
  const withPort = /^([^:]+):([0-9]+)$/.exec(entry);
  if (withPort) return { host: withPort[1] ?? "", port: Number(withPort[2]) };
  return { host: entry, port: undefined };
}

/** Names compare without case and without the root's trailing dot (RFC 1034: `example.com.` is `example.com`). */
function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** The first of `name` (lower case) and `NAME` that is set and not empty. */
function variable(env: NodeJS.ProcessEnv, name: string): { name: string; text: string } | undefined {
  for (const spelling of [name, name.toUpperCase()]) {
    const text = env[spelling];
    if (text !== undefined && text.trim() !== "") return { name: spelling, text };
  }
  return undefined;
}
