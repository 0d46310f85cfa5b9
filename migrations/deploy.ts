// Anchor's deploy hook: `anchor migrate` runs this after `anchor deploy`.
//
// The receipts program needs no set-up after deployment: it has no global state, no
// admin and no config account. Every receipt is created by `pay` itself. This hook
// only reports where the program went, so that a deploy log says what to verify.

import * as anchor from "@anchor-lang/core";

module.exports = async function (provider: anchor.AnchorProvider) {
  anchor.setProvider(provider);
  const programId = anchor.workspace.X402Receipts?.programId;
  console.log(
    `x402_receipts deployed at ${programId?.toBase58() ?? "(see Anchor.toml)"} ` +
      `on ${provider.connection.rpcEndpoint.replace(/\?.*$/, "")}`
  );
};
