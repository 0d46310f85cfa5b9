// Builds the library (ESM, dependencies external), the paywall IIFE for the verifier,
// and the test wallet IIFE.
import { build } from "esbuild";
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const quiet = process.argv.includes("--quiet");
const root = fileURLToPath(new URL(".", import.meta.url));
const paywallOut = fileURLToPath(new URL("../verifier/assets/paywall.js", import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: { index: "src/index.ts", react: "src/react.ts", paywall: "src/paywall.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  packages: "external",
  chunkNames: "chunks/[name]-[hash]",
  logLevel: quiet ? "warning" : "info",
});

const browser = {
  absWorkingDir: root,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["chrome109", "firefox115", "safari16"],
  minify: true,
  legalComments: "none",
  define: { "process.env.NODE_ENV": "\"production\"" },
  logLevel: quiet ? "warning" : "info",
};
await build({ ...browser, entryPoints: ["src/paywall-entry.ts"], outfile: paywallOut });
await build({ ...browser, entryPoints: ["src/test-wallet.ts"], outfile: "dist/test-wallet.js" });
await build({ ...browser, entryPoints: ["src/react-demo.ts"], outfile: "dist/react-demo.js" });
if (!quiet) console.log(`paywall.js: ${statSync(paywallOut).size} bytes`);
