import { test } from "node:test";
import assert from "node:assert/strict";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { createX402Store, useX402 } from "../dist/react.js";
import { encodeHeader } from "../dist/index.js";
import * as f from "./fixtures.mjs";

test("store: loading, then payment; errors are kept and rethrown", async () => {
  const settlement = { success: true, transaction: "t", network: f.DEVNET };
  let n = 0;
  const fetch = async () =>
    ++n === 1 ? f.response402() : new Response("ok", { headers: { "PAYMENT-RESPONSE": encodeHeader(settlement) } });
  // Without rpcUrl, the offer's network is paid only when the policy names it.
  const policy = { networks: [f.DEVNET] };
  const store = createX402Store({ fetch, signer: await f.buyerSigner(), policy });
  const seen = [];
  store.subscribe(() => seen.push(store.getState()));
  const pending = store.call("/api/generate");
  assert.equal(store.getState().loading, true);
  const response = await pending;
  assert.equal(await response.text(), "ok");
  assert.deepEqual(store.getState(), { loading: false, error: null, payment: settlement });
  assert.deepEqual(seen.map((s) => s.loading), [true, false]);

  store.setOptions({ fetch: async () => f.response402(), policy });
  await assert.rejects(store.call("/api/generate"), (e) => e.code === "no_wallet");
  assert.equal(store.getState().error.code, "no_wallet");
  assert.equal(store.getState().loading, false);
  assert.deepEqual(store.getState().payment, settlement, "last settlement kept");
});

test("useX402 renders its initial state", () => {
  let hook;
  function App() {
    hook = useX402({});
    return createElement("p", null, `loading=${hook.loading} payment=${hook.payment}`);
  }
  assert.equal(renderToString(createElement(App)), "<p>loading=false payment=null</p>");
  assert.equal(typeof hook.call, "function");
  assert.equal(hook.error, null);
});
