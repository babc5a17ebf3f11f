import assert from 'node:assert/strict';
import { it } from 'node:test';
import { mayConnect } from './net-ranges.js';

it('lets a webhook reach public addresses only, private ones where allowNet lists them, the host never', () => {
  assert.equal(mayConnect('93.184.216.34', []), true);
  assert.equal(mayConnect('2606:2800:220:1:248:1893:25c8:1946', []), true);
  for (const address of ['10.1.2.3', '169.254.169.254', '192.168.1.1', '100.64.0.1', '224.0.0.1']) {
    assert.equal(mayConnect(address, []), false, address);
  }
  assert.equal(mayConnect('10.1.2.3', ['10.1.2.0/24']), true);
  assert.equal(mayConnect('10.1.3.3', ['10.1.2.0/24']), false);
  // The host's own loopback and unspecified addresses, whatever allowNet says.
  for (const address of ['127.0.0.1', '127.1.2.3', '0.0.0.0', '::1', '::']) {
    assert.equal(mayConnect(address, ['127.0.0.0/8', '0.0.0.0/0']), false, address);
  }
});

it('judges IPv4 inside IPv6 as the IPv4 address, in every spelling', () => {
  for (const address of [
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:a9fe:a9fe',
    '::ffff:0:0',
    '::7f00:1',
    '64:ff9b::7f00:1',
    '2002:7f00:1::',
    'fe80::1',
    'fc00::1',
    'fec0::1',
    'ff02::1',
  ]) {
    assert.equal(mayConnect(address, []), false, address);
  }
  assert.equal(mayConnect('::ffff:a01:203', ['10.1.2.0/24']), true, 'mapped 10.1.2.3, allowed');
  assert.equal(mayConnect('::ffff:5db8:d822', []), true, 'mapped public address');
  assert.equal(mayConnect('not-an-address', []), false);
});

it("reaches the host's loopback only where the operator allows it and allowNet lists it", () => {
  assert.equal(mayConnect('127.0.0.1', ['127.0.0.1/32'], { hostLoopback: true }), true);
  assert.equal(mayConnect('::ffff:7f00:1', ['127.0.0.1/32'], { hostLoopback: true }), true);
  assert.equal(mayConnect('127.0.0.1', [], { hostLoopback: true }), false);
  assert.equal(mayConnect('127.0.0.1', ['127.0.0.1/32']), false);
});
