/**
 * Where a `batch-settlement` buyer keeps its channels between requests (and restarts):
 * what each holds, what the seller accepted, and the most it signed.
 */
import type { ChannelConfig } from "./batch.js";
import type { PaymentRequirementsV1, PaymentRequirementsV2, ResourceInfo } from "./wire.js";

/** A channel the buyer opened and pays through. */
export interface HeldChannel {
  /** The channel's address. */
  channel: string;
  /** The terms it serves: channelKey(...). */
  key: string;
  /** CAIP-2. */
  network: string;
  /** The URL of the request it last paid: the next request there sends a voucher at once. */
  resource: string;
  /** The x402 version of the offer it pays. */
  x402Version: 1 | 2;
  /** The last offer seen for it, as the seller sent it: echoed as `accepted`. */
  accepted: PaymentRequirementsV2 | PaymentRequirementsV1;
  /** The challenge's resource (v2), echoed with the payment. */
  resourceInfo?: ResourceInfo;
  channelConfig: ChannelConfig;
  /** Base units escrowed (the `open`'s deposit and the top-ups that were answered). */
  deposit: bigint;
  /** What the seller accepted, cumulatively: the last answer's channelState.chargedCumulativeAmount. */
  confirmed: bigint;
  /** The highest cumulative amount signed for it, written before each voucher leaves. */
  signed: bigint;
  /** Closed (refunded, or closing at the seller): never paid through again. */
  closed: boolean;
  /** Unix ms of the last write. */
  updatedAt: number;
}

/** Where channels are kept. `get` and `forResource` return open channels only (the newest). */
export interface ChannelStore {
  /** The open channel held under `key`, or null. */
  get(key: string): Promise<HeldChannel | null>;
  /** Writes `channel` (by its address), replacing what was held for it. */
  put(channel: HeldChannel): Promise<void>;
  /** The open channel that last paid `resource` (a request URL), or null. */
  forResource(resource: string): Promise<HeldChannel | null>;
}

/**
 * The key of the channels that serve an offer: who pays, and what a channel binds of the
 * seller's (network, fee payer, receiver authorizer, payTo, mint, grace period). A new
 * price is paid through the same channel.
 */
export function channelKey(parts: {
  payer: string;
  network: string;
  feePayer: string;
  receiverAuthorizer: string;
  payTo: string;
  asset: string;
  withdrawDelay: number;
}): string {
  return [parts.payer, parts.network, parts.feePayer, parts.receiverAuthorizer, parts.payTo, parts.asset, parts.withdrawDelay].join("|");
}

function newest(channels: Iterable<HeldChannel>, matches: (c: HeldChannel) => boolean): HeldChannel | null {
  let found: HeldChannel | null = null;
  for (const c of channels) {
    if (!c.closed && matches(c) && (!found || c.updatedAt >= found.updatedAt)) found = c;
  }
  return found;
}

/** A store in memory: channels last as long as the process. */
export function memoryChannelStore(): ChannelStore {
  const held = new Map<string, HeldChannel>();
  const copy = (c: HeldChannel | null) => (c ? structuredClone(c) : null);
  return {
    async get(key) {
      return copy(newest(held.values(), (c) => c.key === key));
    },
    async put(channel) {
      held.set(channel.channel, structuredClone(channel));
    },
    async forResource(resource) {
      return copy(newest(held.values(), (c) => c.resource === resource));
    },
  };
}

/** The store fetchWithPayment uses without options.channelStore: in memory, shared by the process. */
export const defaultChannelStore: ChannelStore = memoryChannelStore();

/** A held channel as a file holds it: its amounts as decimal strings. */
export function channelToJson(channel: HeldChannel): Record<string, unknown> {
  return {
    format: 1,
    ...channel,
    deposit: channel.deposit.toString(),
    confirmed: channel.confirmed.toString(),
    signed: channel.signed.toString(),
  };
}

/** A held channel read back from channelToJson's form; null when it is not one. */
export function channelFromJson(value: unknown): HeldChannel | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const amount = (x: unknown) => (typeof x === "string" && /^\d{1,20}$/.test(x) ? BigInt(x) : null);
  const deposit = amount(v.deposit);
  const confirmed = amount(v.confirmed);
  const signed = amount(v.signed);
  const strings = ["channel", "key", "network", "resource"].every((k) => typeof v[k] === "string");
  if (
    v.format !== 1 ||
    !strings ||
    deposit === null ||
    confirmed === null ||
    signed === null ||
    (v.x402Version !== 1 && v.x402Version !== 2) ||
    typeof v.accepted !== "object" ||
    v.accepted === null ||
    typeof v.channelConfig !== "object" ||
    v.channelConfig === null ||
    typeof v.closed !== "boolean"
  ) {
    return null;
  }
  const { format, ...rest } = v;
  void format;
  return {
    ...(rest as unknown as HeldChannel),
    deposit,
    confirmed,
    signed,
    updatedAt: typeof v.updatedAt === "number" ? v.updatedAt : 0,
  };
}

/** The parts of node:fs/promises and node:path the file store uses. */
interface FileHandle {
  writeFile(data: string): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}
interface NodeFs {
  mkdir(path: string, options: { recursive: true; mode?: number }): Promise<unknown>;
  readdir(path: string): Promise<string[]>;
  readFile(path: string, encoding: "utf8"): Promise<string>;
  open(path: string, flags: string, mode?: number): Promise<FileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true }): Promise<void>;
}
interface NodePath {
  join(...parts: string[]): string;
}

/** Node's fs and path, without an import a browser bundle would have to resolve. */
function node(): { fs: NodeFs; path: NodePath } {
  const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  if (typeof get !== "function") throw new Error("fileChannelStore needs Node.js 20.16 or later");
  return { fs: get("node:fs/promises") as NodeFs, path: get("node:path") as NodePath };
}

/**
 * A store in `dir` (Node.js): one JSON file per channel, named by its address, each
 * written atomically (a temporary file, fsync, rename), so a restart continues each
 * channel at what it last recorded. Files are readable by their owner only.
 */
export function fileChannelStore(dir: string): ChannelStore {
  async function all(): Promise<HeldChannel[]> {
    const { fs, path } = node();
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return [];
      throw error;
    }
    const channels: HeldChannel[] = [];
    for (const name of names) {
      if (!name.endsWith(".json") || name.startsWith(".")) continue;
      try {
        const channel = channelFromJson(JSON.parse(await fs.readFile(path.join(dir, name), "utf8")));
        if (channel) channels.push(channel);
      } catch {
        // Not one of ours, or unreadable: skipped.
      }
    }
    return channels;
  }
  return {
    async get(key) {
      return newest(await all(), (c) => c.key === key);
    },
    async forResource(resource) {
      return newest(await all(), (c) => c.resource === resource);
    },
    async put(channel) {
      const { fs, path } = node();
      if (!/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(channel.channel)) throw new Error(`not a channel address: ${channel.channel}`);
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const file = path.join(dir, `${channel.channel}.json`);
      const suffix = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");
      const temporary = path.join(dir, `.${channel.channel}.${suffix}.tmp`);
      try {
        const handle = await fs.open(temporary, "wx", 0o600);
        try {
          await handle.writeFile(JSON.stringify(channelToJson(channel), null, 2));
          await handle.sync();
        } finally {
          await handle.close();
        }
        await fs.rename(temporary, file);
      } catch (error) {
        await fs.rm(temporary, { force: true }).catch(() => undefined);
        throw error;
      }
      // The rename itself made durable: best effort (not every platform opens directories).
      try {
        const handle = await fs.open(dir, "r");
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch {
        // ignored
      }
    },
  };
}
