#!/usr/bin/env node
// Drives the React test page (dist/react-demo.js, useX402) in headless Chromium with the
// x402 test wallet. The page is served by Playwright at <origin of X402_API_URL>/__x402_react_demo/
// (request interception), so that its fetch to the paid API is same-origin.
//
//   X402_API_URL     the paid API route (answers JSON 402 with PAYMENT-REQUIRED)
//   X402_METHOD      optional, default GET; X402_BODY optional request body
//   X402_KEYPAIR     Solana CLI keypair JSON file (64 numbers)
//   X402_SCENARIO    pay | no-wallet | wallet-rejected
//   X402_SCREENSHOT  where to write a PNG once the call settles
//   X402_CHROMIUM    Chromium executable (default /usr/bin/chromium)
//   X402_TIMEOUT_MS  optional, default 60000
//   X402_MAX_PER_REQUEST  optional, the page's policy.maxPerRequest in base units, default
//                    1000000: a local mint is no stablecoin the client knows, so the
//                    default cap of 1.00 refuses it and a limit of the buyer's must be given
//   X402_NETWORKS    optional, the page's policy.networks (comma-separated); default: the
//                    networks the API's own 402 names. Without rpcUrl, the page pays an
//                    offer only on a network its policy names: the test stands for a buyer
//                    who allows the network of the local verifier it is testing.
//
// Prints one JSON line: {state, result, error, payment, scenario, errors}; state is the
// page's data-state: paid | done | error. Exits 0 (the caller judges), 2 on bad inputs.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const SCENARIOS = ["pay", "no-wallet", "wallet-rejected"];
function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const api = new URL(env("X402_API_URL"));
const scenario = env("X402_SCENARIO", "pay");
if (!SCENARIOS.includes(scenario)) {
  console.error(`X402_SCENARIO must be one of ${SCENARIOS.join(", ")}`);
  process.exit(2);
}
const screenshot = env("X402_SCREENSHOT");
const executablePath = env("X402_CHROMIUM", "/usr/bin/chromium");
const timeout = Number(process.env.X402_TIMEOUT_MS ?? 60_000);
const read = (path) => {
  try {
    return readFileSync(new URL(path, import.meta.url), "utf8");
  } catch {
    console.error(`${path} is missing: run \`npm run build\` in js/ first`);
    process.exit(2);
  }
};
const app = read("../../dist/react-demo.js");
let walletScript = null;
if (scenario !== "no-wallet") {
  const secretKey = JSON.parse(readFileSync(env("X402_KEYPAIR"), "utf8"));
  if (!Array.isArray(secretKey) || secretKey.length !== 64) {
    console.error("X402_KEYPAIR must hold a JSON array of 64 numbers");
    process.exit(2);
  }
  const config = { secretKey, reject: scenario === "wallet-rejected" };
  walletScript = `window.__X402_TEST_WALLET__ = ${JSON.stringify(config)};\n${read("../../dist/test-wallet.js")}`;
}

/** The networks the API's 402 names (its PAYMENT-REQUIRED header, else its v1 body). */
async function announcedNetworks() {
  const response = await fetch(api, { headers: { Accept: "application/json" } });
  const header = response.headers.get("PAYMENT-REQUIRED");
  const challenge = header ? JSON.parse(Buffer.from(header, "base64").toString("utf8")) : await response.json().catch(() => ({}));
  return [...new Set((challenge.accepts ?? []).map((offer) => offer.network).filter((n) => typeof n === "string"))];
}

const networks = process.env.X402_NETWORKS ? process.env.X402_NETWORKS.split(",") : await announcedNetworks();
const demo = {
  url: api.pathname + api.search,
  method: process.env.X402_METHOD || "GET",
  policy: { maxPerRequest: process.env.X402_MAX_PER_REQUEST || "1000000", networks },
};
if (process.env.X402_BODY !== undefined) demo.body = process.env.X402_BODY;
const pageUrl = `${api.origin}/__x402_react_demo/`;
const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>x402 React test</title></head>
<body><div id="root"></div><script>window.__X402_REACT_DEMO__ = ${JSON.stringify(demo).replace(/</g, "\\u003c")};</script>
<script src="app.js"></script></body></html>`;

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
const errors = [];
let result;
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  if (walletScript) await context.addInitScript({ content: walletScript });
  await context.route(`${pageUrl}**`, (route) => {
    const { pathname } = new URL(route.request().url());
    if (pathname.endsWith("/app.js")) return route.fulfill({ contentType: "text/javascript", body: app });
    return route.fulfill({ contentType: "text/html; charset=utf-8", body: html });
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForSelector("#x402-react-state[data-state=idle]", { timeout });
  await page.click("#x402-react-call");
  await page
    .waitForFunction(
      () => ["paid", "done", "error"].includes(document.querySelector("#x402-react-state")?.getAttribute("data-state")),
      undefined,
      { timeout },
    )
    .catch((error) => errors.push(`state did not settle: ${error.message.split("\n")[0]}`));
  await page.screenshot({ path: screenshot, fullPage: true });
  result = await page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent || null;
    const payment = text("x402-react-payment");
    return {
      state: document.getElementById("x402-react-state")?.getAttribute("data-state") ?? null,
      result: text("x402-react-result"),
      error: text("x402-react-error"),
      payment: payment ? JSON.parse(payment) : null,
    };
  });
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...result, scenario, errors }));
