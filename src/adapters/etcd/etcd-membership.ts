import type { IKeyValue, Namespace } from 'etcd3';

import { buildInfoClaim } from '../../core/build-info.js';
import { launchArgsClaim, nodeUrlClaim } from '../../core/cluster-checks.js';
import type { Logger } from '../../core/logger.js';
import type { MembershipEvent, NodeInfo } from '../../core/ports/cluster.js';
import { ResyncingWatch } from './etcd-watch.js';

/** Node entries live at `nodes/{nodeId}` under the cluster's prefix. */
export const NODES_PREFIX = 'nodes/';

/** What a membership watcher knows of one node. */
export interface MemberState {
  info: NodeInfo;
  /** Changes when the key is deleted and created again (the node left and joined while the watch was away). */
  createRevision: string;
  /** Changes on every write. */
  modRevision: string;
}

/** The node entry in `kv`, or undefined (logged) when it is not a NodeInfo written for its key. */
export function memberFromKv(kv: IKeyValue, logger: Logger): MemberState | undefined {
  const key = kv.key.toString();
  const nodeId = key.slice(NODES_PREFIX.length);
  let info: unknown;
  try {
    info = JSON.parse(kv.value.toString());
  } catch {
    info = undefined;
  }
  if (typeof info !== 'object' || info === null || (info as Partial<NodeInfo>).nodeId !== nodeId) {
    logger.warn({ key }, 'ignoring an etcd node entry that is not a NodeInfo for its key');
    return undefined;
  }
  return { info: claimsOf(info as NodeInfo), createRevision: kv.create_revision, modRevision: kv.mod_revision };
}

/**
 * The entry with only the well-formed part of what it claims about its build, URL and launch arguments: a field that
 * is not well formed is left out, and the entry kept.
 */
function claimsOf(info: NodeInfo): NodeInfo {
  const { build, url, args, ...rest } = info;
  const kept: NodeInfo = rest;
  const checked = { build: buildInfoClaim(build), url: nodeUrlClaim(url), args: launchArgsClaim(args) };
  if (checked.build !== undefined) kept.build = checked.build;
  if (checked.url !== undefined) kept.url = checked.url;
  if (checked.args !== undefined) kept.args = checked.args;
  return kept;
}

/**
 * The events that take a watcher from `before` to `after`: leaves first, then, in node id order, joins, updates, and
 * leave + join for a node whose entry was deleted and created again in between.
 */
export function membershipDiff(
  before: ReadonlyMap<string, MemberState>,
  after: ReadonlyMap<string, MemberState>,
): MembershipEvent[] {
  const events: MembershipEvent[] = [];
  for (const nodeId of [...before.keys()].sort()) {
    if (!after.has(nodeId)) events.push({ type: 'leave', nodeId });
  }
  for (const nodeId of [...after.keys()].sort()) {
    const now = after.get(nodeId) as MemberState;
    const was = before.get(nodeId);
    if (was !== undefined && was.createRevision !== now.createRevision) events.push({ type: 'leave', nodeId });
    if (was === undefined || was.createRevision !== now.createRevision) events.push({ type: 'join', node: now.info });
    else if (was.modRevision !== now.modRevision) events.push({ type: 'update', node: now.info });
  }
  return events;
}

/**
 * Watches `nodes/` and turns its changes into membership events for `listener`: the first snapshot gives one join per
 * node, each later snapshot (after a reconnect) the diff against what the listener was told.
 */
export async function watchMembership(
  ns: Namespace,
  listener: (event: MembershipEvent) => void,
  logger: Logger,
): Promise<ResyncingWatch> {
  let known = new Map<string, MemberState>();
  const emit = (event: MembershipEvent): void => {
    try {
      listener(event);
    } catch (err) {
      logger.error({ err }, 'membership listener threw');
    }
  };
  const watch = new ResyncingWatch(
    ns,
    { prefix: NODES_PREFIX },
    {
      snapshot: (kvs) => {
        const now = new Map<string, MemberState>();
        for (const kv of kvs) {
          const member = memberFromKv(kv, logger);
          if (member) now.set(member.info.nodeId, member);
        }
        const events = membershipDiff(known, now);
        known = now;
        events.forEach(emit);
      },
      change: ({ type, kv }) => {
        const nodeId = kv.key.toString().slice(NODES_PREFIX.length);
        const was = known.get(nodeId);
        const now = type === 'put' ? memberFromKv(kv, logger) : undefined;
        if (now) known.set(nodeId, now);
        else known.delete(nodeId);
        const events = membershipDiff(new Map(was ? [[nodeId, was]] : []), new Map(now ? [[nodeId, now]] : []));
        events.forEach(emit);
      },
    },
    logger,
  );
  await watch.start();
  return watch;
}
