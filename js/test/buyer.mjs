// A buyer paying one request with fetchWithPayment, for tests/suite/client/js.rs to run
// against the verifier. Reads JSON on stdin: {url, secretKey: number[64], policy, mints,
// schemes?}, the policy's base units as strings. Prints {status, body, scheme, charged}
// (amounts as strings), or {error: code, message} when the payment is refused.
import { createKeyPairSignerFromBytes } from "@solana/kit";

import { fetchWithPayment, X402Error } from "../dist/index.js";

let text = "";
for await (const chunk of process.stdin) text += chunk;
const input = JSON.parse(text);
const signer = await createKeyPairSignerFromBytes(Uint8Array.from(input.secretKey));
try {
  const { response, payment, charged } = await fetchWithPayment(input.url, undefined, {
    signer,
    policy: input.policy,
    mints: input.mints,
    ...(input.schemes ? { schemes: input.schemes } : {}),
  });
  console.log(
    JSON.stringify({
      status: response.status,
      body: await response.text(),
      scheme: payment?.scheme ?? null,
      charged: charged && { amount: String(charged.amount), maximum: charged.maximum === null ? null : String(charged.maximum) },
    }),
  );
} catch (error) {
  if (!(error instanceof X402Error)) throw error;
  console.log(JSON.stringify({ error: error.code, message: error.message }));
}
