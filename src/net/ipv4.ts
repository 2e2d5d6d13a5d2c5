// IPv4 helpers on plain numbers: parsing, CIDR membership, formatting.

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function isIPv4(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => OCTET.test(p));
}

/** Dotted quad → unsigned 32-bit number. Hot in large compiles: parsed by hand, no split(). */
export function ipToInt(ip: string): number {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return n * 256 + octet;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  network: number;
  prefix: number;
}

export function parseCidr(s: unknown): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || !isIPv4(ip) || !/^\d{1,2}$/.test(len ?? '')) return undefined;
  const prefix = Number(len);
  if (prefix > 32) return undefined;
  return { network: (ipToInt(ip) & prefixMask(prefix)) >>> 0, prefix };
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function cidrContains(c: Cidr, ip: string): boolean {
  return (ipToInt(ip) & prefixMask(c.prefix)) >>> 0 === c.network;
}

export function formatCidr(c: Cidr): string {
  return `${intToIp(c.network)}/${c.prefix}`;
}

/** The n-th address of a CIDR (n=1 is the first host address, the gateway by convention). */
export function nthAddress(c: Cidr, n: number): string {
  return intToIp((c.network + n) >>> 0);
}

export function isMAC(s: unknown): s is string {
  return typeof s === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(s);
}

/** A locally administered MAC derived from an IPv4 address: 0a:58:a.b.c.d (deterministic). */
export function macFromIp(prefixByte: number, ip: string): string {
  const n = ipToInt(ip);
  const bytes = [0x0a, prefixByte, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

// Throwing variants, for specs that must be valid before anything is built (the lab).

export function requireIPv4(ip: string): number {
  if (!isIPv4(ip)) throw new Error(`not an IPv4 address: ${ip}`);
  return ipToInt(ip);
}

export function requireCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`not an IPv4 CIDR: ${text}`);
  return c;
}

/** Whether `ip` is inside the CIDR written as text (which must be valid). */
export function inCidr(text: string, ip: string): boolean {
  return cidrContains(requireCidr(text), ip);
}
