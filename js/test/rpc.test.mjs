import { test } from "node:test";
import assert from "node:assert/strict";
import { fetchWithPayment, decodeHeader, rpcSources, TOKEN_2022_PROGRAM } from "../dist/index.js";
import * as f from "./fixtures.mjs";

const MINT = f.key(7);
const BLOCKHASH = f.key(12);

/** Answers kit's JSON-RPC calls through a patched globalThis.fetch. */
async function withRpc(run) {
  const original = globalThis.fetch;
  const methods = [];
  globalThis.fetch = async (url, init) => {
    assert.equal(String(url), "http://127.0.0.1:8899");
    const { id, method } = JSON.parse(init.body);
    methods.push(method);
    const data = new Uint8Array(82);
    data[44] = 9;
    const result =
      method === "getLatestBlockhash"
        ? { context: { slot: 1 }, value: { blockhash: BLOCKHASH, lastValidBlockHeight: 100 } }
        : {
            context: { slot: 1 },
            value: {
              owner: TOKEN_2022_PROGRAM,
              data: [Buffer.from(data).toString("base64"), "base64"],
              executable: false,
              lamports: 1,
              rentEpoch: 0,
              space: 82,
            },
          };
    return Response.json({ jsonrpc: "2.0", id, result });
  };
  try {
    return await run(methods);
  } finally {
    globalThis.fetch = original;
  }
}

test("rpcSources reads the blockhash and the mint's decimals and token program", () =>
  withRpc(async () => {
    const sources = rpcSources("http://127.0.0.1:8899");
    assert.equal(await sources.getLatestBlockhash(), BLOCKHASH);
    assert.deepEqual(await sources.getMint(MINT), { decimals: 9, tokenProgram: TOKEN_2022_PROGRAM });
  }));

test("exact offer without blockhash, unknown mint: both from rpcUrl, never from the seller", () =>
  withRpc(async (methods) => {
    const offer = f.exactOffer({ asset: MINT });
    offer.extra = { feePayer: f.FEE_PAYER, memo: "m", decimals: 2 };
    const calls = [];
    const fetch = async (_url, init) => {
      calls.push(new Headers(init?.headers));
      return calls.length === 1 ? f.response402(f.challengeV2([offer])) : new Response("ok");
    };
    await fetchWithPayment("http://x/api", undefined, { fetch, signer: await f.buyerSigner(), rpcUrl: "http://127.0.0.1:8899" });
    assert.deepEqual(methods.sort(), ["getAccountInfo", "getLatestBlockhash"]);
    const { message } = f.decodeTx(decodeHeader(calls[1].get("PAYMENT-SIGNATURE")).payload.transaction);
    assert.equal(message.lifetimeToken, BLOCKHASH);
    const transfer = f.resolve(message, message.instructions[2]);
    assert.equal(transfer.program, TOKEN_2022_PROGRAM);
    assert.equal(transfer.data.at(-1), 9);
    assert.equal(transfer.accounts[0], f.ata(f.BUYER, MINT, TOKEN_2022_PROGRAM));
  }));
