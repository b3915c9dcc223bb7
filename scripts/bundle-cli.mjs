// Bundles the command line into dist/bin/ (run by `npm run build`, after tsc).
//
// Node spends most of a start resolving and compiling modules one file at a time: yargs,
// undici and cli-progress are about a hundred files. One bundle loads in a single read,
// and code splitting keeps what a run may not need (the download engine with undici, the
// progress bars) in chunks that load only when the run asks for them: `--version`,
// `--help` and usage errors never touch undici. The library entry (dist/index.js) stays
// tsc's plain modules for importers.
import { readFileSync, rmSync } from "node:fs";
import { build } from "esbuild";

/**
 * string-width (used by yargs's help layout) builds an `Intl.Segmenter` and Unicode
 * property regexes (`\p{RGI_Emoji}` with the v flag) when its module is evaluated: about
 * 35 ms of every start, measured with --cpu-prof, for widths that only `--help` needs.
 * This routes ES imports of it through a stub that loads the real module on first call;
 * esbuild evaluates a module reached by require() lazily.
 */
const lazyStringWidth = {
  name: "lazy-string-width",
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^string-width$/ }, (args) => {
      if (args.kind !== "import-statement" || args.namespace === "lazy-string-width") return undefined;
      return { path: args.resolveDir, namespace: "lazy-string-width" };
    });
    pluginBuild.onLoad({ filter: /.*/, namespace: "lazy-string-width" }, (args) => ({
      contents: 'export default function stringWidth(text, options) { return require("string-width").default(text, options); }',
      resolveDir: args.path,
      loader: "js",
    }));
  },
};

// Chunk names are content hashes: clear the old ones so none is left to be packed.
rmSync("dist/bin", { recursive: true, force: true });
/**
 * undici's index.js loads every part of undici (fetch, WebSocket, cookies, caches, mocks)
 * and with them Node's own copy of undici: about 110 ms of CPU per start, measured by
 * requiring each. The engine uses EnvHttpProxyAgent, buildConnector and the request API, so the bundle
 * takes those modules alone, with the one thing index.js does to make them whole:
 * install the request API on Dispatcher.prototype. Types still come from "undici".
 */
const slimUndici = {
  name: "slim-undici",
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^undici$/ }, (args) => {
      if (args.namespace === "slim-undici") return undefined;
      return { path: args.resolveDir, namespace: "slim-undici" };
    });
    pluginBuild.onLoad({ filter: /.*/, namespace: "slim-undici" }, (args) => ({
      contents: [
        'const Dispatcher = require("undici/lib/dispatcher/dispatcher.js");',
        'Object.assign(Dispatcher.prototype, require("undici/lib/api/index.js"));',
        'exports.EnvHttpProxyAgent = require("undici/lib/dispatcher/env-http-proxy-agent.js");',
        'exports.buildConnector = require("undici/lib/core/connect.js");',
      ].join("\n"),
      resolveDir: args.path,
      loader: "js",
    }));
  },
};

/**
 * src/version.ts reads package.json one level above its own file, which is right for
 * src/ and dist/ but not for dist/bin/: the bundle carries the version as a constant.
 */
const versionConstant = {
  name: "version-constant",
  setup(pluginBuild) {
    const { version } = JSON.parse(readFileSync("package.json", "utf8"));
    pluginBuild.onLoad({ filter: /[\\/]src[\\/]version\.ts$/ }, () => ({
      contents: `export const VERSION = ${JSON.stringify(version)};`,
      loader: "js",
    }));
  },
};

await build({
  entryPoints: { rangeget: "src/cli/main.ts" },
  outdir: "dist/bin",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22.19",
  // undici and cli-progress are CommonJS and call require() for Node's built-ins, which an
  // ES module bundle has to provide.
  banner: { js: 'import { createRequire as rangegetCreateRequire } from "node:module"; const require = rangegetCreateRequire(import.meta.url);' },
  chunkNames: "chunk-[hash]",
  // A native N-API addon (the origin record's extended attributes): loaded from
  // node_modules at run time, and only when a file is claimed or finished.
  external: ["@napi-rs/xattr"],
  plugins: [lazyStringWidth, slimUndici, versionConstant],
  logLevel: "warning",
});
