// Generates src/generated/ (the receipt program's instructions, accounts and errors for
// @solana/kit) from the program's Anchor IDL, programs/x402-receipts/idl.json, with
// Codama. `--check` writes nothing and fails when the committed code is not what the IDL
// generates (npm test runs it).
import { createFromRoot } from "codama";
import { rootNodeFromAnchor } from "@codama/nodes-from-anchor";
import { renderVisitor } from "@codama/renderers-js";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const idl = JSON.parse(readFileSync(join(root, "../programs/x402-receipts/idl.json"), "utf8"));
const generated = "src/generated";
// The renderer writes for @solana/kit 6: its program plugin's types (unused here) and its
// `process.env` reads do not type-check against kit 8 without Node's types. What we use
// of it is tested against the Rust side byte for byte.
const NO_CHECK = "// @ts-nocheck: generated for @solana/kit 6 (scripts/generate-receipts-client.mjs)\n";

async function render(packageFolder) {
  await createFromRoot(rootNodeFromAnchor(idl)).accept(
    renderVisitor(packageFolder, {
      generatedFolder: generated,
      kitImportStrategy: "rootOnly",
      syncPackageJson: false,
    }),
  );
  const folder = join(packageFolder, generated);
  for (const file of readdirSync(folder, { recursive: true })) {
    if (!file.endsWith(".ts")) continue;
    writeFileSync(join(folder, file), NO_CHECK + readFileSync(join(folder, file), "utf8"));
  }
}

if (process.argv.includes("--check")) {
  const scratch = mkdtempSync(join(tmpdir(), "x402-codama-"));
  try {
    await render(scratch);
    try {
      execFileSync("diff", ["-r", join(scratch, generated), join(root, generated)], { stdio: "inherit" });
    } catch {
      console.error(`${generated} is not what programs/x402-receipts/idl.json generates: npm run generate`);
      process.exit(1);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
} else {
  await render(root);
}
