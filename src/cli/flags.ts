/**
 * The command line's shape as yargs sees it: every option with its help line and group,
 * the usage text and examples, shell completion, and yargs's messages in our words.
 * The one module that imports yargs.
 */
import yargs, { type Argv, type FallbackCompletionFunction, type Options } from "yargs";
import { UsageError } from "../errors.js";
import { VERSION } from "../version.js";
import type { ConfigurableOptions, OptionKind } from "./config.js";

const GROUP_OUTPUT = "Output:";
const GROUP_CONNECTIONS = "Connections:";
const GROUP_ACCESS = "Access:";
const GROUP_RETRIES = "Retries and time:";
const GROUP_VERIFICATION = "Verification:";
const GROUP_FORMAT = "Output format:";
const GROUP_DEFAULTS = "Defaults:";

/** Every option, by long name; `describe` starts with the value's placeholder. */
const OPTIONS = {
  output: {
    alias: "o",
    type: "string",
    requiresArg: true,
    group: GROUP_OUTPUT,
    describe: "<file> output path (one URL only); '-' writes to stdout in order while fetching in parallel (no .part, no resume)",
  },
  extract: {
    type: "string",
    requiresArg: true,
    group: GROUP_OUTPUT,
    describe: "<dir> the file is a tar archive (plain, gzip, zstd): unpack it into <dir> while it downloads (no resume)",
  },
  dir: { alias: "d", type: "string", requiresArg: true, group: GROUP_OUTPUT, describe: "<dir> directory for outputs (default: current directory)" },
  "input-file": {
    alias: "i",
    type: "string",
    requiresArg: true,
    group: GROUP_OUTPUT,
    describe: "<file> URLs, one per line: \"<url>[<TAB>mirror...] [output]\"; '#' comments; '-' = stdin",
  },
  shard: {
    type: "string",
    requiresArg: true,
    group: GROUP_OUTPUT,
    describe: "<k/n> with -i: take share k (0-based) of n, so n machines split one list",
  },
  force: { alias: "f", type: "boolean", group: GROUP_OUTPUT, describe: "overwrite an existing output and discard partial state" },
  continue: {
    type: "boolean",
    group: GROUP_OUTPUT,
    describe: "adopt a partial output left by another tool (curl, wget, a browser) and fetch only the rest",
  },
  "if-changed": {
    type: "boolean",
    group: GROUP_OUTPUT,
    describe: "re-download an existing output only if the server has a newer one",
  },
  "no-hedge": {
    type: "boolean",
    group: GROUP_CONNECTIONS,
    describe: "never ask for a byte twice or cut an answer short (no hedges, rescues or steals): the server sends exactly the file",
  },
  mirror: {
    type: "string",
    requiresArg: true,
    group: GROUP_CONNECTIONS,
    describe: "<url> another copy of the same file; ranges are spread over all copies by speed (repeatable)",
  },
  connections: { alias: "c", type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<n> connections per file (default 8, 1..64)" },
  jobs: { alias: "j", type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<n> files downloaded at once (default 4)" },
  "min-split": {
    type: "string",
    requiresArg: true,
    group: GROUP_CONNECTIONS,
    describe: "<size> smallest range worth its own connection (default 4MiB)",
  },
  "max-connections-per-host": {
    type: "string",
    requiresArg: true,
    group: GROUP_CONNECTIONS,
    describe: "<n> total connections to one host across all files (default 16, or -c when larger)",
  },
  "limit-rate": { type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<rate> total download rate cap, e.g. 10M (bytes/s)" },
  "stream-window": {
    type: "string",
    requiresArg: true,
    group: GROUP_CONNECTIONS,
    describe: "<size> with -o - or --extract: bytes fetched ahead of the reader (default 2 ranges per connection, at most 64MiB)",
  },
  header: { alias: "H", type: "string", requiresArg: true, group: GROUP_ACCESS, describe: "<line> extra request header \"Name: value\", repeatable" },
  "user-agent": { alias: "U", type: "string", requiresArg: true, group: GROUP_ACCESS, describe: `<text> User-Agent (default rangeget/${VERSION})` },
  "netrc-file": {
    type: "string",
    requiresArg: true,
    group: GROUP_ACCESS,
    describe: "<file> logins per host, sent as Basic auth to that host only (default ~/.netrc when it exists)",
  },
  "no-netrc": { type: "boolean", group: GROUP_ACCESS, describe: "read no netrc" },
  "load-cookies": {
    type: "string",
    requiresArg: true,
    group: GROUP_ACCESS,
    describe: "<file> cookies in the Netscape cookies.txt format; cookies servers set are kept for the run",
  },
  proxy: {
    type: "string",
    requiresArg: true,
    group: GROUP_ACCESS,
    describe:
      "<url> proxy for every request: http://, https://, socks5:// (names resolved here) or socks5h:// (by the proxy); " +
      "user:password@ allowed, never shown; \"\" = none (default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY)",
  },
  noproxy: {
    type: "string",
    requiresArg: true,
    group: GROUP_ACCESS,
    describe: "<list> hosts that bypass the proxy, comma-separated: *, example.com (and subdomains), 10.0.0.0/8, host:port (default: NO_PROXY)",
  },
  ca: { type: "string", requiresArg: true, group: GROUP_ACCESS, describe: "<file> extra trusted CA certificates (PEM) for HTTPS" },
  insecure: { type: "boolean", group: GROUP_ACCESS, describe: "skip TLS certificate checks (warns on stderr)" },
  retries: {
    type: "string",
    requiresArg: true,
    group: GROUP_RETRIES,
    describe: "<n> attempts without progress before a range fails, 0..1000 (default 5)",
  },
  timeout: { type: "string", requiresArg: true, group: GROUP_RETRIES, describe: "<seconds> connect, response-header and idle-read timeout (default 30)" },
  checksum: {
    type: "string",
    requiresArg: true,
    group: GROUP_VERIFICATION,
    describe:
      "<algo=hex> verify sha256=, sha384=, sha512=, sha1= or md5= (sha-256=, sha256: too) or SRI sha256-/sha384-/sha512-<base64> before finishing; several tokens: the strongest decides",
  },
  "checksum-file": {
    type: "string",
    requiresArg: true,
    group: GROUP_VERIFICATION,
    describe:
      "<file|url> verify against a sha256sum/shasum file (\"<hex>  name\", \"<hex> *name\", BSD \"SHA256 (name) = <hex>\"); the entry is the output's name, else the URL's; one file serves a whole -i list",
  },
  cache: {
    type: "string",
    group: GROUP_VERIFICATION,
    describe:
      "[dir] with --checksum or --checksum-file: a file of that digest in the cache is copied to the output with no request; verified downloads enter it (default dir $XDG_CACHE_HOME/rangeget, else ~/.cache/rangeget)",
  },
  json: { type: "boolean", group: GROUP_FORMAT, describe: "one JSON result per file on stdout" },
  stats: { type: "boolean", group: GROUP_FORMAT, describe: "print requests by status, retries and latency p50/p95/p99" },
  quiet: { alias: "q", type: "boolean", group: GROUP_FORMAT, describe: "no progress output (--progress none), no notes, no batch summary" },
  progress: {
    type: "string",
    requiresArg: true,
    group: GROUP_FORMAT,
    describe:
      "<kind> bar (default on a terminal), plain (a line every 10 s; default otherwise), json (one JSON event a line: start, progress, retry, rescue, hedge, changed, finish, error; schema v1 in README) or none",
  },
  "progress-fd": {
    type: "string",
    requiresArg: true,
    group: GROUP_FORMAT,
    describe: "<n> write progress to file descriptor n instead of stderr (e.g. --progress json --progress-fd 3 3>events.jsonl)",
  },
  verbose: {
    alias: "v",
    type: "boolean",
    group: GROUP_FORMAT,
    describe: "each request and answer (Range, status, Content-Range/Length), the verdict on it, redirects and retries with their reason and delay, on stderr; secrets shown as ***",
  },
  config: {
    type: "string",
    requiresArg: true,
    group: GROUP_DEFAULTS,
    describe: "<file> defaults, one long option a line (\"connections = 16\"); default $XDG_CONFIG_HOME/rangeget/config",
  },
  "no-config": { type: "boolean", group: GROUP_DEFAULTS, describe: "ignore the config file and RANGEGET_* variables" },
  help: { alias: "h", type: "boolean", group: GROUP_FORMAT, describe: "show this help" },
  version: { type: "boolean", group: GROUP_FORMAT, describe: "show the version" },
} satisfies Record<string, Options>;

/**
 * What a config file and `RANGEGET_*` variables may set: every option except those
 * that name one run's work or choose the defaults themselves.
 */
export const CONFIGURABLE: ConfigurableOptions = (() => {
  const commandLineOnly = new Set(["output", "extract", "input-file", "shard", "mirror", "checksum", "checksum-file", "progress-fd", "config", "no-config", "help", "version"]);
  const kinds = new Map<string, OptionKind>();
  for (const [name, option] of Object.entries(OPTIONS)) {
    if (commandLineOnly.has(name)) continue;
    kinds.set(name, name === "header" ? "list" : option.type === "boolean" ? "boolean" : "string");
  }
  return { kinds, commandLineOnly };
})();

/** Written out by us, not by yargs: yargs wraps a long command line into what reads as another example. */
const EXAMPLES: [command: string, what: string][] = [
  ["rangeget -c 16 https://example.com/big.iso", "16 connections; run it again to resume"],
  ["rangeget --checksum sha256=<hex> https://host/a.img", "verified before the file appears"],
  ["rangeget -i urls.txt -j 2 -d downloads --json", "a list, 2 at a time, JSON results; re-run to resume"],
  ["rangeget --continue -o big.iso https://host/big.iso", "finish a big.iso that another tool left partial"],
  ["rangeget -i urls.txt --shard 3/8", "machine 3 (from 0) of 8 takes its share of the list"],
  ["rangeget -o - https://host/a.tar | tar x", "the bytes in order on stdout, fetched in parallel"],
  ["rangeget --extract out/ https://host/a.tar.gz", "unpacked while it downloads"],
];

/**
 * A yargs parser for rangeget's options that throws `UsageError` (one line, flags
 * named as typed) instead of printing and exiting, with help wrapped to `columns`
 * (at most 100). `--help` and `--version` are parsed as plain switches: the caller answers them.
 */
export function buildParser(columns: number | undefined) {
  return hideTypesInHelp(
    yargs()
      .scriptName("rangeget")
      .usage(
        "Usage: $0 [options] <url...>\n\nDownload files over HTTP(S) with parallel ranged connections; run the same command again to resume. " +
          "Defaults come from the config file and RANGEGET_<OPTION> variables (see --config); flags win.",
      )
      // Our own --help and --version: yargs's would print and exit on its own.
      .help(false)
      .version(false)
      .exitProcess(false)
      .completion("completion", "print a bash/zsh completion script (see README)", withoutDashedLetters)
      .parserConfiguration({
        // A URL like 123 must stay a string; `--no-json` would be a second spelling nobody documented.
        "parse-positional-numbers": false,
        "boolean-negation": false,
        // Unknown-option errors would otherwise name every flag twice (foo-bar, fooBar).
        "camel-case-expansion": false,
      })
      .strictOptions()
      .fail((message: string | null, error: Error | undefined) => {
        throw new UsageError(rewordYargsMessage(message ?? error?.message ?? "invalid arguments"));
      })
      .options(OPTIONS)
      .wrap(Math.min(columns ?? 100, 100)),
  );
}

/**
 * `--cache` takes an optional directory, so `--cache https://host/f` would make the URL
 * the directory: a bare `--cache` followed by a URL (or by nothing) is read as
 * `--cache=` (the default directory) and the URL stays a URL.
 */
export function withBareCacheFlag(argv: readonly string[]): string[] {
  return argv.map((arg, index) => {
    const next = argv[index + 1];
    return arg === "--cache" && (next === undefined || /^https?:\/\//i.test(next)) ? "--cache=" : arg;
  });
}

/** yargs offers a one-letter alias as `--c` after `--`; only `-c` is an option. */
const withoutDashedLetters: FallbackCompletionFunction = (_current, _argv, completeAsYargsDoes, done) => {
  completeAsYargsDoes((_error, completions) => done((completions ?? []).filter((word) => !/^--[^-:](:|$)/.test(word))));
};

/** Each example's purpose, then the whole command on a line of its own, never broken. */
export function formatExamples(): string {
  return ["Examples:", ...EXAMPLES.flatMap(([command, what]) => [`  ${what}:`, `    ${command}`])].join("\n");
}

/**
 * `[string]` after every option tells a reader nothing the description does not.
 * @types/yargs (17) lacks yargs 18's `usageConfiguration`, hence the cast.
 */
function hideTypesInHelp<T>(parser: Argv<T>): Argv<T> {
  type WithUsageConfiguration = Argv<T> & { usageConfiguration(config: { "hide-types": boolean }): Argv<T> };
  return (parser as WithUsageConfiguration).usageConfiguration({ "hide-types": true });
}

/** yargs's messages name options without dashes; ours name them as typed. */
function rewordYargsMessage(message: string): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  if (unknown) {
    const names = (unknown[1] ?? "").split(", ").map(asFlag);
    return `unknown option ${names.join(", ")}`;
  }
  const missing = /^Not enough arguments following: (.*)$/.exec(message);
  if (missing) return `option ${asFlag(missing[1] ?? "")} needs a value`;
  return message;
}

function asFlag(name: string): string {
  return name.length === 1 ? `-${name}` : `--${name}`;
}
