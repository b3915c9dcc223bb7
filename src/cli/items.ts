/**
 * The files a run fetches: URLs from the arguments and the `-i` list, the `--mirror`
 * copies, outputs no two of which may collide, and one machine's `--shard` share.
 */
import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.js";
import { FALLBACK_NAME, fileNameFromUrl } from "../filename.js";
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

/** Where each item was given, for messages (`line 3 of urls.txt`, `argument 1`): beside the items, which go to the library as they are. */
const whereGiven = new WeakMap<CliItem, string>();

/** What collecting items may read: injected so tests need no files or stdin. */
export interface ItemsEnvironment {
  readTextFile: (path: string) => Promise<string>;
  /** The whole of stdin, for `-i -`. */
  readStdin: () => Promise<string>;
  /**
   * Whether the file system that holds (or will hold) `directory` treats `A.iso` and
   * `a.iso` as one name: asked of it (platform.ts `volumeOf`), not assumed. Absent: no.
   */
  namesFoldCase?: (directory: string) => Promise<boolean>;
}

/**
 * The positional URLs, then the `-i` file's lines (`-` reads stdin), in that order.
 * Throws `UsageError` for a URL that is not http(s), a list that cannot be read or
 * parsed, or no URL at all.
 */
export async function collectItems(parsed: ParsedArgs, env: ItemsEnvironment): Promise<CliItem[]> {
  const items: CliItem[] = parsed._.map((positional, index): CliItem => {
    const url = String(positional);
    parseHttpUrl(url);
    const item = { url };
    whereGiven.set(item, `argument ${index + 1}`);
    return item;
  });
  const inputFile = lastString(parsed, "input-file");
  const source = inputFile === "-" ? "stdin" : inputFile;
  if (inputFile !== undefined) {
    const text = inputFile === "-" ? await env.readStdin() : await readUserFile(inputFile, "input file", env.readTextFile);
    for (const entry of parseInputFile(text, source)) {
      const item = {
        url: entry.url,
        ...(entry.mirrors.length > 0 ? { mirrors: entry.mirrors } : {}),
        ...(entry.output === undefined ? {} : { output: entry.output }),
      };
      whereGiven.set(item, `line ${entry.line} of ${source}`);
      items.push(item);
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
 * other had started; saying so up front, before any request, is kinder. A path is the
 * explicit output, else the name the URL gives (as the library would choose it, before
 * any Content-Disposition: a server's name is known only after its answer, and a
 * collision there fails the later item at the lock with a message saying so). Where the
 * directory's file system folds case (`env.namesFoldCase`: exFAT, FAT, NTFS on Windows,
 * APFS by default), `A.iso` and `a.iso` collide too.
 * @throws UsageError naming both items, where each was given and the shared name.
 */
export async function rejectSharedOutputs(items: CliItem[], dir: string | undefined, env: Pick<ItemsEnvironment, "namesFoldCase"> = {}): Promise<void> {
  const seen = new Map<string, { item: CliItem; path: string }>();
  const folds = new Map<string, Promise<boolean>>();
  for (const item of items) {
    const name = nameOf(item);
    const path = resolve(dir ?? ".", name);
    const directory = dirname(path);
    let fold = folds.get(directory);
    if (fold === undefined) {
      fold = env.namesFoldCase?.(directory) ?? Promise.resolve(false);
      folds.set(directory, fold);
    }
    const key = (await fold) ? path.toLowerCase() : path;
    const previous = seen.get(key);
    if (previous !== undefined) {
      const saved =
        previous.path === path ? `would both be saved as ${name}` : `would be saved as ${nameOf(previous.item)} and ${name}, one file on a volume that ignores case`;
      const [first, second] = [whereGiven.get(previous.item), whereGiven.get(item)];
      const where = first !== undefined && second !== undefined ? ` (${first} and ${second})` : "";
      const hint = item.output === undefined ? ' (in a list: "<url> <name>")' : "";
      throw new UsageError(`${redactUrl(previous.item.url)} and ${redactUrl(item.url)} ${saved}${where}; give each its own output name${hint}`);
    }
    seen.set(key, { item, path });
  }
}

/** The name an item is saved under before any answer: its output, else its URL's last segment (filename.ts). */
function nameOf(item: CliItem): string {
  return item.output ?? fileNameFromUrl(item.url) ?? FALLBACK_NAME;
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
