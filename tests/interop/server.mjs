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
import { createKeyPairSignerFromBytes } from "@solana/kit";
import { x402Facilitator } from "@x402/core/facilitator";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { toFacilitatorSvmSigner } from "@x402/svm";
import { registerExactSvmScheme as registerFacilitatorScheme } from "@x402/svm/exact/facilitator";
import { ExactSvmScheme as ExactSvmServerScheme } from "@x402/svm/exact/server";

const DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

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
  const resourceServer = (remote ? await remoteFacilitator(remote) : await localFacilitator(rpcUrl)).register(
    DEVNET,
    new ExactSvmServerScheme(process.env.X402_EMBED_BLOCKHASH === "1" ? { rpcUrl } : {}),
  );

  const app = express();
  app.use(
    paymentMiddleware(
      {
        "GET /paid": {
          accepts: { scheme: "exact", network: DEVNET, payTo, price: { amount, asset } },
          description: "x402 interop test resource",
          mimeType: "application/json",
        },
      },
      resourceServer,
    ),
  );
  app.get("/paid", (_req, res) => res.json({ paid: true }));

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
async function localFacilitator(rpcUrl) {
  const bytes = Uint8Array.from(JSON.parse(readFileSync(env("X402_FEE_PAYER_KEYPAIR"), "utf8")));
  const feePayer = await createKeyPairSignerFromBytes(bytes);
  log(`stock facilitator, fee payer ${feePayer.address}`);
  const facilitator = new x402Facilitator();
  registerFacilitatorScheme(facilitator, {
    signer: toFacilitatorSvmSigner(feePayer, { defaultRpcUrl: rpcUrl }),
    networks: DEVNET,
  });
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
