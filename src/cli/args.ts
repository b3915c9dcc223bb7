import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import yargs, { type Argv } from "yargs";
import { parseChecksum } from "../checksum.js";
import { UsageError } from "../errors.js";
import { redactUrl } from "../redact.js";
import { MIN_WINDOW_BYTES } from "../ordered-sink.js";
import { parseRate, parseSize } from "../size.js";
import type { DownloadAllOptions } from "../types.js";
import { parseInputFile } from "./input-file.js";
import { parseHttpUrl } from "../options.js";

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
  /** One-line warnings for stderr (e.g. `--insecure`). */
  warnings: string[];
}

export type CliCommand =
  | { kind: "download"; config: CliConfig }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string };

/** What parsing may read: injected so tests need no files or stdin. */
export interface ArgsEnvironment {
  readTextFile: (path: string) => Promise<string>;
  readStdin: () => Promise<string>;
  /** Terminal width for `--help`. */
  columns?: number;
  /** Whether stdout is a terminal: `-o -` refuses to write a binary file to one. */
  stdoutIsTTY?: boolean;
}

const defaultEnvironment: ArgsEnvironment = {
  readTextFile: (path) => readFile(path, "utf8"),
  readStdin: () => readText(process.stdin),
};

/** Reads a stream to its end as UTF-8: `-i -` takes the whole list before starting. */
export async function readText(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const GROUP_OUTPUT = "Output:";
const GROUP_CONNECTIONS = "Connections:";
const GROUP_RETRIES = "Retries and time:";
const GROUP_VERIFICATION = "Verification:";
const GROUP_FORMAT = "Output format:";

/**
 * Turns argv (without `node` and the script) into a validated command. Throws
 * `UsageError` with one line for anything wrong, before any network access.
 */
export async function parseArgs(argv: string[], environment: Partial<ArgsEnvironment> = {}): Promise<CliCommand> {
  const env: ArgsEnvironment = { ...defaultEnvironment, ...environment };
  const parser = buildParser(argv, env.columns);
  const parsed = await parser.parseAsync();

  if (parsed.help === true) return { kind: "help", text: await parser.getHelp() };
  if (parsed.version === true) return { kind: "version", text: await readVersion(env) };
  return { kind: "download", config: await buildConfig(parsed, env) };
}

function buildParser(argv: string[], columns: number | undefined) {
  return hideTypesInHelp(
    yargs(argv)
      .scriptName("rangeget")
      .usage("Usage: $0 [options] <url...>\n\nDownload files over HTTP(S) with parallel ranged connections; run the same command again to resume.")
      // Our own --help and --version: yargs's would print and exit on its own.
      .help(false)
      .version(false)
      .exitProcess(false)
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
      .option("output", {
        alias: "o",
        type: "string",
        requiresArg: true,
        group: GROUP_OUTPUT,
        describe: "<file> output path (one URL only); '-' writes to stdout in order while fetching in parallel (no .part, no resume)",
      })
      .option("extract", {
        type: "string",
        requiresArg: true,
        group: GROUP_OUTPUT,
        describe: "<dir> the file is a tar archive (plain, gzip, zstd): unpack it into <dir> while it downloads (no resume)",
      })
      .option("dir", { alias: "d", type: "string", requiresArg: true, group: GROUP_OUTPUT, describe: "<dir> directory for outputs (default: current directory)" })
      .option("input-file", {
        alias: "i",
        type: "string",
        requiresArg: true,
        group: GROUP_OUTPUT,
        describe: "<file> URLs, one per line: \"<url>[<TAB>mirror...] [output]\"; '#' comments; '-' = stdin",
      })
      .option("mirror", {
        type: "string",
        requiresArg: true,
        group: GROUP_CONNECTIONS,
        describe: "<url> another copy of the same file; ranges are spread over all copies by speed (repeatable)",
      })
      .option("force", { alias: "f", type: "boolean", group: GROUP_OUTPUT, describe: "overwrite an existing output and discard partial state" })
      .option("continue", {
        type: "boolean",
        group: GROUP_OUTPUT,
        describe: "adopt a partial output left by another tool (curl, wget, a browser) and fetch only the rest",
      })
      .option("if-changed", {
        type: "boolean",
        group: GROUP_OUTPUT,
        describe: "re-download an existing output only if the server has a newer one",
      })
      .option("connections", { alias: "c", type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<n> connections per file (default 8, 1..64)" })
      .option("jobs", { alias: "j", type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<n> files downloaded at once (default 4)" })
      .option("min-split", {
        type: "string",
        requiresArg: true,
        group: GROUP_CONNECTIONS,
        describe: "<size> smallest range worth its own connection (default 4MiB)",
      })
      .option("max-connections-per-host", {
        type: "string",
        requiresArg: true,
        group: GROUP_CONNECTIONS,
        describe: "<n> total connections to one host across all files (default 16, or -c when larger)",
      })
      .option("limit-rate", { type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<rate> total download rate cap, e.g. 10M (bytes/s)" })
      .option("stream-window", {
        type: "string",
        requiresArg: true,
        group: GROUP_CONNECTIONS,
        describe: "<size> with -o - or --extract: bytes fetched ahead of the reader (default 2 ranges per connection, at most 64MiB)",
      })
      .option("header", { alias: "H", type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<line> extra request header \"Name: value\", repeatable" })
      .option("ca", { type: "string", requiresArg: true, group: GROUP_CONNECTIONS, describe: "<file> extra trusted CA certificates (PEM) for HTTPS" })
      .option("insecure", { type: "boolean", group: GROUP_CONNECTIONS, describe: "skip TLS certificate checks (warns on stderr)" })
      .option("retries", {
        type: "string",
        requiresArg: true,
        group: GROUP_RETRIES,
        describe: "<n> attempts without progress before a range fails (default 5)",
      })
      .option("timeout", { type: "string", requiresArg: true, group: GROUP_RETRIES, describe: "<seconds> connect, response-header and idle-read timeout (default 30)" })
      .option("checksum", {
        type: "string",
        requiresArg: true,
        group: GROUP_VERIFICATION,
        describe: "<algo=hex> verify sha256=, sha512=, sha1= or md5= before finishing",
      })
      .option("json", { type: "boolean", group: GROUP_FORMAT, describe: "one JSON result per file on stdout" })
      .option("stats", { type: "boolean", group: GROUP_FORMAT, describe: "print requests by status, retries and latency p50/p95/p99" })
      .option("quiet", { alias: "q", type: "boolean", group: GROUP_FORMAT, describe: "no progress output" })
      .option("help", { alias: "h", type: "boolean", group: GROUP_FORMAT, describe: "show this help" })
      .option("version", { type: "boolean", group: GROUP_FORMAT, describe: "show the version" })
      .example("$0 -c 16 https://example.com/big.iso", "16 connections; run it again to resume")
      .example("$0 --checksum sha256=<hex> https://host/a.img", "verified before the file appears")
      .example("$0 -i urls.txt -j 2 -d downloads --json", "a list, 2 files at a time, JSON results; run it again after an interruption")
      .example("$0 --continue -o big.iso https://host/big.iso", "finish a big.iso that curl, wget or a browser left partial")
      .example("$0 -o - https://host/a.tar | tar x", "the bytes in order on stdout, fetched in parallel")
      .example("$0 --extract out/ https://host/a.tar.gz", "unpacked while it downloads")
      .wrap(Math.min(columns ?? 100, 100)),
  );
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

type ParsedArgs = Record<string, unknown> & { _: (string | number)[] };

async function buildConfig(parsed: ParsedArgs, env: ArgsEnvironment): Promise<CliConfig> {
  const output = lastString(parsed, "output");
  const dir = lastString(parsed, "dir");
  const checksumText = lastString(parsed, "checksum");
  const items = await collectItems(parsed, env);

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
  rejectSharedOutputs(items, dir);

  const options: CliDownloadOptions = {};
  if (dir !== undefined) options.dir = requireNonEmpty(dir, "-d/--dir");
  const connections = lastString(parsed, "connections");
  if (connections !== undefined) options.connections = parseInteger(connections, "-c/--connections", 1, 64);
  const jobs = lastString(parsed, "jobs");
  if (jobs !== undefined) options.jobs = parseInteger(jobs, "-j/--jobs", 1, Number.MAX_SAFE_INTEGER);
  const minSplit = lastString(parsed, "min-split");
  if (minSplit !== undefined) options.minSplit = parseMinSplit(minSplit);
  const retries = lastString(parsed, "retries");
  if (retries !== undefined) options.retries = parseInteger(retries, "--retries", 0, Number.MAX_SAFE_INTEGER);
  const timeout = lastString(parsed, "timeout");
  if (timeout !== undefined) options.timeout = parseSeconds(timeout, "--timeout");
  const limitRate = lastString(parsed, "limit-rate");
  if (limitRate !== undefined) options.limitRate = withFlag("--limit-rate", () => parseRate(limitRate));
  if (checksumText !== undefined) options.checksum = withFlag("--checksum", () => parseChecksum(checksumText));
  if (parsed["if-changed"] === true) options.ifChanged = true;
  if (parsed.force === true) options.force = true;
  if (parsed.continue === true) {
    if (options.force) throw new UsageError("--continue keeps a partial output and --force discards it; give one of them");
    options.continue = true;
  }
  const perHost = lastString(parsed, "max-connections-per-host");
  if (perHost !== undefined) {
    options.maxConnectionsPerHost = parseInteger(perHost, "--max-connections-per-host", 1, Number.MAX_SAFE_INTEGER);
  }
  if (extract !== undefined) options.extract = requireNonEmpty(extract, "--extract");
  if (streamWindow !== undefined) options.streamWindow = parseStreamWindow(streamWindow);
  const headerLines = allStrings(parsed, "header");
  if (headerLines.length > 0) options.headers = parseHeaders(headerLines);
  const caPath = lastString(parsed, "ca");
  if (caPath !== undefined) options.ca = await readCaFile(caPath, env);

  const warnings: string[] = [];
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
  };
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

function parseStreamWindow(text: string): number {
  const bytes = parseSize(text, "--stream-window");
  if (bytes < MIN_WINDOW_BYTES) throw new UsageError(`--stream-window must be at least 1MiB, got "${text}"`);
  return bytes;
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
    const text = inputFile === "-" ? await env.readStdin() : await readUserFile(inputFile, "input file", env);
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

// RFC 9110 5.1: field-name = token; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" /
// "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Headers the engine sets itself (ranges, validators, identity encoding) or that undici
 * refuses: a user value would silently corrupt ranged requests or fail every request.
 */
const RESERVED_HEADERS = new Set([
  "range",
  "if-range",
  "accept-encoding",
  "if-none-match",
  "if-modified-since",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

export function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const names = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon).trim();
    const value = colon < 0 ? "" : line.slice(colon + 1).trim();
    if (!HEADER_NAME.test(name)) {
      throw new UsageError(`-H/--header "${line}" is not "Name: value"`);
    }
    if (/[\r\n\0]/.test(value)) {
      throw new UsageError(`-H/--header ${name}: the value must not contain line breaks`);
    }
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) {
      throw new UsageError(`-H/--header ${name} is managed by rangeget and cannot be set`);
    }
    // RFC 9110 5.3: repeated fields combine with commas, except Cookie (RFC 6265 5.4: "; ").
    const key = names.get(lower) ?? name;
    const previous = headers[key];
    headers[key] = previous === undefined ? value : `${previous}${lower === "cookie" ? "; " : ", "}${value}`;
    names.set(lower, key);
  }
  return headers;
}

function parseInteger(text: string, flag: string, min: number, max: number): number {
  const value = /^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
    throw new UsageError(`${flag} must be a whole number ${range}, got "${text}"`);
  }
  return value;
}

function parseSeconds(text: string, flag: string): number {
  const value = /^[0-9]*\.?[0-9]+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${flag} must be a number of seconds greater than 0, got "${text}"`);
  }
  return value;
}

function parseMinSplit(text: string): number {
  const bytes = parseSize(text, "--min-split");
  if (bytes < 1) throw new UsageError(`--min-split must be at least 1 byte, got "${text}"`);
  return bytes;
}

/** The shared parsers do not know which flag they parse; the user needs to. */
function withFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${flag}: ${error.message}`);
    throw error;
  }
}

function requireNonEmpty(text: string, flag: string): string {
  if (text.trim() === "") throw new UsageError(`${flag} must not be empty`);
  return text;
}

async function readCaFile(path: string, env: ArgsEnvironment): Promise<string> {
  const text = await readUserFile(path, "--ca file", env);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--ca file ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return text;
}

async function readUserFile(path: string, what: string, env: ArgsEnvironment): Promise<string> {
  try {
    return await env.readTextFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (error as Error).message;
    throw new UsageError(`cannot read ${what} ${path}: ${reason}`);
  }
}

async function readVersion(env: ArgsEnvironment): Promise<string> {
  // package.json sits two levels up from both src/cli and dist/cli.
  const text = await env.readTextFile(fileURLToPath(new URL("../../package.json", import.meta.url)));
  const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
  return String(version);
}

/** The last value of a scalar option: like curl, a repeated flag overrides the earlier one. */
function lastString(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed[name];
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : String(last);
}

function allStrings(parsed: ParsedArgs, name: string): string[] {
  const value = parsed[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
