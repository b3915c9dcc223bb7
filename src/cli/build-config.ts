/**
 * From the layered options to a validated `CliConfig`: each option's value parsed, the
 * options that cannot go together refused (`-o -` and `--extract` with what a stream
 * cannot do, `--continue` with `--force`), the `--ca` file, netrc and cookies loaded.
 */
import { combineCredentialSources, type CredentialSource } from "../credentials.js";
import { UsageError } from "../errors.js";
import type { DownloadAllOptions } from "../types.js";
import { loadCookies, loadNetrc, type AccessEnvironment } from "./access.js";
import { parseHeaders } from "./headers.js";
import { addMirrors, collectItems, rejectSharedOutputs, shareOfItems, type CliItem, type ItemsEnvironment } from "./items.js";
import { locatedAsync, located, type LayeredArgs } from "./layers.js";
import { allStrings, lastString, type ParsedArgs } from "./parsed-args.js";
import { readUserFile } from "./user-file.js";
import { requireNonEmpty, VALUE_PARSERS, type ProgressKind } from "./values.js";

/** The download options the command line sets; callbacks and the signal are main's. */
export type CliDownloadOptions = Omit<DownloadAllOptions, "signal" | "onProgress" | "onEvent" | "onTrace" | "onFileEnd" | "onWarning" | "dispatcher">;

/** Everything a download run needs, validated. */
export interface CliConfig {
  items: CliItem[];
  options: CliDownloadOptions;
  /** `-o -`: the file goes to stdout, in order (one URL; no `.part`, no resume). */
  stdout: boolean;
  json: boolean;
  stats: boolean;
  quiet: boolean;
  /** `--progress` as given (`-q` alone means none); `undefined`: bar on a terminal, else plain. */
  progress: ProgressKind | undefined;
  /** `--progress-fd`: progress goes to this file descriptor instead of stderr. */
  progressFd: number | undefined;
  /** `-v`: requests, answers, verdicts and retries on stderr. */
  verbose: boolean;
  /** One-line warnings for stderr (e.g. `--insecure`), printed even with `-q`. */
  warnings: string[];
  /** One-line notes for stderr that `-q` silences (which share of a list this is). */
  notes: string[];
  /** A list (`-i`) or several URLs: the run ends with a summary line. */
  batch: boolean;
}

/** What building the config may read: injected so tests need no files, stdin or home directory. */
export interface BuildEnvironment extends AccessEnvironment, ItemsEnvironment {
  /** Whether stdout is a terminal: `-o -` refuses to write a binary file to one. */
  stdoutIsTTY?: boolean;
}

/**
 * Turns the layered options into a run: the items, each option's value checked, the
 * option pairs that cannot go together refused, `--ca`, netrc and cookies read.
 * Throws `UsageError` with one line (prefixed with the config line or variable a bad
 * default came from) before any network access.
 */
export async function buildConfig({ parsed, origins }: LayeredArgs, env: BuildEnvironment): Promise<CliConfig> {
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
  addMirrors(items, allStrings(parsed, "mirror"));
  // On the whole list, so every machine of a sharded run refuses the same list.
  await rejectSharedOutputs(items, dir, env);
  const notes: string[] = [];
  if (shardText !== undefined) {
    if (inputFile === undefined) throw new UsageError("--shard splits an -i list; give the list with -i <file>");
    const share = shareOfItems(items, shardText);
    items = share.items;
    notes.push(share.note);
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
  const checksumFile = lastString(parsed, "checksum-file");
  if (checksumFile !== undefined) {
    if (checksumText !== undefined) throw new UsageError("--checksum and --checksum-file both give the digest to verify; give one of them");
    options.checksumFile = requireNonEmpty(checksumFile, "--checksum-file");
  }
  set("user-agent", (chosen) => (options.userAgent = chosen));
  set("max-connections-per-host", (chosen) => (options.maxConnectionsPerHost = chosen));
  set("stream-window", (chosen) => (options.streamWindow = chosen));
  set("proxy", (chosen) => (options.proxy = chosen));
  const noProxy = lastString(parsed, "noproxy");
  if (noProxy !== undefined) options.noProxy = noProxy;
  if (parsed["if-changed"] === true) options.ifChanged = true;
  if (parsed.force === true) options.force = true;
  if (parsed["no-hedge"] === true) options.noHedge = true;
  if (parsed.continue === true) {
    if (options.force) throw new UsageError("--continue keeps a partial output and --force discards it; give one of them");
    options.continue = true;
  }
  if (extract !== undefined) options.extract = requireNonEmpty(extract, "--extract");
  const cache = lastString(parsed, "cache");
  if (cache !== undefined) options.cache = cache.trim() === "" ? true : cache;
  const headerLines = allStrings(parsed, "header");
  if (headerLines.length > 0) options.headers = parseHeaders(headerLines);
  const ca = value("ca");
  if (ca !== undefined) options.ca = await locatedAsync(ca.where, () => readCaFile(ca.text, env));

  let progress: ProgressKind | undefined;
  let progressFd: number | undefined;
  set("progress", (chosen) => (progress = chosen));
  set("progress-fd", (chosen) => (progressFd = chosen));
  if (progressFd === 1 && (toStdout || parsed.json === true)) {
    throw new UsageError(`--progress-fd 1 is stdout, where ${toStdout ? "-o - writes the file" : "--json writes its results"}; give another descriptor`);
  }

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
    progress: progress ?? (parsed.quiet === true ? "none" : undefined),
    progressFd,
    verbose: parsed.verbose === true,
    warnings,
    notes,
    batch: inputFile !== undefined || parsed._.length > 1,
  };
}

/** The netrc (unless `--no-netrc`) and the cookie jar (with `--load-cookies`) as one source. */
async function loadCredentials(
  parsed: ParsedArgs,
  origins: Map<string, string>,
  env: BuildEnvironment,
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
  if (lastString(parsed, "cache") !== undefined && (toStdout || extract !== undefined)) {
    throw new UsageError(`--cache keeps finished files; it cannot serve ${toStdout ? "-o -" : "--extract"}`);
  }
  if (streamWindow !== undefined && !toStdout && extract === undefined) {
    throw new UsageError("--stream-window applies only to -o - and --extract");
  }
}

async function readCaFile(path: string, env: BuildEnvironment): Promise<string> {
  const text = await readUserFile(path, "--ca file", env.readTextFile);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--ca file ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return text;
}
