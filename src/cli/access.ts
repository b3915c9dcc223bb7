/**
 * The CLI's logins: loads the netrc and the cookies.txt the flags name (or `~/.netrc`)
 * through an injected file environment, and says when a netrc's modes let others read it.
 */
import { join } from "node:path";
import type { CredentialSource } from "../credentials.js";
import { parseCookiesTxt } from "../cookies-txt.js";
import { netrcCredentials, netrcPermissionWarning, parseNetrc } from "../netrc.js";
import { currentPlatform, type Platform } from "../platform.js";
import { fileReadError, isOutOfSight, readUserFile } from "./user-file.js";

/** What loading may touch: injected so tests need no home directory. */
export interface AccessEnvironment {
  readTextFile: (path: string) => Promise<string>;
  /** The `stat` mode of a file, for the netrc permission warning. */
  fileMode: (path: string) => Promise<number>;
  homeDir: string;
  /** Whether file modes mean anything here: on Windows they always read 0666 and `chmod 600` cannot change that. */
  platform?: Pick<Platform, "permissionModes">;
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
  const modesMatter = (env.platform ?? currentPlatform).permissionModes;
  const warning = modesMatter ? netrcPermissionWarning(path, await env.fileMode(path)) : undefined;
  return { credentials: hasLogins ? netrcCredentials(netrc) : undefined, warning };
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
