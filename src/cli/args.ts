import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { text as streamText } from "node:stream/consumers";
import yargs, { type Argv, type FallbackCompletionFunction, type Options } from "yargs";
import { combineCredentialSources, type CredentialSource } from "../credentials.js";
import { UsageError } from "../errors.js";
import { parseHttpUrl } from "../options.js";
import { redactUrl } from "../redact.js";
import { parseShard, takeShard } from "../shard.js";
import type { DownloadAllOptions } from "../types.js";
import { VERSION } from "../version.js";
import { loadCookies, loadNetrc } from "./access.js";
import {
  defaultConfigPath,
  parseConfigFile,
  settingsFromEnvironment,
  type ConfigSetting,
  type ConfigurableOptions,
  type OptionKind,
} from "./config.js";
import { headerName, parseHeaders } from "./headers.js";
import { parseInputFile } from "./input-file.js";
import { allStrings, lastString, type ParsedArgs } from "./parsed-args.js";
import { isMissingFile, readUserFile } from "./user-file.js";
import { requireNonEmpty, VALUE_PARSERS } from "./values.js";

/** The download options the command line sets; callbacks and the signal are main's. */
export type CliDownloadOptions = Omit<DownloadAllOptions, "signal" | "onProgress" | "onFileEnd" | "onWarning" | "dispatcher">;

/** One file to fetch, from the arguments or a line of the `-i` file. */
export interface CliItem {
  url: string;
  /** Other copies of the same file. */
  mirrors?: string[];
  output?: string;
}

/** Everything a download run needs, validated. */
export interface CliConfig {
  items: CliItem[];
  options: CliDownloadOptions;
  /** `-o -`: the file goes to stdout, in order (one URL; no `.part`, no resume). */
  stdout: boolean;
  json: boolean;
  stats: boolean;
  quiet: boolean;
  /** One-line warnings for stderr (e.g. `--insecure`), printed even with `-q`. */
  warnings: string[];
  /** One-line notes for stderr that `-q` silences (which share of a list this is). */
  notes: string[];
  /** A list (`-i`) or several URLs: the run ends with a summary line. */
  batch: boolean;
}

export type CliCommand =
  | { kind: "download"; config: CliConfig }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string }
  /** `rangeget completion` (the script) or a shell asking for completions: `text` goes to stdout as it is. */
  | { kind: "completion"; text: string };

/** What parsing may read: injected so tests need no files, stdin, environment or home directory. */
export interface ArgsEnvironment {
  readTextFile: (path: string) => Promise<string>;
  readStdin: () => Promise<string>;
  /** The `stat` mode of a file (the netrc permission check). */
  fileMode: (path: string) => Promise<number>;
  /** `RANGEGET_*` defaults and `XDG_CONFIG_HOME`. */
  variables: NodeJS.ProcessEnv;
  /** Where `~/.netrc` and `~/.config` are. */
  homeDir: string;
  /** Terminal width for `--help`. */
  columns?: number;
  /** Whether stdout is a terminal: `-o -` refuses to write a binary file to one. */
  stdoutIsTTY?: boolean;
}

const defaultEnvironment: ArgsEnvironment = {
  readTextFile: (path) => readFile(path, "utf8"),
  readStdin: () => streamText(process.stdin),
  fileMode: async (path) => (await stat(path)).mode,
  variables: process.env,
  homeDir: homedir(),
};

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
  ca: { type: "string", requiresArg: true, group: GROUP_ACCESS, describe: "<file> extra trusted CA certificates (PEM) for HTTPS" },
  insecure: { type: "boolean", group: GROUP_ACCESS, describe: "skip TLS certificate checks (warns on stderr)" },
  retries: {
    type: "string",
    requiresArg: true,
    group: GROUP_RETRIES,
    describe: "<n> attempts without progress before a range fails (default 5)",
  },
  timeout: { type: "string", requiresArg: true, group: GROUP_RETRIES, describe: "<seconds> connect, response-header and idle-read timeout (default 30)" },
  checksum: {
    type: "string",
    requiresArg: true,
    group: GROUP_VERIFICATION,
    describe: "<algo=hex> verify sha256=, sha512=, sha1= or md5= before finishing",
  },
  json: { type: "boolean", group: GROUP_FORMAT, describe: "one JSON result per file on stdout" },
  stats: { type: "boolean", group: GROUP_FORMAT, describe: "print requests by status, retries and latency p50/p95/p99" },
  quiet: { alias: "q", type: "boolean", group: GROUP_FORMAT, describe: "no progress output" },
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
  const commandLineOnly = new Set(["output", "extract", "input-file", "shard", "mirror", "checksum", "config", "no-config", "help", "version"]);
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
  ["rangeget -i urls.txt -j 2 -d downloads --json", "a list, 2 files at a time, JSON results; run it again after an interruption"],
  ["rangeget --continue -o big.iso https://host/big.iso", "finish a big.iso that curl, wget or a browser left partial"],
  ["rangeget -i urls.txt --shard 3/8", "machine 3 (counting from 0) of 8 takes its share of the list"],
  ["rangeget -o - https://host/a.tar | tar x", "the bytes in order on stdout, fetched in parallel"],
  ["rangeget --extract out/ https://host/a.tar.gz", "unpacked while it downloads"],
];

/**
 * Turns argv (without `node` and the script) into a validated command. Throws
 * `UsageError` with one line for anything wrong, before any network access.
 * Flags win over `RANGEGET_*` variables, which win over the config file.
 */
export async function parseArgs(argv: string[], environment: Partial<ArgsEnvironment> = {}): Promise<CliCommand> {
  const env: ArgsEnvironment = { ...defaultEnvironment, ...environment };
  const parser = buildParser(env.columns);
  let captured = "";
  // With a callback, yargs hands over what it would print (completions) instead of printing it.
  const parsed = await parser.parseAsync(argv, {}, (_error, _argv, output) => {
    captured = output;
  });

  if (parsed["get-yargs-completions"] !== undefined || parsed._.includes("completion")) {
    return { kind: "completion", text: captured.replace(/\n$/, "") };
  }
  if (parsed.help === true) return { kind: "help", text: `${await parser.getHelp()}\n\n${formatExamples()}` };
  if (parsed.version === true) return { kind: "version", text: VERSION };
  const settings = parsed["no-config"] === true ? [] : await readSettings(parsed, env);
  return { kind: "download", config: await buildConfig(applySettings(parsed, settings), env) };
}

function buildParser(columns: number | undefined) {
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

/** yargs offers a one-letter alias as `--c` after `--`; only `-c` is an option. */
const withoutDashedLetters: FallbackCompletionFunction = (_current, _argv, completeAsYargsDoes, done) => {
  completeAsYargsDoes((_error, completions) => done((completions ?? []).filter((word) => !/^--[^-:](:|$)/.test(word))));
};

/** Each example's purpose, then the whole command on a line of its own, never broken. */
function formatExamples(): string {
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

/** Parsed flags with the defaults filled in, and where each default came from. */
interface LayeredArgs {
  parsed: ParsedArgs;
  /** Option name -> `config file <path> line <n>` or `environment variable <NAME>`, for error messages. */
  origins: Map<string, string>;
}

/**
 * The config file's settings, then the environment's (later ones win), each value
 * checked now: a bad line is reported even when a flag overrides it today.
 */
async function readSettings(parsed: ParsedArgs, env: ArgsEnvironment): Promise<ConfigSetting[]> {
  const named = lastString(parsed, "config");
  const path = named ?? defaultConfigPath(env.variables, env.homeDir);
  let text: string | undefined;
  if (named !== undefined) {
    text = await readUserFile(named, "config file", env.readTextFile);
  } else {
    try {
      text = await env.readTextFile(path);
    } catch (error) {
      // No config file is the usual case; one that exists but cannot be read is worth saying.
      if (!isMissingFile(error)) text = await readUserFile(path, "config file", env.readTextFile);
    }
  }
  const fromFile = text === undefined ? [] : parseConfigFile(text, path, CONFIGURABLE);
  const settings = [...fromFile, ...settingsFromEnvironment(env.variables, CONFIGURABLE)];
  for (const setting of settings) {
    const parse: ((text: string) => unknown) | undefined = (VALUE_PARSERS as Record<string, (text: string) => unknown>)[setting.name];
    if (parse !== undefined) located(setting.where, () => parse(String(setting.value)));
    if (setting.name === "header") located(setting.where, () => parseHeaders([String(setting.value)]));
  }
  return settings;
}

/**
 * Fills in what the flags left unset. `-H` lines add up across the layers, except
 * that a header named on a higher layer replaces the lower layers' header of that
 * name: a config file's `Authorization` gives way to the one typed on the command line.
 */
function applySettings(flags: ParsedArgs, settings: readonly ConfigSetting[]): LayeredArgs {
  const parsed: ParsedArgs = { ...flags };
  const origins = new Map<string, string>();
  const headerLayers: string[][] = [[], []];
  for (const setting of settings) {
    if (setting.name === "header") {
      headerLayers[setting.layer === "file" ? 0 : 1]!.push(String(setting.value));
    } else if (flags[setting.name] === undefined) {
      parsed[setting.name] = setting.value;
      origins.set(setting.name, setting.where);
    }
  }
  const headers = [...headerLayers, allStrings(flags, "header")].reduce((lower, higher) => {
    const replaced = new Set(higher.map(headerName));
    return [...lower.filter((line) => !replaced.has(headerName(line))), ...higher];
  }, []);
  if (headers.length > 0) parsed["header"] = headers;
  return { parsed, origins };
}

/** Runs `parse`, prefixing a usage error with where the value came from (a config line), if not a flag. */
function located<T>(where: string | undefined, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (where !== undefined && error instanceof UsageError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
}

async function locatedAsync<T>(where: string | undefined, parse: () => Promise<T>): Promise<T> {
  try {
    return await parse();
  } catch (error) {
    if (where !== undefined && error instanceof UsageError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
}

async function buildConfig({ parsed, origins }: LayeredArgs, env: ArgsEnvironment): Promise<CliConfig> {
  const output = lastString(parsed, "output");
  const dir = lastString(parsed, "dir");
  const checksumText = lastString(parsed, "checksum");
  const shardText = lastString(parsed, "shard");
  const inputFile = lastString(parsed, "input-file");
  let items = await collectItems(parsed, env);

  if (output !== undefined && items.length > 1) {
    throw new UsageError(`-o/--output names one file but ${items.length} URLs were given; use -d/--dir for several`);
  }
  if (checksumText !== undefined && items.length > 1) {
    throw new UsageError(`--checksum verifies one file but ${items.length} URLs were given`);
  }
  const toStdout = output === "-";
  const extract = lastString(parsed, "extract");
  const streamWindow = lastString(parsed, "stream-window");
  checkStreamModes({ parsed, items, toStdout, extract, streamWindow, stdoutIsTTY: env.stdoutIsTTY === true });
  if (output !== undefined && !toStdout && items[0] !== undefined) items[0].output = requireNonEmpty(output, "-o/--output");
  const mirrors = allStrings(parsed, "mirror");
  if (mirrors.length > 0) {
    if (items.length > 1) {
      throw new UsageError(`--mirror names copies of one file but ${items.length} URLs were given; in an -i file, put a file's copies on its line, tab-separated`);
    }
    for (const mirror of mirrors) parseHttpUrl(mirror);
    if (items[0] !== undefined) items[0].mirrors = [...(items[0].mirrors ?? []), ...mirrors];
  }
  // On the whole list, so every machine of a sharded run refuses the same list.
  rejectSharedOutputs(items, dir);
  const notes: string[] = [];
  if (shardText !== undefined) {
    if (inputFile === undefined) throw new UsageError("--shard splits an -i list; give the list with -i <file>");
    const shard = parseShard(shardText);
    const whole = items.length;
    // An item is its URL and output name: mirrors can be added later without moving it.
    items = takeShard(items, shard, (item) => `${item.url}\n${item.output ?? ""}`);
    notes.push(`shard ${shard.index}/${shard.count}: ${items.length} of ${whole} file${whole === 1 ? "" : "s"}`);
  }

  const options: CliDownloadOptions = {};
  const value = (name: string): { text: string; where: string | undefined } | undefined => {
    const text = lastString(parsed, name);
    return text === undefined ? undefined : { text, where: origins.get(name) };
  };
  const set = <K extends keyof typeof VALUE_PARSERS>(name: K, apply: (value: ReturnType<(typeof VALUE_PARSERS)[K]>) => void): void => {
    const given = value(name);
    if (given !== undefined) apply(located(given.where, () => VALUE_PARSERS[name](given.text) as ReturnType<(typeof VALUE_PARSERS)[K]>));
  };
  set("dir", (chosen) => (options.dir = chosen));
  set("connections", (chosen) => (options.connections = chosen));
  set("jobs", (chosen) => (options.jobs = chosen));
  set("min-split", (chosen) => (options.minSplit = chosen));
  set("retries", (chosen) => (options.retries = chosen));
  set("timeout", (chosen) => (options.timeout = chosen));
  set("limit-rate", (chosen) => (options.limitRate = chosen));
  set("checksum", (chosen) => (options.checksum = chosen));
  set("user-agent", (chosen) => (options.userAgent = chosen));
  set("max-connections-per-host", (chosen) => (options.maxConnectionsPerHost = chosen));
  set("stream-window", (chosen) => (options.streamWindow = chosen));
  if (parsed["if-changed"] === true) options.ifChanged = true;
  if (parsed.force === true) options.force = true;
  if (parsed.continue === true) {
    if (options.force) throw new UsageError("--continue keeps a partial output and --force discards it; give one of them");
    options.continue = true;
  }
  if (extract !== undefined) options.extract = requireNonEmpty(extract, "--extract");
  const headerLines = allStrings(parsed, "header");
  if (headerLines.length > 0) options.headers = parseHeaders(headerLines);
  const ca = value("ca");
  if (ca !== undefined) options.ca = await locatedAsync(ca.where, () => readCaFile(ca.text, env));

  const warnings: string[] = [];
  const credentials = await loadCredentials(parsed, origins, env, warnings);
  if (credentials !== undefined) options.credentials = credentials;
  if (parsed.insecure === true) {
    options.insecure = true;
    warnings.push("warning: --insecure: TLS certificates are not checked, so anyone on the network path can read or alter the download");
  }

  return {
    items,
    options,
    stdout: toStdout,
    json: parsed.json === true,
    stats: parsed.stats === true,
    quiet: parsed.quiet === true,
    warnings,
    notes,
    batch: inputFile !== undefined || parsed._.length > 1,
  };
}

/** The netrc (unless `--no-netrc`) and the cookie jar (with `--load-cookies`) as one source. */
async function loadCredentials(
  parsed: ParsedArgs,
  origins: Map<string, string>,
  env: ArgsEnvironment,
  warnings: string[],
): Promise<CredentialSource | undefined> {
  const sources: CredentialSource[] = [];
  if (parsed["no-netrc"] !== true) {
    const named = lastString(parsed, "netrc-file");
    const netrc = await locatedAsync(origins.get("netrc-file"), () => loadNetrc(named, env));
    if (netrc.warning !== undefined) warnings.push(`warning: ${netrc.warning}`);
    if (netrc.credentials !== undefined) sources.push(netrc.credentials);
  }
  const cookiesFile = lastString(parsed, "load-cookies");
  if (cookiesFile !== undefined) sources.push(await locatedAsync(origins.get("load-cookies"), () => loadCookies(cookiesFile, env)));
  return sources.length <= 1 ? sources[0] : combineCredentialSources(sources);
}

/**
 * `-o -` and `--extract` fetch one file into a stream, not a file: refuse what cannot
 * go with that, before any request. stdout is refused when it is a terminal (curl
 * does the same for binary output: it would fill the screen with noise).
 */
function checkStreamModes(modes: {
  parsed: ParsedArgs;
  items: CliItem[];
  toStdout: boolean;
  extract: string | undefined;
  streamWindow: string | undefined;
  stdoutIsTTY: boolean;
}): void {
  const { parsed, items, toStdout, extract, streamWindow } = modes;
  if (extract !== undefined) {
    if (items.length > 1) throw new UsageError(`--extract unpacks one archive but ${items.length} URLs were given`);
    if (lastString(parsed, "output") !== undefined) throw new UsageError("--extract and -o/--output both say where the download goes; choose one");
  }
  if (toStdout) {
    if (lastString(parsed, "input-file") !== undefined) throw new UsageError("-o - writes one file to stdout; it cannot be used with -i/--input-file");
    if (items.length > 1) throw new UsageError(`-o - writes one file to stdout but ${items.length} URLs were given`);
    if (parsed.json === true) throw new UsageError("-o - sends the file to stdout, where --json would go; drop --json");
    if (parsed["if-changed"] === true) throw new UsageError("-o - keeps no file to compare with; --if-changed needs one");
    if (modes.stdoutIsTTY) throw new UsageError("-o - would write the file to the terminal; pipe it into a program or redirect it to a file");
  }
  if (streamWindow !== undefined && !toStdout && extract === undefined) {
    throw new UsageError("--stream-window applies only to -o - and --extract");
  }
}

async function collectItems(parsed: ParsedArgs, env: ArgsEnvironment): Promise<CliItem[]> {
  const items: CliItem[] = parsed._.map((positional) => {
    const url = String(positional);
    parseHttpUrl(url);
    return { url };
  });
  const inputFile = lastString(parsed, "input-file");
  const source = inputFile === "-" ? "stdin" : inputFile;
  if (inputFile !== undefined) {
    const text = inputFile === "-" ? await env.readStdin() : await readUserFile(inputFile, "input file", env.readTextFile);
    for (const entry of parseInputFile(text, source)) {
      items.push({
        url: entry.url,
        ...(entry.mirrors.length > 0 ? { mirrors: entry.mirrors } : {}),
        ...(entry.output === undefined ? {} : { output: entry.output }),
      });
    }
  }
  if (items.length === 0) throw new UsageError(source === undefined ? "no URL given" : `no URL in ${source}`);
  return items;
}

/**
 * Two items writing one path would meet at the lock file and one would fail after the
 * other had started; saying so up front is kinder. Only explicit names can be checked
 * here: names from the server are known after the first response.
 */
function rejectSharedOutputs(items: CliItem[], dir: string | undefined): void {
  const seen = new Map<string, string>();
  for (const item of items) {
    if (item.output === undefined) continue;
    const path = resolve(dir ?? ".", item.output);
    const previous = seen.get(path);
    if (previous !== undefined) {
      throw new UsageError(`${redactUrl(previous)} and ${redactUrl(item.url)} would both be saved as ${item.output}; give each its own output name`);
    }
    seen.set(path, item.url);
  }
}

async function readCaFile(path: string, env: ArgsEnvironment): Promise<string> {
  const text = await readUserFile(path, "--ca file", env.readTextFile);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--ca file ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return text;
}
