// The control plane of embedded mode, as `GET /v1/control-plane` shows it: one process leads itself, holds the pool
// (in memory, or in Redis), has no follower to replicate to and no other manager to hand over to.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlProtocolVersion } from '../core/build-info.js';
import type { BuildInfo } from '../core/build-info.js';
import type { ControlPlaneApi } from '../core/control-plane-view.js';
import { LoopDelayMonitor } from '../control-plane/loop-delay.js';
import { standaloneControlPlane } from '../gateway/http/routes/control-plane.js';
import { packageRoot } from '../sandbox/package-root.js';

/**
 * The build of the running code as embedded mode shows it when its caller passes none: the version of the package's
 * package.json, build `dev`, this code's control protocol.
 *
 * Integration note: an installation's build id is its `build-id` file, which `readBuildInfo(installDir)` of
 * src/cluster/build.ts reads; embedded mode cannot import the cluster area, so the CLI (`savassan start`) should
 * pass `readBuildInfo(...)` as `EmbeddedOptions.build`, and this default then serves only direct callers and tests.
 */
export function embeddedBuildInfo(): BuildInfo {
  const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
  return { version: typeof version === 'string' ? version : '0.0.0', build: 'dev', protocol: controlProtocolVersion };
}

export interface EmbeddedControlPlaneOptions {
  /** The build this process runs (`savassan version`). */
  build: BuildInfo;
  /** Where the warm pool lives: `memory` (default) or `redis` (started with a Redis URL). */
  pool?: 'memory' | 'redis' | undefined;
  /** When the process started to lead: its start (default now). */
  startedAt?: Date | undefined;
  /** Samples the event loop (default: a fresh one, per minute); started and stopped by this control plane. */
  loopDelay?: LoopDelayMonitor | undefined;
}

/** Embedded mode's ControlPlaneApi, with the event loop sampling it owns. */
export interface EmbeddedControlPlane extends ControlPlaneApi {
  /** Stops sampling the event loop; idempotent. */
  close(): void;
}

/**
 * Embedded mode's control plane: the process leads from its start (`embedded`, term 1, no replicated changes), shows
 * its build and its event loop's delay over the last minute, keeps no followers, and refuses a handover or an
 * upgrade with CONFLICT (there is no other manager; an upgrade is a restart with the new build).
 *
 * @example
 * const controlPlane = createEmbeddedControlPlane({ build: { version: '0.1.0', build: 'dev', protocol: 1 } });
 * (await controlPlane.view()).leader; // { id: 'embedded', term: 1, seq: 0, loopDelayMs: { p50, p99, max }, … }
 * controlPlane.close();
 */
export function createEmbeddedControlPlane(options: EmbeddedControlPlaneOptions): EmbeddedControlPlane {
  const loopDelay = options.loopDelay ?? new LoopDelayMonitor();
  loopDelay.start();
  return {
    ...standaloneControlPlane({
      startedAt: options.startedAt,
      build: options.build,
      pool: options.pool,
      loopDelay: () => loopDelay.figures(),
    }),
    close: () => loopDelay.stop(),
  };
}
