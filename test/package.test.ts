import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { rangeServer } from "./support/servers.js";

// Packs the project the way `npm publish` would, installs the tarball into an empty
// project and uses it only through its public entry points: the bin and "rangeget".

const SLOW = 120_000;
const projectRoot = fileURLToPath(new URL("..", import.meta.url));

interface PackageJson {
  name: string;
  version: string;
  license: string;
  bin: Record<string, string>;
  types: string;
  main: string;
  engines: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  dependencies: Record<string, string>;
}

interface LockEntry {
  version: string;
  resolved?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  [field: string]: unknown;
}

// Children run on the Node that runs this test (CI runs the suite on Node 22, 24 and 26),
// and see none of the npm_* variables that this project's own `npm test` set for itself.
const childEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_(lifecycle_|package_|command$|config_local_prefix$)/i.test(key)),
);
childEnv.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`;

// Run npm on this Node too: npm_execpath is npm-cli.js when the suite runs under `npm test`.
const npmExecPath = process.env.npm_execpath;
const npmCommand: [string, string[]] =
  npmExecPath !== undefined && basename(npmExecPath) === "npm-cli.js" ? [process.execPath, [npmExecPath]] : ["npm", []];

interface RunResult {
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, timeout: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: childEnv, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const exit = error.killed ? `killed after ${timeout} ms` : `exit ${String(error.code)}`;
        reject(new Error(`${[command, ...args].join(" ")} (in ${cwd}) failed, ${exit}\n--- stderr\n${stderr}\n--- stdout\n${stdout}`));
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

function npm(args: string[], cwd: string, timeout = 60_000): Promise<RunResult> {
  const [command, prefix] = npmCommand;
  return run(command, [...prefix, ...args], cwd, timeout);
}

function node(args: string[], cwd: string, timeout = 60_000): Promise<RunResult> {
  return run(process.execPath, args, cwd, timeout);
}

/**
 * A lockfile for the consumer that pins rangeget's dependencies to the versions in our
 * own package-lock.json. Without it npm 11 resolves each semver range from the full
 * registry document, which `npm ci` never caches (it reads the abbreviated one), so
 * `npm install --offline` fails with ENOTCACHED on a fresh CI machine. With it, every
 * package is a (resolved, integrity) pair that `npm ci` already put in the cache.
 */
function consumerLockfile(rootLock: { packages: Record<string, LockEntry> }, pkg: PackageJson, spec: string): object {
  const locate = (from: string, name: string): string => {
    // Node's lookup: the nearest node_modules/<name>, walking up from the dependent.
    for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf("/node_modules/")))) {
      const key = `${base === "" ? "" : `${base}/`}node_modules/${name}`;
      if (rootLock.packages[key] !== undefined) return key;
      if (base === "") throw new Error(`${name}, needed by ${from || pkg.name}, is not in package-lock.json: run npm install`);
    }
  };
  const packages: Record<string, LockEntry> = {};
  const queue: Array<[string, Record<string, string>]> = [["", pkg.dependencies]];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const [from, dependencies] = next;
    for (const name of Object.keys(dependencies)) {
      const key = locate(from, name);
      if (packages[key] !== undefined) continue;
      const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = rootLock.packages[key] as LockEntry;
      const packageName = key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length);
      const tarballName = `${packageName.split("/").pop() ?? packageName}-${entry.version}.tgz`;
      packages[key] = { resolved: `https://registry.npmjs.org/${packageName}/-/${tarballName}`, ...entry };
      queue.push([key, { ...entry.dependencies, ...entry.optionalDependencies }]);
    }
  }
  return {
    name: "consumer",
    lockfileVersion: 3,
    requires: true,
    packages: {
      "": { name: "consumer", dependencies: { [pkg.name]: spec } },
      [`node_modules/${pkg.name}`]: {
        version: pkg.version,
        resolved: spec,
        license: pkg.license,
        dependencies: pkg.dependencies,
        bin: pkg.bin,
        engines: pkg.engines,
      },
      ...packages,
    },
  };
}

async function sourceModules(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).replace(/\.ts$/, ""));
}

const CONSUMER_TS = `
import { download, downloadAll, HttpStatusError } from "rangeget";
import type { DownloadOptions, DownloadResult, ProgressEvent } from "rangeget";
// @ts-expect-error: the internals stay behind the "exports" map.
import { downloadWithResult } from "rangeget/dist/download.js";

void downloadWithResult;

const options: DownloadOptions = {
  dir: "downloads",
  connections: 4,
  minSplit: 1024 * 1024,
  retries: 3,
  timeout: 10,
  headers: { "User-Agent": "consumer" },
  signal: AbortSignal.timeout(60_000),
  onProgress: (progress: ProgressEvent) => {
    const done: number = progress.bytesDone;
    void done;
  },
};

export async function fetchAll(urls: string[]): Promise<string[]> {
  try {
    const first: DownloadResult = await download(urls[0] ?? "", options);
    const rest: DownloadResult[] = await downloadAll([...urls.slice(1), { url: "https://example.com/a", output: "a" }], { jobs: 2 });
    return [first, ...rest].map((result) => \`\${result.status} \${result.path} \${result.size ?? "unknown size"}\`);
  } catch (error) {
    if (error instanceof HttpStatusError) {
      const code: string = error.code;
      const exitCode: number = error.exitCode;
      return [\`\${code} \${exitCode} \${error.message}\`];
    }
    throw error;
  }
}
`;

const CONSUMER_MJS = `
import * as rangeget from "rangeget";

const [url, output] = process.argv.slice(2);
const result = await rangeget.download(url, { output, connections: 4, minSplit: 256 * 1024, timeout: 10 });
const deepImport = await import("rangeget/dist/download.js").then(() => "loaded", (error) => error.code);
console.log(JSON.stringify({ node: process.version, exports: Object.keys(rangeget), result, deepImport }));
`;

const CONSUMER_CJS = `
const { download, downloadAll, HttpStatusError } = require("rangeget");
console.log(JSON.stringify([typeof download, typeof downloadAll, typeof HttpStatusError]));
`;

describe("the npm package", () => {
  let workDir: string;
  let consumerDir: string;
  let pkg: PackageJson;
  let tarballFiles: string[];

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rangeget-package-"));
    pkg = JSON.parse(await readFile(join(projectRoot, "package.json"), "utf8")) as PackageJson;

    // --ignore-scripts: prepack's clean build would delete dist/ under tests running
    // alongside this one; `pretest` has just built it.
    const packed = await npm(["pack", "--json", "--ignore-scripts", "--pack-destination", workDir], projectRoot);
    const [report] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    if (report === undefined) throw new Error(`npm pack printed no report:\n${packed.stdout}`);
    tarballFiles = report.files.map((file) => file.path).sort();

    consumerDir = join(workDir, "consumer");
    await mkdir(consumerDir);
    const tarball = "rangeget.tgz";
    await copyFile(join(workDir, report.filename), join(consumerDir, tarball));
    const rootLock = JSON.parse(await readFile(join(projectRoot, "package-lock.json"), "utf8")) as {
      packages: Record<string, LockEntry>;
    };
    await writeFile(
      join(consumerDir, "package.json"),
      `${JSON.stringify({ name: "consumer", private: true, type: "module", dependencies: { [pkg.name]: `file:${tarball}` } }, null, 2)}\n`,
    );
    await writeFile(join(consumerDir, "package-lock.json"), `${JSON.stringify(consumerLockfile(rootLock, pkg, `file:${tarball}`), null, 2)}\n`);
    await npm(["install", "--offline", "--no-audit", "--no-fund", `./${tarball}`], consumerDir, 90_000);
  }, SLOW);

  afterAll(async () => {
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  it("runs on the Node version CI asked for", { skip: process.env.RANGEGET_EXPECT_NODE_MAJOR === undefined }, () => {
    expect(process.versions.node.split(".")[0]).toBe(process.env.RANGEGET_EXPECT_NODE_MAJOR);
  });

  it("packs the built code, its types, the bin, README, LICENSE and package.json, and nothing else", async () => {
    const alwaysThere = ["LICENSE", "README.md", "package.json", "bin/rangeget.js"];
    const allowed = (path: string) => alwaysThere.includes(path) || /^dist\/.+\.(js|d\.ts)$/.test(path);
    expect(tarballFiles.filter((path) => !allowed(path)), "not meant to be published").toEqual([]);
    expect(tarballFiles.filter((path) => /^(src|test|scripts|bench|\.ci)\/|\.map$/.test(path))).toEqual([]);
    expect(alwaysThere.filter((path) => !tarballFiles.includes(path)), "missing from the tarball").toEqual([]);

    const built = (await sourceModules(join(projectRoot, "src"))).flatMap((module) => [`dist/${module}.js`, `dist/${module}.d.ts`]);
    expect(built.filter((path) => !tarballFiles.includes(path)), "built from src/ but not packed").toEqual([]);
  });

  it("points bin, main, types and exports at files in the tarball", () => {
    const exported = Object.values(pkg.exports).flatMap((target) => (typeof target === "string" ? [target] : Object.values(target)));
    const targets = [...Object.values(pkg.bin), pkg.main, pkg.types, ...exported].map((path) => path.replace(/^\.\//, ""));
    expect(targets.filter((path) => !tarballFiles.includes(path))).toEqual([]);
  });

  it("installs from the tarball with the rangeget bin on npx", async () => {
    const installed = JSON.parse(await readFile(join(consumerDir, "node_modules/rangeget/package.json"), "utf8")) as PackageJson;
    expect(installed.version).toBe(pkg.version);

    const help = await npm(["exec", "--no", "--", "rangeget", "--help"], consumerDir);
    expect(help.stdout).toMatch(/usage:\s*rangeget/i);
    const version = await npm(["exec", "--no", "--", "rangeget", "--version"], consumerDir);
    expect(version.stdout.trim()).toBe(pkg.version);
  }, SLOW);

  it("type-checks a consumer of the public API with tsc --strict", async () => {
    await writeFile(join(consumerDir, "consumer.ts"), CONSUMER_TS);
    // The declarations mention Node's types (Buffer, AbortSignal, undici's Dispatcher),
    // as any Node library's do: a consumer has @types/node; this one borrows ours.
    const tsc = join(projectRoot, "node_modules/.bin/tsc");
    // A Node 22 project's settings (@tsconfig/node22: ES2024, nodenext); tsc's default
    // target would bring ES5's and the DOM's 42,000 lines of lib into the check as well.
    const flags = ["--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2024", "--lib", "es2024", "--noEmit"];
    const types = ["--types", "node", "--typeRoots", join(projectRoot, "node_modules/@types")];
    await node([tsc, ...flags, ...types, "consumer.ts"], consumerDir);
  }, SLOW);

  it("downloads a file through the installed package, from ESM and CommonJS", async () => {
    const content = makeContent(3 * 1024 * 1024 + 12_345, 8);
    const server = await rangeServer({ content });
    await writeFile(join(consumerDir, "consumer.mjs"), CONSUMER_MJS);
    const output = join(consumerDir, "file.bin");
    const { stdout } = await node(["consumer.mjs", server.url("/file.bin"), output], consumerDir);
    const report = JSON.parse(stdout) as {
      node: string;
      exports: string[];
      result: { status: string; path: string; size: number };
      deepImport: string;
    };
    expect(report.node).toBe(process.version);
    expect(report.exports).toEqual(expect.arrayContaining(["download", "downloadAll", "HttpStatusError"]));
    expect(report.deepImport).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
    expect(report.result).toMatchObject({ status: "downloaded", path: output, size: content.length });
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.requests.length).toBeGreaterThan(1);

    // require(esm), unflagged since Node 20.19 and 22.12: every Node that rangeget supports.
    await writeFile(join(consumerDir, "consumer.cjs"), CONSUMER_CJS);
    const cjs = await node(["consumer.cjs"], consumerDir);
    expect(JSON.parse(cjs.stdout)).toEqual(["function", "function", "function"]);
  }, SLOW);
});
