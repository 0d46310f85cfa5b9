// server.mjs — a STOCK x402 seller (npm @x402/express + @x402/svm + @x402/core 2.27.0,
// unmodified), spawned by the Rust interop tests. GET /paid -> {"paid":true} behind an
// `exact` SVM price. The facilitator is the stock x402Facilitator run in-process
// (upstream's "self-facilitation" example), settling against the given RPC.
//
// Env:
//   X402_PORT               port on 127.0.0.1 (0 or unset = any free port)
//   X402_RPC_URL            RPC of the (local) validator used by the facilitator
//   X402_FEE_PAYER_KEYPAIR  facilitator fee payer, Solana CLI keypair file (64-byte JSON array)
//   X402_PAY_TO             merchant address (its associated token account must exist)
//   X402_ASSET              mint address
//   X402_AMOUNT             price in base units (given as {amount, asset}: no USDC lookup)
//   X402_EMBED_BLOCKHASH=1  optional: stock server scheme embeds extra.recentBlockhash
//                           (ExactSvmServerOptions.rpcUrl); off by default like upstream
//   X402_UPTO_CHARGE        optional: GET /metered is an `upto` route too (X402_AMOUNT its
//                           ceiling) whose answer costs this many base units, reported with
//                           the stock setSettlementOverrides; the local facilitator settles
//                           `upto` as well, the seller's own new key signing the vouchers
//
//   X402_FACILITATOR_URL    optional: delegate to this facilitator over HTTP instead (the
//                           stock HTTPFacilitatorClient), with X402_FACILITATOR_KEY as its
//                           bearer API key; X402_FEE_PAYER_KEYPAIR is then not read
//
// The announced network is devnet's CAIP-2 id (stock software rejects unknown ids); its
// RPC is pointed at X402_RPC_URL. Prints exactly "LISTENING <port>" on stdout when ready;
// logs go to stderr. Exits on SIGTERM/SIGINT or when stdin closes.

import { readFileSync } from "node:fs";
import express from "express";
import { createKeyPairSignerFromBytes, generateKeyPairSigner } from "@solana/kit";
import { x402Facilitator } from "@x402/core/facilitator";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { paymentMiddleware, setSettlementOverrides, x402ResourceServer } from "@x402/express";
import { toFacilitatorSvmSigner } from "@x402/svm";
import { registerExactSvmScheme as registerFacilitatorScheme } from "@x402/svm/exact/facilitator";
import { ExactSvmScheme as ExactSvmServerScheme } from "@x402/svm/exact/server";
import { UptoSvmScheme as UptoSvmFacilitatorScheme } from "@x402/svm/upto/facilitator";
import { UptoSvmScheme as UptoSvmServerScheme } from "@x402/svm/upto/server";

const DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
// The `upto` route announces mainnet: the stock facilitator pays rounding residuals to
// the treasury of the network it names, and the test worlds' payment-channels program is
// its mainnet build (devnet's deployment has another treasury owner).
const MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`missing env ${name}`);
  return v;
}
const log = (...a) => console.error("[server.mjs]", ...a);

async function main() {
  const port = Number(process.env.X402_PORT ?? "0");
  const rpcUrl = env("X402_RPC_URL");
  const payTo = env("X402_PAY_TO");
  const asset = env("X402_ASSET");
  const amount = env("X402_AMOUNT");
  const remote = process.env.X402_FACILITATOR_URL;
  const charge = process.env.X402_UPTO_CHARGE;
  const resourceServer = (remote ? await remoteFacilitator(remote) : await localFacilitator(rpcUrl, charge)).register(
    DEVNET,
    new ExactSvmServerScheme(process.env.X402_EMBED_BLOCKHASH === "1" ? { rpcUrl } : {}),
  );
  const routes = {
    "GET /paid": {
      accepts: { scheme: "exact", network: DEVNET, payTo, price: { amount, asset } },
      description: "x402 interop test resource",
      mimeType: "application/json",
    },
  };
  if (charge) {
    // The seller's own receiver authorizer signs the vouchers; the facilitator's fee
    // payer opens and settles the channels.
    const receiverAuthorizerSigner = await generateKeyPairSigner();
    resourceServer.register(MAINNET, new UptoSvmServerScheme({ rpcUrl, receiverAuthorizerSigner }));
    routes["GET /metered"] = {
      accepts: { scheme: "upto", network: MAINNET, payTo, price: { amount, asset } },
      description: "x402 interop metered resource",
      mimeType: "application/json",
    };
  }

  const app = express();
  app.use(paymentMiddleware(routes, resourceServer));
  app.get("/paid", (_req, res) => res.json({ paid: true }));
  app.get("/metered", (_req, res) => {
    setSettlementOverrides(res, { amount: charge });
    res.json({ metered: true });
  });

  const server = app.listen(port, "127.0.0.1", () => {
    const actual = server.address().port;
    log(`payTo ${payTo}, asset ${asset}, amount ${amount}, rpc ${rpcUrl}`);
    process.stdout.write(`LISTENING ${actual}\n`);
  });
  server.on("error", (e) => {
    log("listen error:", e.message);
    process.exit(1);
  });

  const stop = (why) => {
    log(`stopping (${why})`);
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.stdin.on("end", () => stop("stdin closed"));
  process.stdin.on("error", () => stop("stdin error"));
  process.stdin.resume();
}

// The stock facilitator, in-process; defaultRpcUrl makes devnet (and every other
// network) use the local RPC.
async function localFacilitator(rpcUrl, upto) {
  const bytes = Uint8Array.from(JSON.parse(readFileSync(env("X402_FEE_PAYER_KEYPAIR"), "utf8")));
  const feePayer = await createKeyPairSignerFromBytes(bytes);
  log(`stock facilitator, fee payer ${feePayer.address}`);
  const facilitator = new x402Facilitator();
  const signer = toFacilitatorSvmSigner(feePayer, { defaultRpcUrl: rpcUrl });
  registerFacilitatorScheme(facilitator, { signer, networks: DEVNET });
  if (upto) facilitator.register(MAINNET, new UptoSvmFacilitatorScheme(signer));
  facilitator.onAfterVerify(async ({ result }) => log("verify:", JSON.stringify(result)));
  facilitator.onAfterSettle(async ({ result }) => log("settle:", JSON.stringify(result)));
  facilitator.onSettleFailure(async ({ error }) => log("settle failed:", error?.message ?? error));
  facilitator.onVerifyFailure(async ({ error }) => log("verify failed:", error?.message ?? error));
  return new x402ResourceServer({
    verify: facilitator.verify.bind(facilitator),
    settle: facilitator.settle.bind(facilitator),
    getSupported: async () => facilitator.getSupported(),
  });
}

// A facilitator over HTTP, as a seller delegating to a hosted one does.
async function remoteFacilitator(url) {
  const authorization = { Authorization: `Bearer ${env("X402_FACILITATOR_KEY")}` };
  log(`facilitator at ${url}`);
  return new x402ResourceServer(
    new HTTPFacilitatorClient({
      url,
      createAuthHeaders: async () => ({
        verify: authorization,
        settle: authorization,
        supported: authorization,
      }),
    }),
  );
}

main().catch((e) => {
  console.error(`server.mjs: ${e?.stack ?? e}`);
  process.exit(1);
});
