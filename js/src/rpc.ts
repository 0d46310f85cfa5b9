/** The ledger reads the `exact` scheme may need, over JSON-RPC. */
import { address, createSolanaRpc } from "@solana/kit";

import { networkOfGenesis, TOKEN_2022_PROGRAM, TOKEN_PROGRAM, type MintInfo } from "./constants.js";
import { base64ToBytes } from "./wire.js";
import type { PaymentSources } from "./payment.js";

/** Sources that read blockhashes, mints and the ledger's network from `rpcUrl`. */
export function rpcSources(
  rpcUrl: string,
): Required<Pick<PaymentSources, "getMint" | "getLatestBlockhash" | "getLedgerNetwork">> {
  const rpc = createSolanaRpc(rpcUrl);
  return {
    async getLedgerNetwork() {
      return networkOfGenesis(await rpc.getGenesisHash().send());
    },
    async getLatestBlockhash() {
      const { value } = await rpc.getLatestBlockhash({ commitment: "confirmed" }).send();
      return value.blockhash;
    },
    async getMint(mint: string): Promise<MintInfo> {
      const { value } = await rpc.getAccountInfo(address(mint), { encoding: "base64" }).send();
      if (!value) throw new Error(`mint ${mint} does not exist`);
      const owner = value.owner as string;
      if (owner !== TOKEN_PROGRAM && owner !== TOKEN_2022_PROGRAM) throw new Error(`${mint} is not a token mint`);
      const data = base64ToBytes(value.data[0]);
      // Mint layout: mint_authority (36), supply (8), decimals (1) at offset 44.
      if (data.length < 82) throw new Error(`${mint} is not a token mint`);
      return { decimals: data[44]!, tokenProgram: owner };
    },
  };
}
