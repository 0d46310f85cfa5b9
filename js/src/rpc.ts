/** The ledger reads the `exact` and `upto` schemes may need, over JSON-RPC. */
import { address, createSolanaRpc, fetchEncodedAccount } from "@solana/kit";

import { networkOfGenesis, type MintInfo } from "./constants.js";
import { readMint } from "./mint.js";
import type { PaymentSources } from "./payment.js";

/** Sources that read blockhashes, slots, mints and the ledger's network from `rpcUrl`. */
export function rpcSources(
  rpcUrl: string,
): Required<Pick<PaymentSources, "getMint" | "getLatestBlockhash" | "getLedgerNetwork" | "getSlot">> {
  const rpc = createSolanaRpc(rpcUrl);
  return {
    async getLedgerNetwork() {
      return networkOfGenesis(await rpc.getGenesisHash().send());
    },
    async getLatestBlockhash() {
      const { value } = await rpc.getLatestBlockhash({ commitment: "confirmed" }).send();
      return value.blockhash;
    },
    async getSlot() {
      return Number(await rpc.getSlot({ commitment: "confirmed" }).send());
    },
    async getMint(mint: string): Promise<MintInfo> {
      const account = await fetchEncodedAccount(rpc, address(mint));
      if (!account.exists) throw new Error(`mint ${mint} does not exist`);
      return readMint(mint, account.programAddress, account.data);
    },
  };
}
