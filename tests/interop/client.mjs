// client.mjs — a STOCK x402 buyer (npm @x402/fetch + @x402/svm 2.27.0, unmodified),
// spawned by the Rust interop tests. It makes ONE paid GET and prints ONE JSON line.
//
// Env (all required except X402_REPLAY):
//   X402_URL         paid URL to GET
//   X402_KEYPAIR     buyer keypair file, Solana CLI format (JSON array of 64 bytes)
//   X402_RPC_URL     RPC the stock client uses to read the mint and a blockhash
//                    (ClientSvmConfig.rpcUrl; the stock default would be public devnet)
//   X402_ASSET       mint address the buyer agrees to pay with
//                    (spendControls.allowedAssets: stock clients only pay known USDC otherwise)
//   X402_MAX_AMOUNT  per-payment cap in base units (allowedAssets[].maxAmountPerPayment)
//   X402_REPLAY=1    after the paid request, resend it with the identical payment header
//   X402_PAY_AFTER_MS  optional: wait this long before sending the paid request, so that
//                    slots pass between the 402 and the payment (as with a person's wallet)
//
// Stdout, one line:
//   {"status":N,"body":"...","error":"<PAYMENT-REQUIRED .error on a 402>"|null,
//    "paymentResponse":{...}|null,"paymentHeader":"..."|null
//    ,"paymentHeaderName":"PAYMENT-SIGNATURE"|"X-PAYMENT"|null
//    [,"replayStatus":N,"replayBody":"...","replayError":"<PAYMENT-REQUIRED .error>"|null]}
// Exit 0 whenever an HTTP answer came back (any status); non-zero + stderr message otherwise.

import { readFileSync } from "node:fs";
import { createKeyPairSignerFromBytes } from "@solana/kit";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { ExactSvmScheme } from "@x402/svm/exact/client";
import { ExactSvmSchemeV1 } from "@x402/svm/exact/v1/client";
import { UptoSvmScheme } from "@x402/svm/upto/client";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`missing env ${name}`);
  return v;
}

async function main() {
  const url = env("X402_URL");
  const rpcUrl = env("X402_RPC_URL");
  const asset = env("X402_ASSET");
  const maxAmount = env("X402_MAX_AMOUNT");
  const replay = process.env.X402_REPLAY === "1";
  const payAfter = Number(process.env.X402_PAY_AFTER_MS ?? "0");
  const bytes = Uint8Array.from(JSON.parse(readFileSync(env("X402_KEYPAIR"), "utf8")));
  const signer = await createKeyPairSignerFromBytes(bytes);

  // registerExactSvmScheme() does not forward rpcUrl, so register the stock schemes directly
  // (same networks it would register: "solana:*" for v2, the v1 names for v1).
  const client = new x402Client();
  client.register("solana:*", new ExactSvmScheme(signer, { rpcUrl }));
  // The stock metered scheme too: a seller offering only `upto` is paid in it.
  client.register("solana:*", new UptoSvmScheme(signer, { rpcUrl }));
  for (const v1 of ["solana", "solana-devnet", "solana-testnet"]) {
    client.registerV1(v1, new ExactSvmSchemeV1(signer, { rpcUrl }));
  }
  client.setSpendControls({
    allowedAssets: ["solana:*", "solana", "solana-devnet", "solana-testnet"].map((network) => ({
      network,
      asset,
      maxAmountPerPayment: maxAmount,
    })),
  });

  // Record the payment header the stock wrapper attaches (it calls fetch with a Request).
  let headerName = null;
  let headerValue = null;
  const recordingFetch = async (input, init) => {
    const req = new Request(input, init);
    for (const name of ["PAYMENT-SIGNATURE", "X-PAYMENT"]) {
      const v = req.headers.get(name);
      if (v) {
        headerName = name;
        headerValue = v;
      }
    }
    if (headerValue && payAfter > 0) await new Promise((resolve) => setTimeout(resolve, payAfter));
    return fetch(req);
  };

  const paidFetch = wrapFetchWithPayment(recordingFetch, client);
  const res = await paidFetch(url, { method: "GET" });
  const body = await res.text();
  const rawResp = res.headers.get("PAYMENT-RESPONSE") ?? res.headers.get("X-PAYMENT-RESPONSE");
  let paymentResponse = null;
  if (rawResp) {
    try {
      paymentResponse = decodePaymentResponseHeader(rawResp);
    } catch (e) {
      paymentResponse = { undecodable: rawResp, error: String(e) };
    }
  }
  const out = { status: res.status, body, paymentResponse, paymentHeader: headerValue, paymentHeaderName: headerName };
  // A refused payment: the reason its PAYMENT-REQUIRED header gives.
  out.error = null;
  const required = res.headers.get("PAYMENT-REQUIRED");
  if (res.status === 402 && required) {
    try {
      out.error = decodePaymentRequiredHeader(required).error ?? null;
    } catch {}
  }

  if (replay) {
    if (!headerValue) throw new Error("X402_REPLAY=1 but no payment header was sent");
    const again = await fetch(url, { method: "GET", headers: { [headerName]: headerValue } });
    out.replayStatus = again.status;
    out.replayBody = await again.text();
    // A refused payment comes back as 402 whose PAYMENT-REQUIRED header carries the reason.
    const pr = again.headers.get("PAYMENT-REQUIRED");
    out.replayError = null;
    if (pr) {
      try {
        out.replayError = decodePaymentRequiredHeader(pr).error ?? null;
      } catch {}
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(`client.mjs: ${e?.stack ?? e}\n`);
  process.exit(1);
});
