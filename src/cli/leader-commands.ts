// `savassan leader status|handover` and `savassan upgrade`: the control plane's leader, its followers and the cluster's
// builds, a graceful change of leader, and the upgrade of the platform itself to another build.
import type { Command } from 'commander';
import { ApiError, SavassanClient } from '../client/client.js';
import type { BuildInfo, ControlPlaneView, HandoverAnswer, UpgradeStatus } from '../client/client.js';
import { describeBuild } from '../core/build-info.js';
import { PlatformError } from '../core/errors.js';
import { info, out, printJson, table } from './output.js';

const client = () => new SavassanClient();

/** How often `upgrade` asks where the upgrade stands. */
const upgradePollMs = 500;
/**
 * How long `upgrade` keeps asking while the server does not answer (its gateway may be one being replaced), or while
 * the control plane shows no record of the upgrade (for a moment while the lead passes).
 */
const unreachableGiveUpMs = 120_000;

/** `0.1.0 (B, protocol 1)`, or `-` for a member that announces no build. */
function buildCell(build: BuildInfo | null): string {
  return build === null ? '-' : `${build.version} (${build.build}, protocol ${build.protocol})`;
}

/** `12 ms`, `1.5 s`, `3 min`: how long ago a follower reported. */
function agoText(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Number((ms / 1000).toFixed(1))} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** `leadership passed from A to B (term T, writes paused N ms)`. */
export function handoverLine(answer: HandoverAnswer): string {
  return (
    `leadership passed from ${answer.from} to ${answer.to} ` +
    `(term ${answer.term}, writes paused ${Math.round(answer.pausedMs)} ms)`
  );
}

/** `upgrade to 0.2.0 (build B, control protocol 1): running, start gateway 1 of 2`, with the error once failed. */
export function upgradeLine(upgrade: UpgradeStatus): string {
  const to =
    upgrade.target === upgrade.to.version
      ? describeBuild(upgrade.to)
      : `${upgrade.target}, ${describeBuild(upgrade.to)}`;
  const error = upgrade.state === 'failed' && upgrade.error !== undefined ? `: ${upgrade.error}` : '';
  return `upgrade to ${to}: ${upgrade.state}, ${upgrade.state === 'failed' ? 'at ' : ''}${upgrade.step}${error}`;
}

/** `savassan leader status` for a person: the leader, its followers, the members and the last handover and upgrade. */
export function printControlPlane(view: ControlPlaneView): void {
  const { leader } = view;
  out(`mode        ${view.mode}, pool ${view.pool}`);
  if (leader === null) {
    out('leader      none: no manager leads right now');
  } else {
    out(`leader      ${leader.id}, term ${leader.term}${leader.since === null ? '' : `, since ${leader.since}`}`);
    out(`build       ${leader.build === null ? 'not announced' : describeBuild(leader.build)}`);
    out(`seq         ${leader.seq}`);
    const delay = leader.loopDelayMs;
    out(
      `loop delay  ${delay === null ? 'not measured yet' : `p50 ${delay.p50} ms, p99 ${delay.p99} ms, max ${delay.max} ms`} (last minute)`,
    );
  }
  const { handover, upgrade } = view;
  out(
    `handover    ${
      handover === null
        ? 'none'
        : `${handover.state}: ${handover.from} to ${handover.to} at ${handover.at}` +
          (handover.pausedMs === undefined ? '' : `, writes paused ${Math.round(handover.pausedMs)} ms`) +
          (handover.error === undefined ? '' : `: ${handover.error}`)
    }`,
  );
  out(`upgrade     ${upgrade === null ? 'none' : upgradeLine(upgrade).replace(/^upgrade /, '')}`);
  out('');
  out(`followers (${view.followers.length} of ${view.followersWanted} wanted)`);
  if (view.followers.length > 0) {
    table([
      ['ID', 'APPLIED', 'LAG', 'REPORTED', 'BUILD', 'SINCE'],
      ...view.followers.map((f) => [
        f.id,
        String(f.appliedSeq),
        String(f.lag),
        `${agoText(f.reportedMsAgo)} ago`,
        buildCell(f.build),
        f.since,
      ]),
    ]);
  }
  out('');
  out(`members (${view.members.length})`);
  if (view.members.length > 0) {
    table([
      ['ID', 'ROLE', 'BUILD', 'COMPATIBLE', 'ADDRESS'],
      ...view.members.map((m) => [
        `${m.id}${m.leader ? ' (leader)' : m.follower ? ' (follower)' : ''}`,
        m.role,
        buildCell(m.build),
        m.compatible ? 'yes' : 'NO',
        m.address,
      ]),
    ]);
  }
}

/** Whether an error says the server did not answer for now (not reachable, or draining): worth asking again. */
function unreachable(err: unknown): boolean {
  if (err instanceof PlatformError) return err.code === 'UNAVAILABLE';
  return err instanceof ApiError && (err.status === 502 || err.status === 503);
}

/** The gateways' HTTP URLs a view lists (what an upgrade may move the command to). */
function gatewayUrls(view: ControlPlaneView): string[] {
  return view.members.flatMap((m) => (m.role === 'gateway' && /^https?:\/\//.test(m.address) ? [m.address] : []));
}

/**
 * Follows an upgrade until it succeeds or fails, printing each new step through `say`; gives the last status. The
 * gateway it talks to may be one the upgrade replaces: when it stops answering, the command asks the other gateways
 * the control plane listed (the new build's among them), without the API key (their URLs come from etcd entries,
 * which prove nothing: keyed gateways answer 401 and the command says so), and gives up after two minutes.
 */
async function followUpgrade(
  given: SavassanClient,
  started: UpgradeStatus,
  say: (line: string) => void,
): Promise<UpgradeStatus> {
  let api = given;
  /** Gateways to try when the current one does not answer, newest list first. */
  let known: string[] = [];
  let last = started;
  let unreachableSince: number | null = null;
  let missingSince: number | null = null;
  for (;;) {
    if (last.state !== 'running') return last;
    await new Promise((resolve) => setTimeout(resolve, upgradePollMs));
    let view: ControlPlaneView;
    try {
      view = await api.controlPlane();
      unreachableSince = null;
      known = gatewayUrls(view);
    } catch (err) {
      if (api !== given && err instanceof ApiError && err.status === 401) {
        throw new PlatformError(
          'UNAUTHORIZED',
          `${api.url}, a gateway the control plane lists, wants an API key, which this command sends only to the ` +
            'URL it was given: the upgrade goes on; follow it with "savassan leader status" (SAVASSAN_URL: a load balancer)',
        );
      }
      if (!unreachable(err)) throw err;
      const now = Date.now();
      const first = unreachableSince === null;
      if (unreachableSince === null) unreachableSince = now;
      else if (now - unreachableSince > unreachableGiveUpMs) {
        throw new PlatformError(
          'UNAVAILABLE',
          `no gateway has answered for ${unreachableGiveUpMs / 1000} s; the upgrade goes on without this ` +
            'command: follow it with "savassan leader status" against a gateway (SAVASSAN_URL)',
        );
      }
      const next = known.find((url) => url !== api.url);
      if (next !== undefined) {
        known = [...known.filter((url) => url !== next), api.url];
        info(`${api.url} does not answer (it may be a gateway the upgrade replaces); asking ${next}`);
        // Without the API key: these URLs come from the gateways' etcd entries, which prove nothing.
        api = new SavassanClient({ url: next, apiKey: '' });
      } else if (first) {
        info(`${api.url} does not answer (it may be a gateway the upgrade replaces); asking again`);
      }
      continue;
    }
    const upgrade = view.upgrade;
    // Another upgrade's record (or none, for a moment while the lead passes) says nothing of this one.
    if (upgrade === null || upgrade.startedAt !== started.startedAt) {
      const now = Date.now();
      missingSince ??= now;
      if (now - missingSince > unreachableGiveUpMs) {
        throw new PlatformError(
          'UNAVAILABLE',
          `the control plane has not shown this upgrade for ${unreachableGiveUpMs / 1000} s ` +
            `(it shows ${upgrade === null ? 'none' : `one to ${upgrade.target}, ${upgrade.state}`}); ` +
            'see "savassan leader status"',
        );
      }
      continue;
    }
    missingSince = null;
    if (upgrade.state === 'running' && upgrade.step !== last.step) say(upgrade.step);
    last = upgrade;
  }
}

export function addLeaderCommands(program: Command): void {
  const leader = program
    .command('leader')
    .description("the control plane's leader: who leads, its followers and the builds of the cluster; hand it over");

  leader
    .command('status')
    .description('show the leading manager, its followers and how far behind they are, and every member with its build')
    .option(
      '--json',
      'print GET /v1/control-plane as it answers: {mode, pool, leader, followers, members, handover, upgrade}',
    )
    .addHelpText(
      'after',
      '\nThe leader holds the warm pool and the provisioning queue (`--pool leader`) and streams every change to\n' +
        'its followers; LAG is how many changes a follower is behind, seq the number of the last change. The loop\n' +
        "delay is how late the leader's event loop ran over the last minute. A member that is not COMPATIBLE speaks\n" +
        "another control protocol than the leader's and takes no part in the control plane.\n" +
        'In embedded mode (`savassan start`) the one process leads itself, with no followers.\n' +
        '\nExamples:\n  savassan leader status\n  savassan leader status --json | jq .leader.term',
    )
    .action(async (opts: { json?: boolean }) => {
      const view = await client().controlPlane();
      if (opts.json === true) return printJson(view);
      printControlPlane(view);
    });

  leader
    .command('handover')
    .description('hand the lead to another manager now, without losing a warm instance or a queued request')
    .option(
      '--to <id>',
      'the manager to hand over to, any manager of the same control protocol (default: the follower most up to date)',
    )
    .option('--json', 'print {from, to, term, pausedMs}')
    .addHelpText(
      'after',
      '\nThe leader pauses pool and queue writes, sends its state to the new leader, which takes the lead over in\n' +
        'one etcd transaction; the paused writes then go on at the new leader. Use it before stopping the leading\n' +
        'manager (a leader stopped with SIGTERM hands over by itself). Embedded mode has no other manager: 409.\n' +
        '\nExamples:\n  savassan leader handover\n  savassan leader handover --to manager-b',
    )
    .action(async (opts: { to?: string; json?: boolean }) => {
      const answer = await client().handover(opts.to);
      if (opts.json === true) return printJson(answer);
      out(handoverLine(answer));
    });

  program
    .command('upgrade')
    .description(
      'upgrade the platform to another build: new managers and gateways start, the lead passes, old ones stop',
    )
    .requiredOption(
      '--to <version-or-path>',
      'the build to run: a version to install, or the path of an installed build',
    )
    .option('--no-wait', 'print where the upgrade stands once started, and return without following it')
    .option('--json', 'print the upgrade status as GET /v1/control-plane shows it (its `upgrade`), at the end')
    .addHelpText(
      'after',
      '\nThe control plane starts managers and gateways of the new build beside the old ones, hands the lead to a\n' +
        'new manager, then stops the old processes. A build that speaks another control protocol is refused. If a\n' +
        'step fails, the old generation keeps serving and the command exits 1 with the failed step and its error.\n' +
        'While waiting, each new step is printed; the command exits 0 once the upgrade succeeded.\n' +
        'Embedded mode upgrades by restarting `savassan start` with the new build (409 here).\n' +
        '\nExamples:\n  savassan upgrade --to 0.2.0\n  savassan upgrade --to /opt/savassan/builds/2026-12-01 --no-wait\n' +
        '  savassan leader status    # follow it: the upgrade line',
    )
    .action(async (opts: { to: string; wait: boolean; json?: boolean }) => {
      const api = client();
      const started = await api.upgrade(opts.to);
      const say = opts.json === true ? info : out;
      if (!opts.wait) {
        if (opts.json === true) return printJson(started);
        return out(upgradeLine(started));
      }
      say(upgradeLine(started));
      const end = await followUpgrade(api, started, say);
      if (end.state === 'failed') process.exitCode = 1;
      if (opts.json === true) return printJson(end);
      out(upgradeLine(end));
    });
}
