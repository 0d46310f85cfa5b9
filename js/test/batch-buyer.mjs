// A batch-settlement buyer, for tests/suite/client/js.rs to run against the verifier:
// pays `requests` requests of `url` with fetchWithPayment, its channel kept in a file
// store in `storeDir`, then closes the channel. Reads JSON on stdin: {url, secretKey:
// number[64], policy, mints, requests, storeDir}, the policy's base units as strings.
// Prints {statuses, charged, refunded} (amounts as strings), or {error: code, message}.
import { createKeyPairSignerFromBytes } from "@solana/kit";

import { closeChannel, fetchWithPayment, fileChannelStore, X402Error } from "../dist/index.js";

let text = "";
for await (const chunk of process.stdin) text += chunk;
const input = JSON.parse(text);
const signer = await createKeyPairSignerFromBytes(Uint8Array.from(input.secretKey));
const channelStore = fileChannelStore(input.storeDir);
try {
  const statuses = [];
  const charged = [];
  for (let i = 0; i < input.requests; i++) {
    const { response, charged: cost } = await fetchWithPayment(input.url, undefined, {
      signer,
      policy: input.policy,
      mints: input.mints,
      schemes: ["batch-settlement"],
      channelStore,
    });
    await response.text();
    statuses.push(response.status);
    charged.push(cost && String(cost.amount));
  }
  const refunded = await closeChannel(input.url, { signer, channelStore });
  console.log(JSON.stringify({ statuses, charged, refunded: String(refunded) }));
} catch (error) {
  if (!(error instanceof X402Error)) throw error;
  console.log(JSON.stringify({ error: error.code, message: error.message }));
}
