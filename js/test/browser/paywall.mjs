#!/usr/bin/env node
// Drives the verifier's paywall page in headless Chromium with the x402 test wallet.
//
//   X402_URL         the paid page (opened as a normal navigation: Accept text/html)
//   X402_KEYPAIR     Solana CLI keypair JSON file (64 numbers) for the test wallet
//   X402_SCENARIO    pay | no-wallet | wallet-rejected | insufficient-funds | expired | unavailable
//                    (what the wallet does: none for no-wallet, refuses for wallet-rejected,
//                    signs otherwise; the server decides the rest)
//   X402_SCREENSHOT  where to write a PNG of the page once the status settles
//   X402_CHROMIUM    Chromium executable (default /usr/bin/chromium)
//   X402_DELAY_MS    optional wait before clicking (lets a short-lived offer expire)
//   X402_SIGN_DELAY_MS  optional: the wallet takes this long to sign, as a person does
//   X402_TIMEOUT_MS  optional wait for the status to settle (default 60000)
//   X402_EXPECT      optional: exit 1 unless the final data-state is this
//
// Prints one JSON line: {state, status, content, explorer, priceVisible, payeeVisible,
// scenario, errors} and exits 0 (the caller judges the state), 2 on bad inputs.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const SCENARIOS = ["pay", "no-wallet", "wallet-rejected", "insufficient-funds", "expired", "unavailable"];
const TRANSIENT = ["working"];

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const url = env("X402_URL");
const scenario = env("X402_SCENARIO", "pay");
const expected = process.env.X402_EXPECT || null;
if (!SCENARIOS.includes(scenario)) {
  console.error(`X402_SCENARIO must be one of ${SCENARIOS.join(", ")}`);
  process.exit(2);
}
const screenshot = env("X402_SCREENSHOT");
const executablePath = env("X402_CHROMIUM", "/usr/bin/chromium");
const delayMs = Number(process.env.X402_DELAY_MS ?? 0);
const timeout = Number(process.env.X402_TIMEOUT_MS ?? 60_000);

let walletScript = null;
if (scenario !== "no-wallet") {
  const secretKey = JSON.parse(readFileSync(env("X402_KEYPAIR"), "utf8"));
  if (!Array.isArray(secretKey) || secretKey.length !== 64) {
    console.error("X402_KEYPAIR must hold a JSON array of 64 numbers");
    process.exit(2);
  }
  let code;
  try {
    code = readFileSync(new URL("../../dist/test-wallet.js", import.meta.url), "utf8");
  } catch {
    console.error("dist/test-wallet.js is missing: run `npm run build` in js/ first");
    process.exit(2);
  }
  const config = {
    secretKey,
    reject: scenario === "wallet-rejected",
    signDelayMs: Number(process.env.X402_SIGN_DELAY_MS ?? 0),
  };
  walletScript = `window.__X402_TEST_WALLET__ = ${JSON.stringify(config)};\n${code}`;
}

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
const errors = [];
let result;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  if (walletScript) await context.addInitScript({ content: walletScript });
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  const navigation = await page.goto(url, { waitUntil: "load" });
  if (navigation && navigation.status() !== 402) errors.push(`page answered HTTP ${navigation.status()}, not 402`);
  await page.waitForSelector("#x402-pay", { state: "visible", timeout });
  if (delayMs > 0) await page.waitForTimeout(delayMs);
  // A fresh attribute, so that only the outcome of this click counts.
  await page.evaluate(() => document.querySelector("#x402-status")?.removeAttribute("data-state"));
  await page.click("#x402-pay");
  await page
    .waitForFunction(
      (transient) => {
        const state = document.querySelector("#x402-status")?.getAttribute("data-state");
        return !!state && !transient.includes(state);
      },
      TRANSIENT,
      { timeout },
    )
    .catch((error) => errors.push(`status did not settle: ${error.message.split("\n")[0]}`));
  await page.screenshot({ path: screenshot, fullPage: true });
  const seen = await page.evaluate(() => {
    const status = document.querySelector("#x402-status");
    const content = document.querySelector("#x402-content");
    const explorer = document.querySelector("#x402-explorer");
    return {
      state: status?.getAttribute("data-state") ?? null,
      status: status?.textContent?.trim() ?? null,
      content: content && !content.hidden ? content.textContent : null,
      explorer: explorer && !explorer.hidden ? explorer.getAttribute("href") : null,
    };
  });
  result = {
    ...seen,
    priceVisible: await page.isVisible("#x402-price"),
    payeeVisible: await page.isVisible("#x402-payee"),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...result, scenario, errors }));
process.exit(expected && result.state !== expected ? 1 : 0);
