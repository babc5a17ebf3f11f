import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { isPlatformError } from '../../core/errors.js';
import {
  buildLabel,
  deletionCostAnnotation,
  deletionCostBody,
  deploymentForBuild,
  deploymentName,
  imageRepositoryOf,
  KubernetesInfrastructure,
  scaleBody,
  type Deployment,
} from './kubernetes-infrastructure.js';

const oldDeployment: Deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'savassan-manager',
    namespace: 'platform',
    uid: 'u-1',
    resourceVersion: '42',
    generation: 3,
    labels: { app: 'savassan-manager' },
    annotations: { 'deployment.kubernetes.io/revision': '3', team: 'infra' },
  },
  spec: {
    replicas: 3,
    selector: { matchLabels: { app: 'savassan-manager' } },
    template: {
      metadata: { labels: { app: 'savassan-manager' } },
      spec: {
        containers: [
          { name: 'savassan', image: 'registry:5000/savassan:0.1.0', args: ['manager', '--id', '$(POD_NAME)'] },
          { name: 'sidecar', image: 'registry:5000/proxy:1' },
        ],
      },
    },
  },
  status: { replicas: 3 },
};

describe('Kubernetes request bodies', () => {
  it('copies the old Deployment for the new build: image, build label on selector and pods, 0 replicas', () => {
    const body = deploymentForBuild(oldDeployment, {
      name: 'savassan-manager-0.2.0',
      version: '0.2.0',
      image: 'registry:5000/savassan:0.2.0',
      imageRepository: 'registry:5000/savassan',
    });
    assert.deepEqual(body, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'savassan-manager-0.2.0',
        namespace: 'platform',
        labels: { app: 'savassan-manager', [buildLabel]: '0.2.0' },
        annotations: { team: 'infra' },
      },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'savassan-manager', [buildLabel]: '0.2.0' } },
        template: {
          metadata: { labels: { app: 'savassan-manager', [buildLabel]: '0.2.0' } },
          spec: {
            containers: [
              { name: 'savassan', image: 'registry:5000/savassan:0.2.0', args: ['manager', '--id', '$(POD_NAME)'] },
              { name: 'sidecar', image: 'registry:5000/proxy:1' },
            ],
          },
        },
      },
    });
  });

  it('refuses a Deployment that runs no container of the image repository', () => {
    assert.throws(
      () =>
        deploymentForBuild(oldDeployment, {
          name: 'x',
          version: '0.2.0',
          image: 'elsewhere/savassan:0.2.0',
          imageRepository: 'elsewhere/savassan',
        }),
      (err) => isPlatformError(err, 'BAD_REQUEST'),
    );
  });

  it('names Deployments as DNS labels and reads image repositories', () => {
    assert.equal(deploymentName('gateway', '0.2.0+Build_7'), 'savassan-gateway-0-2-0-build-7');
    assert.equal(imageRepositoryOf('registry:5000/savassan:0.1.0@sha256:abc'), 'registry:5000/savassan');
    assert.equal(imageRepositoryOf('registry:5000/savassan'), 'registry:5000/savassan');
    assert.deepEqual(scaleBody(2), { spec: { replicas: 2 } });
    assert.deepEqual(deletionCostBody(), { metadata: { annotations: { [deletionCostAnnotation]: '-1000' } } });
  });

  it('resolves a tag to the image, taking its protocol on trust', async () => {
    const infrastructure = new KubernetesInfrastructure({
      imageRepository: 'registry:5000/savassan:0.1.0',
      namespace: 'p',
    });
    assert.deepEqual(await infrastructure.resolve('0.2.0'), {
      version: '0.2.0',
      build: '0.2.0',
      protocol: 1,
      location: 'registry:5000/savassan:0.2.0',
    });
    await assert.rejects(infrastructure.resolve('../x'), (err) => isPlatformError(err, 'BAD_REQUEST'));
  });
});

/**
 * A stand-in for the few API server paths the adapter uses (plain HTTP, no auth): enough to see its requests in order
 * and to play the ReplicaSet controller (scaling up adds a pod).
 */
class FakeApiServer {
  readonly requests: string[] = [];
  readonly deployments = new Map<string, Deployment>([['savassan-manager', structuredClone(oldDeployment)]]);
  readonly pods = new Map<string, { labels: Record<string, string>; annotations: Record<string, string>; rs: string }>([
    ['savassan-manager-abc-1', { labels: { app: 'savassan-manager' }, annotations: {}, rs: 'savassan-manager-abc' }],
  ]);
  readonly server: Server = createServer((req, res) => {
    void this.#answer(req).then(
      ([status, body]) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      },
      (err: unknown) => {
        res.writeHead(500);
        res.end(JSON.stringify({ message: String(err) }));
      },
    );
  });
  #podCount = 0;

  async #answer(req: IncomingMessage): Promise<[number, unknown]> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length === 0 ? undefined : (JSON.parse(Buffer.concat(chunks).toString()) as unknown);
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const path = url.pathname.replace('/namespaces/platform', '');
    let match;
    if ((match = /^\/api\/v1\/pods\/([^/]+)$/.exec(path))) {
      const pod = this.pods.get(match[1] ?? '');
      if (pod === undefined) return [404, { message: 'not found' }];
      if (req.method === 'PATCH') {
        Object.assign(
          pod.annotations,
          (body as { metadata: { annotations: Record<string, string> } }).metadata.annotations,
        );
      }
      return [
        200,
        { metadata: { name: match[1], ownerReferences: [{ kind: 'ReplicaSet', name: pod.rs, controller: true }] } },
      ];
    }
    if (path === '/api/v1/pods') {
      const wanted = (url.searchParams.get('labelSelector') ?? '').split(',').map((pair) => pair.split('='));
      const items = [...this.pods.entries()]
        .filter(([, pod]) => wanted.every(([key, value]) => pod.labels[key ?? ''] === value))
        .map(([name]) => ({ metadata: { name } }));
      return [200, { items }];
    }
    if ((match = /^\/apis\/apps\/v1\/replicasets\/(.+)-abc$/.exec(path))) {
      return [
        200,
        { metadata: { name: `${match[1]}-abc`, ownerReferences: [{ kind: 'Deployment', name: match[1] }] } },
      ];
    }
    if (path === '/apis/apps/v1/deployments' && req.method === 'POST') {
      const deployment = body as Deployment;
      this.deployments.set(deployment.metadata.name ?? '', deployment);
      return [201, deployment];
    }
    if ((match = /^\/apis\/apps\/v1\/deployments\/([^/]+)(\/scale)?$/.exec(path))) {
      const name = match[1] ?? '';
      const deployment = this.deployments.get(name);
      if (deployment === undefined) return [404, { message: `deployments.apps "${name}" not found` }];
      if (match[2] === undefined) return [200, deployment];
      if (req.method === 'PATCH') {
        const replicas = (body as { spec: { replicas: number } }).spec.replicas;
        if (replicas > (deployment.spec.replicas ?? 0)) {
          this.pods.set(`${name}-abc-${++this.#podCount}`, {
            labels: { ...deployment.spec.template.metadata?.labels },
            annotations: {},
            rs: `${name}-abc`,
          });
        }
        deployment.spec.replicas = replicas;
      }
      return [200, { spec: { replicas: deployment.spec.replicas } }];
    }
    return [404, { message: `no route ${path}` }];
  }
}

describe('KubernetesInfrastructure against a stand-in API server', () => {
  const api = new FakeApiServer();
  let infrastructure: KubernetesInfrastructure;

  before(async () => {
    await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', resolve));
    const { port } = api.server.address() as AddressInfo;
    infrastructure = new KubernetesInfrastructure({
      imageRepository: 'registry:5000/savassan',
      namespace: 'platform',
      apiUrl: `http://127.0.0.1:${port}`,
      tokenFile: '/nonexistent',
    });
  });

  after(async () => {
    await new Promise((resolve) => api.server.close(resolve));
  });

  it('launches a pod of the new build in a Deployment copied from the old one, and retires the old pod', async () => {
    const build = await infrastructure.resolve('0.2.0');
    const like = {
      id: 'savassan-manager-abc-1',
      role: 'manager' as const,
      build: { version: '0.1.0', build: '0.1.0', protocol: 1 },
      args: [],
    };
    const launched = await infrastructure.launch({ role: 'manager', id: 'ignored', build, like });
    assert.deepEqual(launched, {
      id: 'savassan-manager-0-2-0-abc-1',
      where: 'pod platform/savassan-manager-0-2-0-abc-1',
    });
    const created = api.deployments.get('savassan-manager-0-2-0');
    assert.equal(created?.spec.replicas, 1);
    assert.equal(created.spec.template.spec.containers[0]?.image, 'registry:5000/savassan:0.2.0');

    await infrastructure.retire(like);
    assert.equal(api.pods.get('savassan-manager-abc-1')?.annotations[deletionCostAnnotation], '-1000');
    assert.equal(api.deployments.get('savassan-manager')?.spec.replicas, 2);
    assert.ok(api.requests.includes('POST /apis/apps/v1/namespaces/platform/deployments'));

    // A second launch reuses the Deployment; retiring a pod that is gone does nothing.
    const second = await infrastructure.launch({ role: 'manager', id: 'ignored', build, like });
    assert.equal(second.id, 'savassan-manager-0-2-0-abc-2');
    assert.equal(api.deployments.get('savassan-manager-0-2-0')?.spec.replicas, 2);
    await infrastructure.retire({ ...like, id: 'gone-pod' });
    assert.equal(api.deployments.get('savassan-manager')?.spec.replicas, 2);
  });
});
