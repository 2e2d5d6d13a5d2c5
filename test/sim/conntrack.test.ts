import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Conntrack, type CtPacket } from '../../src/sim/conntrack.js';
import { CS, TCP, ctStateString, ipToNum } from '../../src/sim/packet.js';

const pkt = (src: string, dst: string, proto = 17, flags = 0): CtPacket => {
  const [s, sp] = src.split(':');
  const [d, dp] = dst.split(':');
  return {
    isIp: true,
    proto,
    src: ipToNum(s),
    sport: Number(sp),
    dst: ipToNum(d),
    dport: Number(dp),
    tcpFlags: flags,
  };
};
const state = (bits: number): string => ctStateString(bits);

describe('conntrack', () => {
  it('UDP: new until a reply is seen, then est; replies are +rpl', () => {
    const ct = new Conntrack();
    const req = pkt('10.0.0.1:5000', '10.0.0.2:53');
    const rep = pkt('10.0.0.2:53', '10.0.0.1:5000');
    assert.equal(state(ct.execute(req, { zone: 1, commit: true }, 0).state), '+new+trk');
    assert.equal(state(ct.execute(req, { zone: 1, commit: false }, 1).state), '+new+trk');
    assert.equal(state(ct.execute(rep, { zone: 1, commit: false }, 2).state), '+est+rpl+trk');
    assert.equal(state(ct.execute(req, { zone: 1, commit: false }, 3).state), '+est+trk');
    // zones are separate tables
    assert.equal(state(ct.execute(rep, { zone: 2, commit: false }, 3).state), '+new+trk');
  });

  it('a second commit updates the mark but never the NAT binding', () => {
    const ct = new Conntrack();
    const req = pkt('10.0.0.1:5000', '10.96.0.1:80', 6, TCP.syn);
    const nat = { type: 'dst' as const, ip: '10.0.0.5', port: 8080 };
    const first = ct.execute(
      req,
      { zone: 1, commit: true, nat, setMark: { value: 1, mask: 1 } },
      0,
    );
    assert.equal(first.mark, 1);
    assert.equal(state(first.state), '+new+trk+dnat');
    const other = { type: 'dst' as const, ip: '10.0.0.6', port: 9090 };
    const second = ct.execute(
      req,
      { zone: 1, commit: true, nat: other, setMark: { value: 2, mask: 2 } },
      1,
    );
    assert.equal(second.mark, 3);
    assert.deepEqual(second.rewrite, first.rewrite);
    assert.equal(ct.entries()[0].nat, 'dst 10.0.0.5:8080');
  });

  it('a lookup without nat does not translate; bare nat applies the binding', () => {
    const ct = new Conntrack();
    const req = pkt('10.0.0.1:5000', '10.96.0.1:80');
    ct.execute(req, { zone: 1, commit: true, nat: { type: 'dst', ip: '10.0.0.5' } }, 0);
    assert.equal(ct.execute(req, { zone: 1, commit: false }, 1).rewrite, undefined);
    const r = ct.execute(req, { zone: 1, commit: false, nat: 'existing' }, 1);
    assert.equal(r.rewrite?.dst, ipToNum('10.0.0.5'));
    assert.equal(r.rewrite?.dport, 80);
    // not twice in the same zone within one recirculation chain
    const again = ct.execute(
      req,
      { zone: 1, commit: false, nat: 'existing', alreadyNated: true },
      1,
    );
    assert.equal(again.rewrite, undefined);
  });

  // Which first packets start a TCP entry was measured on ovs-vswitchd 3.1 (userspace).
  it('TCP first packets: SYN+ACK, FIN alone and no flags are invalid; mid-stream ACK is new', () => {
    const ct = new Conntrack();
    const first = (sport: number, flags: number): string =>
      state(
        ct.execute(pkt(`10.0.0.1:${sport}`, '10.0.0.3:80', 6, flags), { zone: 7, commit: true }, 0)
          .state,
      );
    assert.equal(first(1, TCP.syn | TCP.ack), '+inv+trk');
    assert.equal(first(2, TCP.fin), '+inv+trk');
    assert.equal(first(3, 0), '+inv+trk');
    assert.equal(first(4, TCP.syn | TCP.fin), '+inv+trk');
    assert.equal(ct.size, 0);
    assert.equal(first(5, TCP.syn), '+new+trk');
    assert.equal(first(6, TCP.ack), '+new+trk');
    assert.equal(first(7, TCP.rst), '+new+trk');
    assert.equal(first(8, TCP.fin | TCP.ack), '+new+trk');
    assert.equal(ct.size, 4);
    const strict = new Conntrack({ tcpStart: 'syn-only' });
    const ack = pkt('10.0.0.1:6', '10.0.0.3:80', 6, TCP.ack);
    assert.equal(state(strict.execute(ack, { zone: 7, commit: true }, 0).state), '+inv+trk');
  });

  it('TCP: RST closes; a new SYN reopens', () => {
    const ct = new Conntrack();
    const a = '10.0.0.1:40000';
    const b = '10.0.0.2:80';
    ct.execute(
      pkt(a, b, 6, TCP.syn),
      { zone: 0, commit: true, setMark: { value: 7, mask: 0xff } },
      0,
    );
    assert.equal(
      state(ct.execute(pkt(b, a, 6, TCP.syn | TCP.ack), { zone: 0, commit: false }, 0).state),
      '+est+rpl+trk',
    );
    ct.execute(pkt(a, b, 6, TCP.rst), { zone: 0, commit: false }, 1);
    assert.equal(
      state(ct.execute(pkt(a, b, 6, TCP.ack), { zone: 0, commit: false }, 2).state),
      '+inv+trk',
    );
    const reopened = ct.execute(pkt(a, b, 6, TCP.syn), { zone: 0, commit: true }, 3);
    assert.equal(state(reopened.state), '+new+trk');
    assert.equal(reopened.mark, 0);
  });

  it('entries expire after their idle timeout; time is a parameter', () => {
    const ct = new Conntrack({ timeouts: { otherFirst: 10 } });
    const req = pkt('10.0.0.1:5000', '10.0.0.2:53');
    ct.execute(req, { zone: 1, commit: true }, 100);
    assert.equal(state(ct.execute(req, { zone: 1, commit: false }, 105).state), '+new+trk');
    assert.notEqual(ct.lookup(1, 17, req, 115), null);
    assert.equal(ct.lookup(1, 17, req, 116), null);
    assert.equal(ct.size, 0);
  });

  it('clones are independent', () => {
    const ct = new Conntrack();
    const req = pkt('10.0.0.1:5000', '10.0.0.2:53');
    ct.execute(req, { zone: 1, commit: true }, 0);
    const copy = ct.clone();
    copy.execute(pkt('10.0.0.2:53', '10.0.0.1:5000'), { zone: 1, commit: false }, 1);
    copy.execute(pkt('10.0.0.3:1', '10.0.0.2:53'), { zone: 1, commit: true }, 1);
    assert.equal(ct.size, 1);
    assert.equal(copy.size, 2);
    assert.equal(ct.entries()[0].state, 'first');
    assert.equal(copy.entries()[0].state, 'bidir');
  });

  it('non-IP packets are invalid; flushAddress removes an endpoint’s entries', () => {
    const ct = new Conntrack();
    assert.equal(
      ct.execute({ ...pkt('0.0.0.0:0', '0.0.0.0:0'), isIp: false }, { zone: 1, commit: true }, 0)
        .state,
      CS.trk | CS.inv,
    );
    ct.execute(
      pkt('10.0.0.1:1', '10.96.0.1:53'),
      { zone: 1, commit: true, nat: { type: 'dst', ip: '10.0.0.5' } },
      0,
    );
    ct.execute(
      pkt('10.0.0.1:2', '10.96.0.1:53'),
      { zone: 1, commit: true, nat: { type: 'dst', ip: '10.0.0.6' } },
      0,
    );
    assert.equal(ct.flushAddress(1, '10.0.0.5'), 1);
    assert.equal(ct.size, 1);
  });
});
