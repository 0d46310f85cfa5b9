/** The x402 HTTP wire: headers of base64 JSON, v2 and v1 challenges, settlements. */
import { getBase64Decoder, getBase64Encoder } from "@solana/kit";

export const PAYMENT_REQUIRED = "PAYMENT-REQUIRED";
export const PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE";
export const PAYMENT_RESPONSE = "PAYMENT-RESPONSE";
export const X_PAYMENT = "X-PAYMENT";
export const X_PAYMENT_RESPONSE = "X-PAYMENT-RESPONSE";

/** Longest header value read, as the Rust side (16 KiB). */
export const MAX_HEADER_BYTES = 16 * 1024;

export function bytesToBase64(bytes: Uint8Array): string {
  return getBase64Decoder().decode(bytes);
}

/** Standard or URL-safe base64, padded or not. */
export function base64ToBytes(text: string): Uint8Array {
  // Kit reads the standard alphabet, padded or not; the URL-safe one maps onto it.
  const standard = text.trim().replace(/-/g, "+").replace(/_/g, "/");
  if (standard.length % 4 === 1) throw new Error("invalid base64");
  return getBase64Encoder().encode(standard) as Uint8Array;
}

/** Base64 (standard, padded) of the compact JSON of `value`, as the Rust `encode_header`. */
export function encodeHeader(value: unknown): string {
  return bytesToBase64(new TextEncoder().encode(JSON.stringify(value)));
}

/** Reads a base64 JSON header value. Throws on oversize, bad base64 or bad JSON. */
export function decodeHeader<T = unknown>(value: string): T {
  if (value.length > MAX_HEADER_BYTES) throw new Error("x402 header value too large");
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64ToBytes(value))) as T;
}

export interface ResourceInfo {
  url: string;
  description?: string;
  mimeType?: string;
}

/** A v2 `accepts` entry. */
export interface PaymentRequirementsV2 {
  scheme: string;
  network: string;
  amount: string;
  asset: string;
  payTo: string;
  maxTimeoutSeconds: number;
  extra?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A v1 `accepts` entry. */
export interface PaymentRequirementsV1 {
  scheme: string;
  network: string;
  maxAmountRequired: string;
  resource: string;
  description?: string;
  mimeType?: string;
  payTo: string;
  maxTimeoutSeconds: number;
  asset: string;
  extra?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface PaymentRequiredV2 {
  x402Version: 2;
  error?: string;
  resource: ResourceInfo;
  accepts: PaymentRequirementsV2[];
  extensions?: Record<string, unknown>;
}

export interface PaymentRequiredV1 {
  x402Version: 1;
  error?: string;
  accepts: PaymentRequirementsV1[];
}

/** One offer of a challenge, in either version, with the entry exactly as received. */
export interface Offer {
  version: 1 | 2;
  scheme: string;
  network: string;
  /** Base units. */
  amount: bigint;
  asset: string;
  payTo: string;
  maxTimeoutSeconds: number;
  extra: Record<string, unknown>;
  resource: ResourceInfo;
  /** The `accepts` entry as the server sent it: echoed verbatim as v2 `accepted`. */
  raw: PaymentRequirementsV2 | PaymentRequirementsV1;
}

export interface Challenge {
  version: 1 | 2;
  error?: string;
  resource?: ResourceInfo;
  offers: Offer[];
  /** Offers that could not be read at all, with why. */
  malformed: { raw: unknown; reason: string }[];
  raw: PaymentRequiredV2 | PaymentRequiredV1;
}

/** The decoded PAYMENT-RESPONSE / X-PAYMENT-RESPONSE. */
export interface Settlement {
  success: boolean;
  transaction: string;
  network: string;
  payer?: string;
  errorReason?: string;
  amount?: string;
  /** Our `receipt` scheme's additions. */
  reference?: string;
  receipt?: string;
  scheme?: string;
  [key: string]: unknown;
}

const U64_MAX = (1n << 64n) - 1n;

function baseUnits(value: unknown): bigint | null {
  if (typeof value !== "string" || !/^\d{1,20}$/.test(value)) return null;
  const n = BigInt(value);
  return n <= U64_MAX ? n : null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readOffer(
  version: 1 | 2,
  entry: unknown,
  resource: ResourceInfo | undefined,
): Offer | string {
  if (!isObject(entry)) return "not an object";
  const str = (k: string) => (typeof entry[k] === "string" ? (entry[k] as string) : null);
  const scheme = str("scheme");
  const network = str("network");
  const asset = str("asset");
  const payTo = str("payTo");
  if (!scheme) return "no scheme";
  if (!network) return "no network";
  if (!asset) return "no asset";
  if (!payTo) return "no payTo";
  const amount = baseUnits(version === 2 ? entry.amount : entry.maxAmountRequired);
  if (amount === null) return version === 2 ? "bad amount" : "bad maxAmountRequired";
  const extra = isObject(entry.extra) ? entry.extra : {};
  const res: ResourceInfo =
    version === 2
      ? (resource ?? { url: "" })
      : {
          url: str("resource") ?? "",
          ...(str("description") !== null ? { description: str("description")! } : {}),
          ...(str("mimeType") !== null ? { mimeType: str("mimeType")! } : {}),
        };
  return {
    version,
    scheme,
    network,
    amount,
    asset,
    payTo,
    maxTimeoutSeconds: typeof entry.maxTimeoutSeconds === "number" ? entry.maxTimeoutSeconds : 0,
    extra,
    resource: res,
    raw: entry as unknown as PaymentRequirementsV2,
  };
}

/** Reads a challenge object (v2 PaymentRequired or v1 body). Returns null when it is not one. */
export function parseChallenge(value: unknown): Challenge | null {
  if (!isObject(value) || !Array.isArray(value.accepts)) return null;
  const version = value.x402Version === 1 ? 1 : value.x402Version === 2 ? 2 : null;
  if (version === null) return null;
  const resource = version === 2 && isObject(value.resource) ? (value.resource as unknown as ResourceInfo) : undefined;
  const offers: Offer[] = [];
  const malformed: Challenge["malformed"] = [];
  for (const entry of value.accepts) {
    const offer = readOffer(version, entry, resource);
    if (typeof offer === "string") malformed.push({ raw: entry, reason: offer });
    else offers.push(offer);
  }
  return {
    version,
    ...(typeof value.error === "string" ? { error: value.error } : {}),
    ...(resource ? { resource } : {}),
    offers,
    malformed,
    raw: value as unknown as PaymentRequiredV2,
  };
}

/**
 * The challenge of a 402 response: the PAYMENT-REQUIRED header (v2), else the JSON body
 * (v1, or v2 in a body). Consumes the body only when the header is absent. Null when
 * neither holds one.
 */
export async function readChallenge(response: Response): Promise<Challenge | null> {
  const header = response.headers.get(PAYMENT_REQUIRED);
  if (header) {
    try {
      const parsed = parseChallenge(decodeHeader(header));
      if (parsed) return parsed;
    } catch {
      // fall back to the body
    }
  }
  try {
    return parseChallenge(JSON.parse(await response.text()));
  } catch {
    return null;
  }
}

/** The settlement header of a response (v2 or v1), decoded; null when absent or unreadable. */
export function readSettlement(response: Response): Settlement | null {
  const header = response.headers.get(PAYMENT_RESPONSE) ?? response.headers.get(X_PAYMENT_RESPONSE);
  if (!header) return null;
  try {
    const value = decodeHeader<Settlement>(header);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

/** The request header that carries a payment for `offer`: name and value. */
export function paymentHeader(
  challenge: Pick<Challenge, "version" | "resource">,
  offer: Offer,
  payload: object,
): { name: string; value: string } {
  if (challenge.version === 2) {
    return {
      name: PAYMENT_SIGNATURE,
      value: encodeHeader({
        x402Version: 2,
        ...(challenge.resource ? { resource: challenge.resource } : {}),
        accepted: offer.raw,
        payload,
      }),
    };
  }
  return {
    name: X_PAYMENT,
    value: encodeHeader({ x402Version: 1, scheme: offer.scheme, network: offer.network, payload }),
  };
}
