/**
 * The command line's entry: argv to a command (a download run, help, the version, or
 * completions). Reading the defaults (layers.ts) and building the run (build-config.ts)
 * happen only for a download.
 */
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { text as streamText } from "node:stream/consumers";
import { nearestExistingDirectory, volumeOf } from "../platform.js";
import { VERSION } from "../version.js";
import { buildConfig, type BuildEnvironment, type CliConfig } from "./build-config.js";
import { buildParser, formatExamples, withBareCacheFlag } from "./flags.js";
import { applySettings, readSettings, type SettingsEnvironment } from "./layers.js";

/** What the command line asks for: a download run, or text to print and exit 0. */
export type CliCommand =
  | { kind: "download"; config: CliConfig }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string }
  /** `rangeget completion` (the script) or a shell asking for completions: `text` goes to stdout as it is. */
  | { kind: "completion"; text: string };

/** What parsing may read: injected so tests need no files, stdin, environment or home directory. */
export interface ArgsEnvironment extends BuildEnvironment, SettingsEnvironment {
  /** Terminal width for `--help`. */
  columns?: number;
}

const defaultEnvironment: ArgsEnvironment = {
  readTextFile: (path) => readFile(path, "utf8"),
  readStdin: () => streamText(process.stdin),
  fileMode: async (path) => (await stat(path)).mode,
  namesFoldCase: async (directory) => (await volumeOf(await nearestExistingDirectory(directory))).caseInsensitive,
  variables: process.env,
  homeDir: homedir(),
};

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
  const parsed = await parser.parseAsync(withBareCacheFlag(argv), {}, (_error, _argv, output) => {
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
