import { join } from "node:path";
import type { CredentialSource } from "../credentials.js";
import { parseCookiesTxt } from "../cookies-txt.js";
import { netrcCredentials, netrcPermissionWarning, parseNetrc } from "../netrc.js";
import { fileReadError, isOutOfSight, readUserFile } from "./user-file.js";

/** What loading may touch: injected so tests need no home directory. */
export interface AccessEnvironment {
  readTextFile: (path: string) => Promise<string>;
  /** The `stat` mode of a file, for the netrc permission warning. */
  fileMode: (path: string) => Promise<number>;
  homeDir: string;
}

/**
 * The netrc `--netrc-file` names, else `~/.netrc` when it exists: Basic auth per host,
 * and a warning (without the `warning:` prefix) when others may read the file.
 * `credentials` is `undefined` when the file is absent or has no login. Throws
 * `UsageError` for a named file that cannot be read or a netrc that cannot be parsed.
 */
export async function loadNetrc(
  named: string | undefined,
  env: AccessEnvironment,
): Promise<{ credentials: CredentialSource | undefined; warning: string | undefined }> {
  const path = named ?? join(env.homeDir, ".netrc");
  let text: string;
  try {
    text = await env.readTextFile(path);
  } catch (error) {
    if (named === undefined && (await isOutOfSight(path, error))) return { credentials: undefined, warning: undefined };
    throw fileReadError(path, "netrc file", error);
  }
  const netrc = parseNetrc(text, path);
  const hasLogins = netrc.machines.length > 0 || netrc.default !== undefined;
  return { credentials: hasLogins ? netrcCredentials(netrc) : undefined, warning: netrcPermissionWarning(path, await env.fileMode(path)) };
}

/**
 * A cookie jar filled from a cookies.txt file, as a credential source. Throws
 * `UsageError` for a file that cannot be read or a line that cannot be parsed.
 */
export async function loadCookies(path: string, env: AccessEnvironment): Promise<CredentialSource> {
  const lines = parseCookiesTxt(await readUserFile(path, "cookies file", env.readTextFile), path);
  // tough-cookie and its public suffix list cost start-up time: loaded only when asked for.
  const { cookieJarCredentials, createCookieJar } = await import("../cookies.js");
  return cookieJarCredentials(await createCookieJar(lines));
}
