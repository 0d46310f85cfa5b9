/** React binding: useX402(options) → { call, loading, error, payment }. */
import { useCallback, useRef, useSyncExternalStore } from "react";

import { X402Error } from "./errors.js";
import { fetchWithPayment, type FetchWithPaymentOptions } from "./fetch.js";
import type { Settlement } from "./wire.js";

export interface X402State {
  loading: boolean;
  error: X402Error | Error | null;
  /** The last settlement returned by the server. */
  payment: Settlement | null;
}

export interface X402Store {
  getState(): X402State;
  subscribe(listener: () => void): () => void;
  /**
   * Runs fetchWithPayment; resolves to the Response, rejects with the error (also kept in
   * state). `overrides` replace options for this call only (e.g. a signer just connected).
   */
  call(url: string | URL, init?: RequestInit, overrides?: Partial<FetchWithPaymentOptions>): Promise<Response>;
  /** Replaces the options used by later calls (a wallet connecting changes the signer). */
  setOptions(options: FetchWithPaymentOptions): void;
}

/** The framework-free state machine behind useX402. */
export function createX402Store(initial: FetchWithPaymentOptions = {}): X402Store {
  let options = initial;
  let state: X402State = { loading: false, error: null, payment: null };
  const listeners = new Set<() => void>();
  const set = (next: Partial<X402State>) => {
    state = { ...state, ...next };
    for (const l of listeners) l();
  };
  let pending = 0;
  return {
    getState: () => state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setOptions(next) {
      options = next;
    },
    async call(url, init, overrides) {
      pending++;
      set({ loading: true, error: null });
      try {
        const { response, settlement } = await fetchWithPayment(url, init, overrides ? { ...options, ...overrides } : options);
        pending--;
        set({ loading: pending > 0, ...(settlement ? { payment: settlement } : {}) });
        return response;
      } catch (error) {
        pending--;
        set({ loading: pending > 0, error: error as Error });
        throw error;
      }
    },
  };
}

export interface UseX402 extends X402State {
  call(url: string | URL, init?: RequestInit, overrides?: Partial<FetchWithPaymentOptions>): Promise<Response>;
}

/** Pays x402 challenges from React: `const { call, loading, error, payment } = useX402({ signer })`. */
export function useX402(options: FetchWithPaymentOptions = {}): UseX402 {
  const store = useRef<X402Store | null>(null);
  if (!store.current) store.current = createX402Store(options);
  store.current.setOptions(options);
  const s = store.current;
  const state = useSyncExternalStore(s.subscribe, s.getState, s.getState);
  const call = useCallback(
    (url: string | URL, init?: RequestInit, overrides?: Partial<FetchWithPaymentOptions>) => s.call(url, init, overrides),
    [s],
  );
  return { ...state, call };
}

export { X402Error };
export type { FetchWithPaymentOptions, Settlement };
