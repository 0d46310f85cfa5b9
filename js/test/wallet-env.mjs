// Loads dist/test-wallet.js into a fake `window` (an EventTarget) and captures the wallet.
import { readFileSync } from "node:fs";
import vm from "node:vm";

export function loadTestWallet(config) {
  const win = new EventTarget();
  win.__X402_TEST_WALLET__ = config;
  const registered = [];
  win.addEventListener("wallet-standard:register-wallet", (event) =>
    event.detail({ register: (...wallets) => void registered.push(...wallets) }),
  );
  const previous = globalThis.window;
  globalThis.window = win;
  try {
    vm.runInThisContext(readFileSync(new URL("../dist/test-wallet.js", import.meta.url), "utf8"));
  } finally {
    if (previous === undefined) delete globalThis.window;
    else globalThis.window = previous;
  }
  return { wallet: registered[0], registered, window: win, config };
}
