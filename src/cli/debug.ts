/** `DEBUG=rangeget`, as in the `debug` package: a comma- or space-separated list, `*` for all. */
export function debugEnabled(env: NodeJS.ProcessEnv): boolean {
  return (env.DEBUG ?? "").split(/[\s,]+/).some((name) => name === "*" || name === "rangeget" || name.startsWith("rangeget:"));
}
