/**
 * What a mint account says about itself, read as protocol/src/mint.rs reads it: the base
 * mint with @solana-program/token's decoder, then Token-2022's extension types.
 */
import { getU16Decoder, type ReadonlyUint8Array } from "@solana/kit";
import { getMintDecoder, getMintSize } from "@solana-program/token";

import { TOKEN_2022_PROGRAM, TOKEN_PROGRAM, type MintInfo } from "./constants.js";

// Token-2022's layout past the base mint: zeros up to a token account's size, the account
// type, then entries of (u16 type, u16 length, value). @solana-program/token-2022 decodes
// them, but none of its releases works with @solana/kit 8, so they are read here.
const TOKEN_ACCOUNT_SIZE = 165;
const ACCOUNT_TYPE_MINT = 1;
const EXTENSION_UNINITIALIZED = 0;
const EXTENSION_TRANSFER_FEE_CONFIG = 1;
const EXTENSION_TRANSFER_HOOK = 14;

/** The extension types of a mint's data (none for a base mint), or null when malformed. */
function extensionTypes(data: ReadonlyUint8Array): number[] | null {
  const base = getMintSize();
  if (data.length === base) return [];
  if (data.length <= TOKEN_ACCOUNT_SIZE || data[TOKEN_ACCOUNT_SIZE] !== ACCOUNT_TYPE_MINT) return null;
  if (data.subarray(base, TOKEN_ACCOUNT_SIZE).some((byte) => byte !== 0)) return null;
  const u16 = getU16Decoder();
  const types: number[] = [];
  // Fewer than two bytes left, or an uninitialized type, ends the list (as in Rust).
  for (let at = TOKEN_ACCOUNT_SIZE + 1; at + 2 <= data.length; ) {
    const [type, lengthAt] = u16.read(data, at);
    if (type === EXTENSION_UNINITIALIZED) break;
    if (lengthAt + 2 > data.length) return null;
    const [length, valueAt] = u16.read(data, lengthAt);
    if (valueAt + length > data.length) return null;
    types.push(type);
    at = valueAt + length;
  }
  return types;
}

/** The facts of `mint` from its account (owner and data); throws when it is no token mint. */
export function readMint(mint: string, owner: string, data: ReadonlyUint8Array): MintInfo {
  const extensions = owner === TOKEN_PROGRAM || owner === TOKEN_2022_PROGRAM ? extensionTypes(data) : null;
  if (!extensions) throw new Error(`${mint} is not a token mint`);
  const info: MintInfo = { decimals: getMintDecoder().decode(data).decimals, tokenProgram: owner };
  // A transfer fee keeps part of the amount from the payee; a hook runs foreign code.
  if (extensions.some((type) => type === EXTENSION_TRANSFER_FEE_CONFIG || type === EXTENSION_TRANSFER_HOOK)) {
    info.deliversInFull = false;
  }
  return info;
}
