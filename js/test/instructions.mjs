// Prints the instructions of the schemes' transactions as this package compiles them,
// for tests/suite/client/js.rs to compare with what the Rust side builds. Argument: JSON
// {receipt: {offer, payer}, exact: {offer, payer, mint, blockhash}, upto: {offer, payer,
// mint, blockhash, salt, openSlot}}, amounts and the salt as strings.
import {
  decompileTransactionMessage,
  getBase16Decoder,
  getCompiledTransactionMessageDecoder,
} from "@solana/kit";

import { buildExactTransaction, buildReceiptTransaction, buildUptoTransaction } from "../dist/index.js";

const input = JSON.parse(process.argv[2]);
const offer = (o) => ({ ...o, amount: BigInt(o.amount) });

/** Each instruction: its program, its accounts as [address, signer, writable], its data (hex). */
function shown(transaction) {
  const message = decompileTransactionMessage(getCompiledTransactionMessageDecoder().decode(transaction.messageBytes));
  return message.instructions.map((ix) => ({
    program: ix.programAddress,
    accounts: (ix.accounts ?? []).map((a) => [a.address, a.role >= 2, (a.role & 1) === 1]),
    data: getBase16Decoder().decode(ix.data ?? new Uint8Array()),
  }));
}

const receipt = await buildReceiptTransaction(offer(input.receipt.offer), input.receipt.payer);
const exact = await buildExactTransaction(offer(input.exact.offer), {
  payer: input.exact.payer,
  mint: input.exact.mint,
  blockhash: input.exact.blockhash,
});
const upto = await buildUptoTransaction(offer(input.upto.offer), {
  payer: input.upto.payer,
  mint: input.upto.mint,
  blockhash: input.upto.blockhash,
  salt: BigInt(input.upto.salt),
  openSlot: input.upto.openSlot,
});
console.log(JSON.stringify({ receipt: shown(receipt), exact: shown(exact), upto: shown(upto.transaction) }));
