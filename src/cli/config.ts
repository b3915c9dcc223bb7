/**
 * Defaults from a config file (`~/.config/rangeget/config`, `--config`) and the
 * environment (`RANGEGET_*`): which options they may set, and each line or variable parsed
 * into an option's name and text (layers.ts puts flags over them).
 */
import { isAbsolute, join } from "node:path";
import { UsageError } from "../errors.js";

/** How an option takes its value: a switch, one value (the last one wins), or a list that grows (`header`). */
export type OptionKind = "boolean" | "string" | "list";

/** The options a config file or the environment may set, by long name, and those they may not. */
export interface ConfigurableOptions {
  kinds: ReadonlyMap<string, OptionKind>;
  /** Options that name one run's work (`output`, `input-file`, `shard`...): flags only. */
  commandLineOnly: ReadonlySet<string>;
}

/** One default from a config file line or a `RANGEGET_*` variable. */
export interface ConfigSetting {
  /** The long option name, e.g. `limit-rate`. */
  name: string;
  value: string | boolean;
  /** For error messages: `config file <path> line <n>` or `environment variable RANGEGET_<NAME>`. */
  where: string;
  layer: "file" | "environment";
}

/**
 * Where the config file is when `--config` names none: `$XDG_CONFIG_HOME/rangeget/config`,
 * else `~/.config/rangeget/config` (the XDG Base Directory spec ignores a relative
 * `XDG_CONFIG_HOME`, and so do we).
 */
export function defaultConfigPath(variables: NodeJS.ProcessEnv, homeDir: string): string {
  const xdg = variables["XDG_CONFIG_HOME"];
  return join(xdg !== undefined && isAbsolute(xdg) ? xdg : join(homeDir, ".config"), "rangeget", "config");
}

/**
 * Parses a config file: one long option a line, `name = value`, or a bare `name` for
 * a switch; `#` starts a comment line; blank lines are skipped; a value in double
 * quotes keeps its outer spaces. Switches also take `true`/`false` (or yes/no, on/off,
 * 1/0). Throws `UsageError` naming `path` and the line for an unknown or flag-only
 * option, a switch with a value it cannot read, or an option without its value.
 */
export function parseConfigFile(text: string, path: string, options: ConfigurableOptions): ConfigSetting[] {
  const settings: ConfigSetting[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((rawLine, index) => {
      const line = rawLine.trim();
      if (line === "" || line.startsWith("#")) return;
      const where = `config file ${path} line ${index + 1}`;
      const equals = line.indexOf("=");
      const name = (equals < 0 ? line : line.slice(0, equals)).trim();
      const kind = kindOf(name, where, options);
      if (equals < 0) {
        if (kind !== "boolean") throw new UsageError(`${where}: ${name} needs a value ("${name} = ...")`);
        settings.push({ name, value: true, where, layer: "file" });
        return;
      }
      const text = unquote(line.slice(equals + 1).trim());
      settings.push({ name, value: kind === "boolean" ? parseSwitch(text, where, name) : text, where, layer: "file" });
    });
  return settings;
}

/**
 * Reads `RANGEGET_<NAME>` variables (`RANGEGET_LIMIT_RATE` for `limit-rate`) for every
 * option a config file may set. Other `RANGEGET_` names are not ours to judge (tools
 * around us set their own) and are left alone; an empty variable counts as unset,
 * as shells make it easy to leave one empty. Throws `UsageError` naming the variable
 * for a switch whose value it cannot read.
 */
export function settingsFromEnvironment(variables: NodeJS.ProcessEnv, options: ConfigurableOptions): ConfigSetting[] {
  const settings: ConfigSetting[] = [];
  for (const [name, kind] of options.kinds) {
    const variable = `RANGEGET_${name.toUpperCase().replace(/-/g, "_")}`;
    const text = variables[variable];
    if (text === undefined || text.trim() === "") continue;
    const where = `environment variable ${variable}`;
    settings.push({ name, value: kind === "boolean" ? parseSwitch(text.trim(), where, name) : text, where, layer: "environment" });
  }
  return settings;
}

function kindOf(name: string, where: string, options: ConfigurableOptions): OptionKind {
  const kind = options.kinds.get(name);
  if (kind !== undefined) return kind;
  if (options.commandLineOnly.has(name)) throw new UsageError(`${where}: --${name} can only be given on the command line`);
  const hint = name.startsWith("-") ? ` (write long option names without dashes, e.g. "connections = 16")` : "";
  throw new UsageError(`${where}: unknown option "${name}"${hint}`);
}

const SWITCH_VALUES = new Map([
  ["true", true],
  ["yes", true],
  ["on", true],
  ["1", true],
  ["false", false],
  ["no", false],
  ["off", false],
  ["0", false],
]);

function parseSwitch(text: string, where: string, name: string): boolean {
  const value = SWITCH_VALUES.get(text.toLowerCase());
  if (value === undefined) throw new UsageError(`${where}: ${name} is a switch: write true or false, not "${text}"`);
  return value;
}

function unquote(text: string): string {
  return text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text;
}
