import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { controlProtocolVersion, isBuildText } from '../../core/build-info.js';
import { PlatformError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type {
  ControlProcess,
  Infrastructure,
  InstalledBuild,
  LaunchedProcess,
  LaunchSpec,
} from '../../core/ports/infrastructure.js';
import { KubernetesClient, serviceAccountDir, type KubernetesClientOptions } from './kubernetes-client.js';

export interface KubernetesInfrastructureOptions extends KubernetesClientOptions {
  /** The image repository of the platform's images, without a tag: `registry.example.com/savassan`. */
  imageRepository: string;
  /** The namespace of the platform's Deployments. Default: the service account's namespace. */
  namespace?: string;
  /**
   * The control protocol the images are taken to speak (an image cannot be run from here to ask). Default: the one
   * of the running build.
   */
  protocol?: number;
  /** How long `launch` waits for the Deployment to create the new pod. Default 60 s. */
  podTimeoutMs?: number;
  logger?: Logger;
}

/** The label that tells the builds' Deployments (and their pods) apart. */
export const buildLabel = 'savassan.dev/build';
/** Kubernetes removes the pods with the lowest cost first when a ReplicaSet scales down. */
export const deletionCostAnnotation = 'controller.kubernetes.io/pod-deletion-cost';
/** How often launch looks for the new pod. */
const podPollMs = 1000;

/** The parts of the Kubernetes objects this adapter reads and writes. */
interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  [field: string]: unknown;
}

interface Container {
  name: string;
  image?: string;
  [field: string]: unknown;
}

export interface Deployment {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string>; [field: string]: unknown };
    template: {
      metadata?: ObjectMeta;
      spec: { containers: Container[]; initContainers?: Container[]; [field: string]: unknown };
    };
    [field: string]: unknown;
  };
  status?: unknown;
}

interface Pod {
  metadata: ObjectMeta;
}

interface Scale {
  spec: { replicas?: number };
}

/**
 * Upgrades the platform on Kubernetes: each role and build has its Deployment, `savassan-<role>-<version>`. Not
 * tested against a real cluster in this repository; its request bodies are unit-tested.
 *
 * - `resolve(version)` answers `<imageRepository>:<version>`. It cannot run the image to ask what it is, so it takes
 *   the image's build to be version = build id = the tag (build the image with the tag in its `build-id` file) and
 *   its control protocol to be this build's (`protocol` option): an image of another protocol is not caught here,
 *   it is refused when it joins.
 * - `launch` makes the new build's Deployment on first use, by copying the Deployment of the process it replaces
 *   with the image replaced, the `savassan.dev/build` label added to its selector and pods, and 0 replicas; then it
 *   scales it up by one and answers the new pod's name: a process's id is its pod name (the pod gives it to
 *   `savassan manager --id` and `savassan gateway --id` through the downward API, `$(POD_NAME)`). The id the caller
 *   proposes is not used.
 * - `retire` marks the drained pod as the cheapest to delete (`controller.kubernetes.io/pod-deletion-cost: -1000`)
 *   and scales its Deployment down by one, so that Kubernetes removes that pod and not another. The old Deployment
 *   stays, at 0 replicas, for a way back.
 *
 * The service account needs get, list, create and patch on deployments (and deployments/scale), get on replicasets,
 * and get, list and patch on pods, in its namespace. A drained process exits; until `retire` scales its Deployment
 * down, Kubernetes restarts its container, which rejoins the old generation until then.
 */
export class KubernetesInfrastructure implements Infrastructure {
  readonly kind = 'kubernetes';
  readonly #client: KubernetesClient;
  readonly #imageRepository: string;
  readonly #namespace: string | undefined;
  readonly #protocol: number;
  readonly #podTimeoutMs: number;
  readonly #logger: Logger;

  constructor(options: KubernetesInfrastructureOptions) {
    this.#client = new KubernetesClient(options);
    this.#imageRepository = imageRepositoryOf(options.imageRepository);
    this.#namespace = options.namespace;
    this.#protocol = options.protocol ?? controlProtocolVersion;
    this.#podTimeoutMs = options.podTimeoutMs ?? 60_000;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'kubernetes-infrastructure' });
  }

  resolve(target: string): Promise<InstalledBuild> {
    if (!isBuildText(target)) {
      return Promise.reject(
        new PlatformError(
          'BAD_REQUEST',
          `on Kubernetes an upgrade names an image tag of ${this.#imageRepository} (letters, digits and ._+-, at most 100)`,
        ),
      );
    }
    return Promise.resolve({
      version: target,
      build: target,
      protocol: this.#protocol,
      location: `${this.#imageRepository}:${target}`,
    });
  }

  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    const ns = this.#ns();
    const old = await this.#deploymentOfPod(spec.like.id);
    const name = deploymentName(spec.role, spec.build.version);
    let deployment: Deployment;
    try {
      deployment = await this.#client.get<Deployment>(`/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
    } catch (err) {
      if (!(err instanceof PlatformError && err.code === 'NOT_FOUND')) throw err;
      const body = deploymentForBuild(old, {
        name,
        version: spec.build.version,
        image: spec.build.location,
        imageRepository: this.#imageRepository,
      });
      deployment = await this.#client.post<Deployment>(`/apis/apps/v1/namespaces/${ns}/deployments`, body);
      this.#logger.info(
        { deployment: name, from: old.metadata.name, image: spec.build.location },
        'deployment created',
      );
    }

    const selector = labelSelector(deployment.spec.selector.matchLabels ?? {});
    const before = new Set(await this.#podNames(selector));
    const scalePath = `/apis/apps/v1/namespaces/${ns}/deployments/${name}/scale`;
    const scale = await this.#client.get<Scale>(scalePath);
    await this.#client.mergePatch(scalePath, scaleBody((scale.spec.replicas ?? 0) + 1));

    const until = Date.now() + this.#podTimeoutMs;
    for (;;) {
      const fresh = (await this.#podNames(selector)).find((pod) => !before.has(pod));
      if (fresh !== undefined) {
        this.#logger.info({ deployment: name, pod: fresh }, 'pod launched');
        return { id: fresh, where: `pod ${ns}/${fresh}` };
      }
      if (Date.now() >= until) {
        throw new PlatformError(
          'UNAVAILABLE',
          `deployment ${ns}/${name} was scaled up but created no pod within ${this.#podTimeoutMs} ms (kubectl describe deployment ${name})`,
        );
      }
      await sleep(podPollMs);
    }
  }

  async retire(process: ControlProcess): Promise<void> {
    const ns = this.#ns();
    let pod: Pod;
    try {
      pod = await this.#client.get<Pod>(`/api/v1/namespaces/${ns}/pods/${encodeURIComponent(process.id)}`);
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'NOT_FOUND') {
        this.#logger.info({ pod: process.id }, 'no such pod: already gone');
        return;
      }
      throw err;
    }
    const deployment = await this.#deploymentOf(pod);
    await this.#client.mergePatch(
      `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(process.id)}`,
      deletionCostBody(),
    );
    const scalePath = `/apis/apps/v1/namespaces/${ns}/deployments/${deployment.metadata.name ?? ''}/scale`;
    const scale = await this.#client.get<Scale>(scalePath);
    await this.#client.mergePatch(scalePath, scaleBody(Math.max(0, (scale.spec.replicas ?? 0) - 1)));
    this.#logger.info({ pod: process.id, deployment: deployment.metadata.name }, 'pod retired');
  }

  async #deploymentOfPod(podName: string): Promise<Deployment> {
    const pod = await this.#client.get<Pod>(`/api/v1/namespaces/${this.#ns()}/pods/${encodeURIComponent(podName)}`);
    return this.#deploymentOf(pod);
  }

  /** The Deployment that owns a pod, through its ReplicaSet. */
  async #deploymentOf(pod: Pod): Promise<Deployment> {
    const ns = this.#ns();
    const replicaSet = controllerOf(pod.metadata, 'ReplicaSet');
    const owner =
      replicaSet === undefined
        ? undefined
        : controllerOf(
            (await this.#client.get<Pod>(`/apis/apps/v1/namespaces/${ns}/replicasets/${replicaSet}`)).metadata,
            'Deployment',
          );
    if (owner === undefined) {
      throw new PlatformError(
        'BAD_REQUEST',
        `pod ${ns}/${pod.metadata.name ?? '?'} is not run by a Deployment: only Deployments can be upgraded on Kubernetes`,
      );
    }
    return this.#client.get<Deployment>(`/apis/apps/v1/namespaces/${ns}/deployments/${owner}`);
  }

  async #podNames(selector: string): Promise<string[]> {
    const list = await this.#client.get<{ items: Pod[] }>(
      `/api/v1/namespaces/${this.#ns()}/pods?labelSelector=${encodeURIComponent(selector)}`,
    );
    return list.items.map((pod) => pod.metadata.name ?? '').filter((name) => name !== '');
  }

  #ns(): string {
    if (this.#namespace !== undefined) return this.#namespace;
    try {
      return readFileSync(`${serviceAccountDir}/namespace`, 'utf8').trim();
    } catch {
      throw new PlatformError('BAD_REQUEST', 'no namespace given and none in the service account: not in a pod?');
    }
  }
}

/** `savassan-<role>-<version>` as a DNS label: lowercase, `-` for anything else, at most 63 characters. */
export function deploymentName(role: ControlProcess['role'], version: string): string {
  const name = `savassan-${role}-${version}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 63);
  return name.replace(/-+$/, '');
}

/** A version as a label value: at most 63 of `A-Za-z0-9._-`, starting and ending with a letter or digit. */
export function buildLabelValue(version: string): string {
  return version
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/**
 * The Deployment of a new build, made from the one of the build it replaces: the same pods with the platform's
 * containers on `image`, the build label on its selector and pods (so that the two Deployments never own each
 * other's pods), and 0 replicas (launch scales it up one pod at a time). What the API server filled in (status,
 * uid, resource version, revision) is left out.
 */
export function deploymentForBuild(
  old: Deployment,
  build: { name: string; version: string; image: string; imageRepository: string },
): Deployment {
  const label = { [buildLabel]: buildLabelValue(build.version) };
  const replaceImage = (container: Container): Container =>
    container.image !== undefined && imageRepositoryOf(container.image) === build.imageRepository
      ? { ...container, image: build.image }
      : container;
  const containers = old.spec.template.spec.containers.map(replaceImage);
  if (!containers.some((container, i) => container !== old.spec.template.spec.containers[i])) {
    throw new PlatformError(
      'BAD_REQUEST',
      `deployment ${old.metadata.name ?? '?'} runs no container of ${build.imageRepository}: it cannot be copied for ${build.image}`,
    );
  }
  const { resourceVersion, uid, creationTimestamp, generation, managedFields, selfLink, ...metadata } = old.metadata;
  void [resourceVersion, uid, creationTimestamp, generation, managedFields, selfLink];
  const annotations = Object.fromEntries(
    Object.entries(metadata.annotations ?? {}).filter(
      ([key]) =>
        key !== 'deployment.kubernetes.io/revision' && key !== 'kubectl.kubernetes.io/last-applied-configuration',
    ),
  );
  const templateSpec = { ...old.spec.template.spec, containers };
  if (old.spec.template.spec.initContainers !== undefined) {
    templateSpec.initContainers = old.spec.template.spec.initContainers.map(replaceImage);
  }
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      ...metadata,
      name: build.name,
      labels: { ...metadata.labels, ...label },
      annotations,
    },
    spec: {
      ...old.spec,
      replicas: 0,
      selector: { ...old.spec.selector, matchLabels: { ...old.spec.selector.matchLabels, ...label } },
      template: {
        ...old.spec.template,
        metadata: {
          ...old.spec.template.metadata,
          labels: { ...old.spec.template.metadata?.labels, ...label },
        },
        spec: templateSpec,
      },
    },
  };
}

/** The merge patch of a Deployment's scale subresource. */
export function scaleBody(replicas: number): Scale {
  return { spec: { replicas } };
}

/** The merge patch that makes a pod the first to go when its ReplicaSet scales down. */
export function deletionCostBody(): { metadata: { annotations: Record<string, string> } } {
  return { metadata: { annotations: { [deletionCostAnnotation]: '-1000' } } };
}

/** `registry:5000/savassan:0.1.0@sha256:…` → `registry:5000/savassan`. */
export function imageRepositoryOf(image: string): string {
  const undigested = image.split('@')[0] ?? image;
  const slash = undigested.lastIndexOf('/');
  const colon = undigested.lastIndexOf(':');
  return colon > slash ? undigested.slice(0, colon) : undigested;
}

function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

function controllerOf(metadata: ObjectMeta, kind: string): string | undefined {
  return metadata.ownerReferences?.find((ref) => ref.kind === kind && ref.controller !== false)?.name;
}
