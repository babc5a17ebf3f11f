import assert from 'node:assert/strict';
import { it } from 'node:test';
import { nameserversOf, sandboxRules } from './sandbox-network.js';

it('reads the IPv4 nameservers of a resolv.conf', () => {
  const conf = '# comment\nnameserver 10.255.255.53\nnameserver fd00::1\nsearch example\n nameserver 1.1.1.1 \n';
  assert.deepEqual(nameserversOf(conf), ['10.255.255.53', '1.1.1.1']);
});

it('orders a sandbox chain: answers, resolvers, never this host, allowed CIDRs, denied ranges, the rest', () => {
  const names = { veth: 'svn7', chain: 'SAVASSAN-svn7', comment: 'savassan:svn7', sandboxIp: '10.254.0.15' };
  const text = sandboxRules(names, {
    allowNet: ['10.1.0.0/16'],
    nameservers: ['10.255.255.53'],
    subnet: '10.254.0.0/16',
    hostSubnets: ['192.0.2.0/24'],
  });
  const lines = text.split('\n');
  const at = (fragment: string) => {
    const index = lines.findIndex((line) => line.includes(fragment));
    assert.notEqual(index, -1, `missing: ${fragment}`);
    return index;
  };
  const order = [
    '-o svn7 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-o svn7 -j DROP',
    '-d 10.255.255.53/32 -p udp --dport 53 -j ACCEPT',
    '--dst-type LOCAL -j REJECT',
    '-d 10.254.0.0/16 -j REJECT',
    '-d 10.1.0.0/16 -j ACCEPT',
    '-d 10.0.0.0/8 -j REJECT',
    '-d 169.254.0.0/16 -j REJECT',
    '-d 192.0.2.0/24 -j REJECT',
    '-A SAVASSAN-svn7 -j ACCEPT',
  ].map(at);
  assert.deepEqual(
    order,
    [...order].sort((a, b) => a - b),
  );
  // Hooked into the guard chain that INPUT, FORWARD and OUTPUT send every sandbox link's packets to.
  for (const hook of ['SAVASSAN-GUARD -i svn7', 'SAVASSAN-GUARD -o svn7']) {
    assert.ok(text.includes(`-I ${hook} -m comment --comment "savassan:svn7" -j SAVASSAN-svn7`), hook);
  }
  assert.ok(text.includes('-I POSTROUTING -s 10.254.0.15/32 -m comment --comment "savassan:svn7" -j MASQUERADE'));
});
