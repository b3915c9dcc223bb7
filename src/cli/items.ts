/**
 * The files a run fetches: URLs from the arguments and the `-i` list, the `--mirror`
 * copies, outputs no two of which may collide, and one machine's `--shard` share.
 */
import { resolve } from "node:path";
import { UsageError } from "../errors.js";
import { parseHttpUrl } from "../options.js";
import { redactUrl } from "../redact.js";
import { parseShard, takeShard } from "../shard.js";
import { parseInputFile } from "./input-file.js";
import { lastString, type ParsedArgs } from "./parsed-args.js";
import { readUserFile } from "./user-file.js";

/** One file to fetch, from the arguments or a line of the `-i` file. */
export interface CliItem {
  url: string;
  /** Other copies of the same file. */
  mirrors?: string[];
  output?: string;
}

/** What collecting items may read: injected so tests need no files or stdin. */
export interface ItemsEnvironment {
  readTextFile: (path: string) => Promise<string>;
  /** The whole of stdin, for `-i -`. */
  readStdin: () => Promise<string>;
}

/**
 * The positional URLs, then the `-i` file's lines (`-` reads stdin), in that order.
 * Throws `UsageError` for a URL that is not http(s), a list that cannot be read or
 * parsed, or no URL at all.
 */
export async function collectItems(parsed: ParsedArgs, env: ItemsEnvironment): Promise<CliItem[]> {
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
 * Adds `--mirror` URLs to the one item, after the copies its list line named. Throws
 * `UsageError` when there are several items (whose copies would they be?) or a
 * mirror is not an http(s) URL.
 */
export function addMirrors(items: CliItem[], mirrors: string[]): void {
  if (mirrors.length === 0) return;
  if (items.length > 1) {
    throw new UsageError(`--mirror names copies of one file but ${items.length} URLs were given; in an -i file, put a file's copies on its line, tab-separated`);
  }
  for (const mirror of mirrors) parseHttpUrl(mirror);
  if (items[0] !== undefined) items[0].mirrors = [...(items[0].mirrors ?? []), ...mirrors];
}

/**
 * Two items writing one path would meet at the lock file and one would fail after the
 * other had started; saying so up front is kinder. Only explicit names can be checked
 * here: names from the server are known after the first response.
 */
export function rejectSharedOutputs(items: CliItem[], dir: string | undefined): void {
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

/**
 * This machine's share of the list for `--shard K/N` (see shard.ts), and the note that
 * says how big it is. Throws `UsageError` for a `K/N` that cannot be read.
 */
export function shareOfItems(items: CliItem[], shardText: string): { items: CliItem[]; note: string } {
  const shard = parseShard(shardText);
  const whole = items.length;
  // An item is its URL and output name: mirrors can be added later without moving it.
  const share = takeShard(items, shard, (item) => `${item.url}\n${item.output ?? ""}`);
  return { items: share, note: `shard ${shard.index}/${shard.count}: ${share.length} of ${whole} file${whole === 1 ? "" : "s"}` };
}
