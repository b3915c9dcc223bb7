/**
 * Where each option's value comes from: flags win over `RANGEGET_*` variables, which
 * win over the config file. Reads the file, checks every default's value, and fills in
 * what the flags left unset, remembering each default's origin for error messages.
 */
import { UsageError } from "../errors.js";
import { defaultConfigPath, parseConfigFile, settingsFromEnvironment, type ConfigSetting } from "./config.js";
import { CONFIGURABLE } from "./flags.js";
import { headerName, parseHeaders } from "./headers.js";
import { allStrings, lastString, type ParsedArgs } from "./parsed-args.js";
import { isOutOfSight, readUserFile } from "./user-file.js";
import { VALUE_PARSERS } from "./values.js";

/** What reading the defaults may touch: injected so tests need no files or home directory. */
export interface SettingsEnvironment {
  readTextFile: (path: string) => Promise<string>;
  /** `RANGEGET_*` defaults and `XDG_CONFIG_HOME`. */
  variables: NodeJS.ProcessEnv;
  /** Where `~/.config` is. */
  homeDir: string;
}

/** Parsed flags with the defaults filled in, and where each default came from. */
export interface LayeredArgs {
  parsed: ParsedArgs;
  /** Option name -> `config file <path> line <n>` or `environment variable <NAME>`, for error messages. */
  origins: Map<string, string>;
}

/**
 * The config file's settings, then the environment's (later ones win), each value
 * checked now: a bad line is reported even when a flag overrides it today. The file
 * is the one `--config` names (which must be readable), else the default path (which
 * may be absent). Throws `UsageError` naming the file line or variable at fault.
 */
export async function readSettings(parsed: ParsedArgs, env: SettingsEnvironment): Promise<ConfigSetting[]> {
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
      if (!(await isOutOfSight(path, error))) text = await readUserFile(path, "config file", env.readTextFile);
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
export function applySettings(flags: ParsedArgs, settings: readonly ConfigSetting[]): LayeredArgs {
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
export function located<T>(where: string | undefined, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (where !== undefined && error instanceof UsageError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
}

/** `located` for a value read with I/O (a `--ca` file, a netrc). */
export async function locatedAsync<T>(where: string | undefined, parse: () => Promise<T>): Promise<T> {
  try {
    return await parse();
  } catch (error) {
    if (where !== undefined && error instanceof UsageError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
}
