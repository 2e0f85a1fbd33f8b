/**
 * Redis Cluster hash slots, to keep a lock's fencing counter in the lock's own slot (a Lua script
 * may only touch keys of one slot). Slot = CRC16/XMODEM(hash part) mod 16384, where the hash part
 * is the text inside the first `{...}` of the key if non-empty, else the whole key.
 */

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = crc & 0xffff;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

export const SLOTS = 16384;

/** The cluster slot of `key`, with Redis's hash-tag rule. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // {
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(bytes) % SLOTS;
}

const tags = new Map<number, string>();

/** A short string whose slot is `slot` (found once, then cached): a hash tag for that slot. */
export function tagForSlot(slot: number): string {
  let tag = tags.get(slot);
  for (let i = 0; tag === undefined; i++) {
    const candidate = i.toString(36);
    if (crc16(Buffer.from(candidate)) % SLOTS === slot) tag = candidate;
  }
  tags.set(slot, tag);
  return tag;
}

/**
 * A key of the library's own next to the lock `key`, in the same cluster slot (so that one script
 * may touch both): `[namespace_]\x1f<label>:{<tag of the slot>}<rest>`. It holds a control
 * character, which no lock name may contain, so it can never be a lock's key; with a namespace it
 * starts with `namespace_`. A namespace with braces of its own could move it to another slot:
 * then it goes without the namespace.
 */
export function siblingKey(
  key: string,
  namespace: string | null,
  label: string,
  rest = '',
): string {
  const slot = keySlot(key);
  const own = `\u001f${label}:{${tagForSlot(slot)}}${rest}`;
  const prefixed = namespace === null ? own : `${namespace}_${own}`;
  return keySlot(prefixed) === slot ? prefixed : own;
}
