// One function: its charts and configuration, a test invoke, the live log tail, its invocations, versions and
// aliases (traffic and rollouts) and its dead letters, each on a tab of its own.
import type { FunctionView } from '../api';
import { enc } from '../api';
import { ConfigView } from '../components/config-view';
import { DeadLetters } from '../components/dead-letters';
import { InvocationDetail, Invocations } from '../components/invocations';
import { InvokePanel } from '../components/invoke-panel';
import { LogTail } from '../components/log-tail';
import { StatsCharts } from '../components/stats-charts';
import { Versions } from '../components/versions';
import { href, useApi } from '../hooks';

const tabs: { id: string; label: string }[] = [
  { id: 'overview', label: 'Overview' },
  { id: 'invoke', label: 'Test invoke' },
  { id: 'logs', label: 'Live logs' },
  { id: 'invocations', label: 'Invocations' },
  { id: 'versions', label: 'Versions & traffic' },
  { id: 'dead-letters', label: 'Dead letters' },
];

export function FunctionPage(props: { name: string; tab: string; detail?: string }) {
  const fn = useApi<FunctionView>(`/v1/functions/${enc(props.name)}`);
  const tab = tabs.some((t) => t.id === props.tab) ? props.tab : 'overview';
  return (
    <section aria-labelledby="function-title">
      <p className="crumbs">
        <a href={href('functions')}>Functions</a> /
      </p>
      <h1 id="function-title">
        {props.name}
        {fn.data !== null && <span className="muted"> v{fn.data.currentVersion}</span>}
      </h1>
      {fn.error !== null && (
        <p className="error" role="alert">
          {fn.error}
        </p>
      )}
      <nav className="tabs" aria-label="Function sections">
        {tabs.map((t) => (
          <a key={t.id} href={href('functions', props.name, t.id)} aria-current={t.id === tab ? 'page' : undefined}>
            {t.label}
          </a>
        ))}
      </nav>
      <div className="tab-body">
        {tab === 'overview' && (
          <>
            <StatsCharts name={props.name} />
            {fn.data !== null && <ConfigView fn={fn.data} />}
          </>
        )}
        {tab === 'invoke' && <InvokePanel name={props.name} />}
        {tab === 'logs' && <LogTail name={props.name} />}
        {tab === 'invocations' &&
          (props.detail === undefined ? (
            <Invocations name={props.name} />
          ) : (
            <InvocationDetail name={props.name} id={props.detail} />
          ))}
        {tab === 'versions' && <Versions name={props.name} />}
        {tab === 'dead-letters' && <DeadLetters name={props.name} />}
      </div>
    </section>
  );
}
