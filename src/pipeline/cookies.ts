// Flow cookies: [round:16][category:8][object:40]. The object part is a stable hash of the
// Kubernetes object a flow serves, so one Service's flows can be found (cookie/mask) and a
// previous round's flows deleted after the new round is installed.

export const Category = {
  base: 1,
  pod: 2,
  node: 3,
  service: 4,
  endpoint: 5,
} as const;
export type CategoryName = keyof typeof Category;

const OBJECT_BITS = 40n;
const OBJECT_MASK = (1n << OBJECT_BITS) - 1n;

/** FNV-1a over two 32-bit lanes, folded to 40 bits: stable across runs and platforms, and cheap. */
export function objectId(key: string): bigint {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x0100019d);
  }
  return (
    (BigInt(h1 >>> 0) << 8n) ^ BigInt((h2 >>> 0) & 0xff) ^ ((BigInt(h2 >>> 8) << 16n) & OBJECT_MASK)
  );
}

export function makeCookie(round: number, category: CategoryName, object: bigint): bigint {
  return (BigInt(round & 0xffff) << 48n) | (BigInt(Category[category]) << OBJECT_BITS) | object;
}

export function decodeCookie(cookie: bigint): { round: number; category: number; object: bigint } {
  return {
    round: Number(cookie >> 48n),
    category: Number((cookie >> OBJECT_BITS) & 0xffn),
    object: cookie & OBJECT_MASK,
  };
}

/** Mask that selects every flow of one object in any round: use with `cookie=C/MASK`. */
export const OBJECT_COOKIE_MASK = (0xffn << OBJECT_BITS) | OBJECT_MASK;
/** Mask that selects every flow of one round. */
export const ROUND_COOKIE_MASK = 0xffffn << 48n;
