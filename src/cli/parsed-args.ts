/** yargs's parse of the command line: each option by long name, positionals in `_`. */
export type ParsedArgs = Record<string, unknown> & { _: (string | number)[] };

/** The last value of a scalar option: like curl, a repeated flag overrides the earlier one. */
export function lastString(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed[name];
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : String(last);
}

/** Every value of a repeatable option (`-H`, `--mirror`), in the order given; `[]` when absent. */
export function allStrings(parsed: ParsedArgs, name: string): string[] {
  const value = parsed[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
