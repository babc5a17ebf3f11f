// What a function deployed with --network can reach, tested from inside real bwrap and runc sandboxes against real
// servers: on this host (loopback, its other addresses, an abstract Unix socket) and in network namespaces the test
// makes (a private address, a link-local "metadata service", a private address the function is allowed).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect as connectTcp, createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent } from '../../src/agent/agent.js';
import { readBundle } from '../../src/client/bundle.js';
import { compileFunctionConfig, type FunctionConfigInput } from '../../src/core/function-config.js';
import type { InvokeOutcome, SandboxSpec } from '../../src/core/ports/agent-api.js';
import type { SandboxRuntime } from '../../src/core/ports/sandbox-runtime.js';
import { blobKeys } from '../../src/core/types.js';
import { BwrapRuntime } from '../../src/sandbox/bwrap-runtime.js';
import { RuncRuntime } from '../../src/sandbox/runc-runtime.js';
import { nameserversOf, SandboxNetwork } from '../../src/sandbox/sandbox-network.js';
import { createTestNetwork, netnsUnavailable, type NetHost, type TestNetwork } from '../kit/netns.js';

const exec = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const hostile = join(repoRoot, 'test', 'fixtures', 'functions', 'hostile');
const limits = { pids: 64, openFiles: 256, tmpMB: 16, cpus: 1 };
const metadataIp = '169.254.169.254';

function skipReason(kind: 'bwrap' | 'runc'): string | false {
  const netns = netnsUnavailable();
  if (netns !== null) return netns;
  if (kind === 'bwrap' && !existsSync('/usr/bin/bwrap')) return 'bubblewrap is not installed';
  if (kind === 'runc' && !existsSync('/usr/sbin/runc')) return 'runc is not installed';
  if (!existsSync('/usr/sbin/iptables') && !existsSync('/sbin/iptables')) return 'iptables is not installed';
  return false;
}

/** A TCP server in a test namespace, answering "hello" (a node process inside it). */
async function serveIn(host: NetHost, address: string, port: number): Promise<ChildProcess> {
  const script = `require('net').createServer((s) => s.on('error', () => {}).end('hello')).listen(${port}, '${address}', () => console.log('ready'))`;
  const child = host.spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`server in ${host.name} exited with ${code}`)));
  });
  return child;
}

/** Whether this process (the host, outside any sandbox) can open a TCP connection: the control for each denial. */
function hostCanConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** The veth host ends a process owns (their alias names its pid). */
async function vethsOf(pid: number): Promise<string[]> {
  const { stdout } = await exec('ip', ['-o', 'link', 'show', 'type', 'veth']);
  return stdout
    .split('\n')
    .filter((line) => line.includes(`alias savassan:${pid}`))
    .map((line) => /^\d+: (svn\d+)[@:]/.exec(line)?.[1] ?? '')
    .filter((name) => name !== '');
}

async function namespacesOf(pid: number): Promise<string[]> {
  const entries = await readdir('/run/netns').catch(() => [] as string[]);
  return entries.filter((entry) => entry.startsWith(`savassan-${pid}-`));
}

async function iptablesRules(): Promise<string> {
  const [filter, nat] = await Promise.all([
    exec('iptables', ['-w', '5', '-S']),
    exec('iptables', ['-w', '5', '-t', 'nat', '-S']),
  ]);
  return `${filter.stdout}\n${nat.stdout}`;
}

/** Every trace a sandbox's network leaves: its namespace, its veth, its chain and NAT rule. */
async function tracesOf(pid: number, veths: string[]): Promise<string[]> {
  const rules = await iptablesRules();
  return [
    ...(await namespacesOf(pid)),
    ...(await vethsOf(pid)),
    ...veths.filter((veth) => rules.includes(`SAVASSAN-${veth}`) || rules.includes(`"savassan:${veth}"`)),
  ];
}

function result(outcome: InvokeOutcome): Record<string, unknown> {
  assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
  return JSON.parse(new TextDecoder().decode(outcome.payloadJson)) as Record<string, unknown>;
}

for (const kind of ['bwrap', 'runc'] as const) {
  describe(`a --network function in the ${kind} sandbox`, { skip: skipReason(kind) }, () => {
    let root: string;
    let runtime: SandboxRuntime;
    let agent: Agent;
    let net: TestNetwork;
    let hostServer: Server;
    let hostPort: number;
    let abstractServer: Server;
    const abstractName = `\0savassan-network-test-${process.pid}-${kind}`;
    const servers: ChildProcess[] = [];
    const port = 8080;
    let sha: string;
    let version = 0;

    const deploy = (config: FunctionConfigInput = {}): SandboxSpec => ({
      functionName: 'hostile',
      incarnation: 'i1',
      version: ++version,
      codeSha256: sha,
      config: compileFunctionConfig({ memoryMB: 128, timeoutSeconds: 10, ...config }),
    });
    const run = async (spec: SandboxSpec, event: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const ref = await agent.createSandbox(spec);
      try {
        return result(
          await agent.invoke(ref.instanceId, {
            invocationId: randomUUID(),
            eventJson: Buffer.from(JSON.stringify(event)),
            timeoutMs: 8000,
          }),
        );
      } finally {
        await agent.destroySandbox(ref.instanceId);
      }
    };
    const connect = (spec: SandboxSpec, target: { host?: string; port?: number; path?: string }) =>
      run(spec, { action: 'connect', ...target });

    before(async () => {
      root = await mkdtemp(join(tmpdir(), `sv-net-${kind}-`));
      await chmod(root, 0o711);
      const workDir = join(root, 'agent');
      const blobs = new FsBlobStore(join(root, 'blobs'));
      const cgroupName = `savassan-test-${process.pid}-net-${kind}`;
      runtime =
        kind === 'bwrap'
          ? await BwrapRuntime.open({ workDir, cgroupName })
          : await RuncRuntime.open({ workDir, cgroupName });
      agent = new Agent({ nodeId: kind, runtime, blobStore: blobs, workDir, limits });
      const zip = await readBundle(hostile);
      sha = createHash('sha256').update(zip).digest('hex');
      await blobs.put(blobKeys.code(sha), zip);
      // The gateway's port, as it would listen: every address of this host, IPv4 and IPv6.
      hostServer = createServer((socket) => socket.on('error', () => {}).end('gateway\n'));
      await new Promise<void>((resolve) => hostServer.listen(0, '::', resolve));
      hostPort = (hostServer.address() as { port: number }).port;
      abstractServer = createServer((socket) => socket.on('error', () => {}).end('abstract\n'));
      await new Promise<void>((resolve) => abstractServer.listen(abstractName, resolve));
      net = await createTestNetwork(2);
      const [denied, allowed] = net.hosts as [NetHost, NetHost];
      // A "metadata service" at the link-local address, inside the first test host, routed from this host.
      await exec('ip', ['netns', 'exec', denied.name, 'ip', 'addr', 'add', `${metadataIp}/32`, 'dev', 'lo']);
      await exec('ip', ['route', 'replace', `${metadataIp}/32`, 'via', denied.ip]);
      servers.push(await serveIn(denied, '0.0.0.0', port), await serveIn(allowed, '0.0.0.0', port));
    });

    after(async () => {
      await agent?.close();
      await runtime?.close();
      for (const server of servers) server.kill('SIGKILL');
      await exec('ip', ['route', 'del', `${metadataIp}/32`]).catch(() => {});
      await net?.destroy();
      await new Promise((resolve) => hostServer?.close(resolve));
      await new Promise((resolve) => abstractServer?.close(resolve));
      await rm(root, { recursive: true, force: true });
    });

    it('is enforced on this host', () => {
      assert.equal(runtime.capabilities.hostAddresses.enforced, true, runtime.capabilities.hostAddresses.note);
    });

    it('has a network of its own: eth0 and its own loopback', async () => {
      const spec = deploy({ network: true });
      assert.deepEqual(await run(spec, { action: 'interfaces' }), ['eth0', 'lo']);
      // Joined through nsenter (bwrap) or runc as root, still under SCHED_BATCH.
      assert.deepEqual(await run(spec, { action: 'schedulingPolicy' }), { policy: 3 });
    });

    it('cannot reach this host: loopback, its other addresses, its abstract Unix sockets', async () => {
      const spec = deploy({ network: true });
      const hostAddresses = Object.entries(networkInterfaces())
        .filter(([name]) => !name.startsWith('svn'))
        .flatMap(([, addresses]) => addresses ?? [])
        .filter((address) => !address.address.startsWith('fe80'))
        .map((address) => address.address);
      assert.ok(hostAddresses.includes('127.0.0.1') && hostAddresses.length > 2, hostAddresses.join(' '));
      for (const address of [...hostAddresses, net.bridgeIp]) {
        assert.equal(await hostCanConnect(address, hostPort), true, `control: the host reaches ${address}`);
        const attempt = await connect(spec, { host: address, port: hostPort });
        assert.equal(attempt['ok'], false, `reached this host at ${address}: ${JSON.stringify(attempt)}`);
      }
      const abstract = await connect(spec, { path: abstractName });
      assert.equal(abstract['ok'], false, `reached the host's abstract socket: ${JSON.stringify(abstract)}`);
    });

    it('cannot reach a private address or the link-local metadata address', async () => {
      const spec = deploy({ network: true });
      const [denied] = net.hosts as [NetHost];
      for (const host of [denied.ip, metadataIp]) {
        assert.equal(await hostCanConnect(host, port), true, `control: the host reaches ${host}`);
        const attempt = await connect(spec, { host, port });
        assert.equal(attempt['ok'], false, `reached ${host}: ${JSON.stringify(attempt)}`);
      }
    });

    it('reaches a private CIDR given with --allow-net, and only that one', async () => {
      const [denied, allowed] = net.hosts as [NetHost, NetHost];
      const spec = deploy({ network: true, allowNet: [`${allowed.ip}/32`] });
      assert.deepEqual(await connect(spec, { host: allowed.ip, port }), { ok: true });
      assert.equal((await connect(spec, { host: denied.ip, port }))['ok'], false);
      // Allowing this host's own subnet does not open this host.
      const wide = deploy({ network: true, allowNet: ['0.0.0.0/0'] });
      assert.equal((await connect(wide, { host: net.bridgeIp, port: hostPort }))['ok'], false);
      assert.equal((await connect(wide, { host: denied.ip, port }))['ok'], true);
    });

    it('reaches its resolvers on port 53', async (t) => {
      const resolver = nameserversOf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''))[0];
      if (resolver === undefined || !(await hostCanConnect(resolver, 53))) {
        t.skip('no IPv4 resolver answering TCP on port 53 here');
        return;
      }
      assert.deepEqual(await connect(deploy({ network: true }), { host: resolver, port: 53 }), { ok: true });
    });

    it('without --network, has no network at all (not even an allowed host)', async () => {
      const [, allowed] = net.hosts as [NetHost, NetHost];
      const spec = deploy();
      assert.deepEqual(await run(spec, { action: 'interfaces' }), ['lo']);
      assert.equal((await connect(spec, { host: allowed.ip, port }))['ok'], false);
    });

    it('leaves no namespace, veth, chain or NAT rule behind once its sandbox is gone', async () => {
      const ref = await agent.createSandbox(deploy({ network: true }));
      const veths = await vethsOf(process.pid);
      assert.equal(veths.length, 1, `one veth while the sandbox lives: ${veths.join(' ')}`);
      const namespaces = await namespacesOf(process.pid);
      assert.equal(namespaces.length, 1);
      // Every process in the namespace runs as the sandbox's unprivileged host uid (nsenter or runc dropped root).
      const { stdout } = await exec('ip', ['netns', 'pids', namespaces[0] ?? '']);
      const pids = stdout.split('\n').filter((pid) => pid !== '');
      assert.ok(pids.length > 0);
      for (const pid of pids) {
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
        const uids = (/^Uid:\s+(.*)$/m.exec(status)?.[1] ?? '').split(/\s+/).map(Number);
        assert.ok(
          uids.every((uid) => uid >= 1_000_000),
          `pid ${pid} runs as ${uids.join(' ')}`,
        );
      }
      const rules = await iptablesRules();
      assert.match(rules, new RegExp(`-N SAVASSAN-${veths[0]}\\n`));
      assert.match(rules, new RegExp(`--comment "savassan:${veths[0]}" -j MASQUERADE`));
      await agent.destroySandbox(ref.instanceId);
      assert.deepEqual(await tracesOf(process.pid, veths), []);
    });
  });
}

describe('sandbox networking on this host', { skip: skipReason('bwrap') }, () => {
  it('removes what it set up on close', async () => {
    const network = await SandboxNetwork.open();
    await network.attach([]);
    await network.attach(['10.9.0.0/16']);
    const veths = await vethsOf(process.pid);
    assert.equal(veths.length, 2);
    await network.close();
    assert.deepEqual(await tracesOf(process.pid, veths), []);
    await network.close();
  });

  it('refuses an allowNet entry that is not a canonical IPv4 CIDR before it reaches the firewall', async () => {
    const network = await SandboxNetwork.open();
    try {
      for (const bad of ['10.9.0.0/16\n-A INPUT -j ACCEPT', '10.9.0.1/16', 'example.com']) {
        await assert.rejects(network.attach([bad]), /not a canonical IPv4 CIDR/);
      }
      assert.deepEqual(await vethsOf(process.pid), []);
    } finally {
      await network.close();
    }
  });

  it('keeps the host itself (any local user) from opening connections to a sandbox', async () => {
    const network = await SandboxNetwork.open();
    const netns = await network.attach([]);
    const name = netns.path.split('/').pop() ?? '';
    const script = `require('net').createServer((s) => s.end('hi')).listen(8080, '0.0.0.0', () => console.log('ready'))`;
    const server = spawn('ip', ['netns', 'exec', name, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout.once('data', () => resolve());
        server.once('exit', (code) => reject(new Error(`the server in ${name} exited with ${code}`)));
      });
      assert.equal(await hostCanConnect(netns.address, 8080), false, 'the host reached a port inside the sandbox');
    } finally {
      server.kill('SIGKILL');
      await network.close();
    }
  });

  it('closes a sandbox link whose own rules are gone instead of leaving it open', async () => {
    const net = await createTestNetwork(1);
    const [allowed] = net.hosts as [NetHost];
    const server = await serveIn(allowed, '0.0.0.0', 8080);
    const network = await SandboxNetwork.open();
    try {
      const netns = await network.attach([`${allowed.ip}/32`]);
      const name = netns.path.split('/').pop() ?? '';
      const probe = `require('net').connect({ host: '${allowed.ip}', port: 8080, timeout: 2000 })
        .on('data', () => process.exit(0)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))`;
      const reaches = () =>
        exec('ip', ['netns', 'exec', name, process.execPath, '-e', probe]).then(
          () => true,
          () => false,
        );
      assert.equal(await reaches(), true, 'the allowed host is reachable with the rules in place');
      const veth = (await vethsOf(process.pid))[0] ?? '';
      const { stdout } = await exec('iptables', ['-w', '5', '-S', 'SAVASSAN-GUARD']);
      for (const rule of stdout.split('\n').filter((line) => line.includes(`savassan:${veth}"`))) {
        await exec('iptables', ['-w', '5', ...rule.replace(/^-A /, '-D ').replace(/"/g, '').split(' ')]);
      }
      assert.equal(await reaches(), false, 'a sandbox link without its rules still forwards');
    } finally {
      await network.close();
      server.kill('SIGKILL');
      await net.destroy();
    }
  });

  it('removes at start what a crashed agent left: namespaces, veths, chains, NAT rules', async () => {
    const source = join(repoRoot, 'src', 'sandbox', 'sandbox-network.ts');
    const script =
      `const { SandboxNetwork } = await import(${JSON.stringify(source)});` +
      'const n = await SandboxNetwork.open(); await n.attach([]); await n.attach(["10.9.0.0/16"]);' +
      'console.log("attached"); setInterval(() => {}, 1000);';
    const crashed = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      crashed.stdout.once('data', () => resolve());
      crashed.once('exit', (code) => reject(new Error(`the agent stand-in exited with ${code}`)));
    });
    const pid = crashed.pid ?? 0;
    const exited = new Promise((resolve) => crashed.once('exit', resolve));
    let veths: string[];
    try {
      veths = await vethsOf(pid);
      assert.equal(veths.length, 2);
      assert.equal((await namespacesOf(pid)).length, 2);
    } finally {
      crashed.kill('SIGKILL');
      await exited;
    }
    assert.notDeepEqual(await tracesOf(pid, veths), [], 'a crash leaves the namespaces and rules');
    const network = await SandboxNetwork.open();
    assert.deepEqual(await tracesOf(pid, veths), []);
    await network.close();
  });
});
