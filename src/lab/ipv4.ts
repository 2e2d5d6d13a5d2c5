// Just enough IPv4 arithmetic to validate a lab spec before anything is created.

export function parseIPv4(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`not an IPv4 address: ${ip}`);
    n = n * 256 + Number(p);
  }
  return n;
}

export interface Cidr {
  base: number;
  prefixLength: number;
}

export function parseCidr(cidr: string): Cidr {
  const [ip, len, extra] = cidr.split('/');
  const prefixLength = Number(len);
  if (extra !== undefined || !/^\d{1,2}$/.test(len ?? '') || prefixLength > 32) {
    throw new Error(`not an IPv4 CIDR: ${cidr}`);
  }
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  return { base: (parseIPv4(ip) & mask) >>> 0, prefixLength };
}

export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const mask = c.prefixLength === 0 ? 0 : (0xffffffff << (32 - c.prefixLength)) >>> 0;
  return (parseIPv4(ip) & mask) >>> 0 === c.base;
}

export function prefixLength(cidr: string): number {
  return parseCidr(cidr).prefixLength;
}

export function isMac(mac: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac);
}
