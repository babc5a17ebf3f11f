// Rate, errors and duration over the last hour, one line per version (`GET /v1/functions/{name}/stats`).
import type { FunctionStats } from '../api';
import { enc } from '../api';
import { LineChart } from '../charts';
import { useApi } from '../hooks';

export function StatsCharts(props: { name: string }) {
  const stats = useApi<FunctionStats>(`/v1/functions/${enc(props.name)}/stats?minutes=60&step=60`, 30_000);
  if (stats.error !== null) {
    return (
      <p className="warning" role="status">
        Charts are not available: {stats.error}
      </p>
    );
  }
  if (stats.data === null) return <p role="status">Loading charts…</p>;
  const versions = stats.data.versions;
  const times = versions[0]?.series.map((p) => p.start) ?? [];
  const perMinute = 60 / stats.data.stepSeconds;
  const named = (pick: (v: (typeof versions)[number]) => (number | null)[]) =>
    versions.map((v) => ({ name: `v${v.version}`, values: pick(v) }));
  return (
    <div className="charts" aria-label="Last hour, by version">
      {versions.length === 0 && <p className="muted">No invocations in the last hour.</p>}
      <LineChart
        title="Rate"
        unit="invocations/min"
        times={times}
        series={named((v) => v.series.map((p) => p.invocations * perMinute))}
      />
      <LineChart
        title="Errors"
        unit="errors/min"
        times={times}
        series={named((v) => v.series.map((p) => p.errors * perMinute))}
      />
      <LineChart title="Duration p99" unit="ms" times={times} series={named((v) => v.series.map((p) => p.p99Ms))} />
      <table className="compact">
        <caption>Last hour by version</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Invocations</th>
            <th scope="col">Errors</th>
            <th scope="col">p50</th>
            <th scope="col">p99</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.version}>
              <th scope="row">v{v.version}</th>
              <td>{v.invocations}</td>
              <td>{v.errors}</td>
              <td>{v.p50Ms === null ? '–' : `${v.p50Ms.toFixed(1)} ms`}</td>
              <td>{v.p99Ms === null ? '–' : `${v.p99Ms.toFixed(1)} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
